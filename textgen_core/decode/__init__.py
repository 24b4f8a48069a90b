"""Turning next-byte logits into text: greedy, temperature sampling with top-k/top-p, beam search,
stop rules, and N alternatives decoded as one batch.

Works with any backend that offers `step(ids (B,), state) -> (logits (B, 256), state)`; states are
tuples of (B, H) numpy arrays. `decode` is the entry; the modules: `options` (what to ask), `stops`
(where text ends), `steps` (one step of a row, memory mixed in), `search` (beam and word searches),
`rows` (the batch of suggestions).
"""
from textgen_core.decode.options import (
                                       Backend,
                                       DecodeCancelled,
                                       DecodeOptions,
                                       PartialCallback,
)
from textgen_core.decode.rows import Leads, decode, decode_leads
from textgen_core.decode.search import (
                                       MAX_WORD_BYTES,
                                       accept_words,
                                       beam_search,
                                       keys_saved,
                                       most_useful_next_words,
)
from textgen_core.decode.steps import Decoding, RowMemory, mixed_log_probs
from textgen_core.decode.stops import (
                                       MAX_BLANK_RUN,
                                       MAX_CHARS,
                                       MAX_LINE_BYTES,
                                       MAX_LINES,
                                       MAX_TEXT_BYTES,
                                       loop_period,
                                       visible_text,
)

__all__ = ["Backend", "DecodeCancelled", "DecodeOptions", "Decoding", "MAX_BLANK_RUN", "MAX_CHARS",
           "MAX_LINE_BYTES", "MAX_LINES", "MAX_TEXT_BYTES", "MAX_WORD_BYTES", "Leads", "PartialCallback", "RowMemory",
           "accept_words", "beam_search", "decode", "decode_leads", "keys_saved", "loop_period", "mixed_log_probs",
           "most_useful_next_words", "visible_text"]
