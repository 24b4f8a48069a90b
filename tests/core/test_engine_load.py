"""Load on the engine alone: many completions leave no growth in memory or threads (`make test-long`)."""
import gc
import os
import threading
import time

import pytest

from tests.conftest import TINY_TEXT
from tests.nvim_harness import rss_mb as process_rss_mb
from textgen_core.decode import DecodeOptions
from textgen_core.serve.engine import Engine


def rss_mb() -> float:
    return process_rss_mb(os.getpid())


@pytest.mark.long
def test_ten_thousand_completions_grow_neither_memory_nor_threads(tiny_model):
    engine = Engine(tiny_model)
    options = DecodeOptions(max_chars=20)
    done = threading.Semaphore(0)
    finals = []

    def callback(completion):
        if completion.final:
            finals.append(completion.elapsed_ms)
            done.release()

    def run(count, offset):
        for i in range(count):
            at = 200 + (offset + i * 37) % (len(TINY_TEXT) - 400)        # typing, edits and jumps mixed
            engine.submit(i % 3, TINY_TEXT[at - 200:at], options, callback, end_offset=at)
            assert done.acquire(timeout=10)

    try:
        run(1000, 0)                                                      # warm-up: caches fill to their bound
        gc.collect()
        threads_before, rss_before = threading.active_count(), rss_mb()
        started = time.monotonic()
        run(10_000, 1000)
        gc.collect()
        threads_after, rss_after = threading.active_count(), rss_mb()
        print(f"\n10,000 completions in {time.monotonic() - started:.1f} s; RSS {rss_before:.1f} → {rss_after:.1f} MB; "
              f"threads {threads_before} → {threads_after}; cache entries {len(engine._cache)}")
        assert threads_after == threads_before
        assert rss_after < rss_before * 1.10 + 2
        assert len(finals) == 11_000
    finally:
        engine.close()
