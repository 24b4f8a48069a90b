"""Averaging models of one architecture, array by array: a "model soup" (Wortsman et al., 2022).

Models fine-tuned from one base on different mixes of text (all of it; Lua weighted up; Lua alone)
stay close enough in weight space that their weighted average works as a model, and keeps most of
what each one learned: it predicts each kind of text about as well as the member best at it, for
the cost of one model. The default model is such an average (models/default/MODEL_CARD.md); a user
can average a model fine-tuned on their own text with the one it started from, to keep some of the
general knowledge that fine-tuning wears away.

The buffer-as-memory weights depend on the GRU, so they are fitted again on held-out text, as
`train` fits them at its end; the val bpc is measured the way `train` measures it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from textgen_core.model.config import ModelInfo
from textgen_core.model.files import Weights, load_model_folder, read_ngram, save_model_folder
from textgen_core.model.registry import ModelNotFoundError, resolve_model_path
from textgen_core.train.held_out import TrainingText, corpus_summary, fit_match_weights, split_texts, windowed_val_bpc
from textgen_core.train.machine import machine_summary


@dataclass
class Member:
    """One model of an average and its share of it."""

    model: str        # a name or a folder, as `load_model` takes it
    weight: float


def parse_member(spec: str) -> Member:
    """`MODEL` or `MODEL:WEIGHT` (the weight after the last colon, so that a Windows path works)."""
    name, sep, weight = spec.rpartition(":")
    if sep:
        try:
            return Member(name, float(weight))
        except ValueError:
            pass
    return Member(spec, 1.0)


def average_models(members: Sequence[Member], out: str | Path, fit_texts: Sequence[TrainingText] = (),
                   val_fraction: float = 0.1) -> ModelInfo:
    """Write the weighted average of `members` (weights scaled to sum to 1) as the model folder `out`.

    With `fit_texts`, the buffer-as-memory weights are fitted and the val bpc measured on their
    held-out tails (`val_fraction` of each, as `train` splits them); without, the first member's
    buffer-as-memory weights are kept and no val bpc is recorded. The first member's corpus n-gram
    comes along (a table of text, not of a network: without it the average of a model with itself
    did worse than the model), with its mixing weights, fitted anew with `fit_texts`.
    """
    if len(members) < 2:
        raise ValueError("averaging needs at least two models")
    if any(not np.isfinite(m.weight) or m.weight <= 0 for m in members):
        raise ValueError("every model's weight must be a positive number")
    total = sum(m.weight for m in members)
    loaded = []
    for member in members:
        try:
            path = resolve_model_path(member.model)
        except ModelNotFoundError as exc:          # 'default:abc' is no model's name, nor 'abc' a weight
            name, colon, weight = member.model.rpartition(":")
            if colon and name:
                raise type(exc)(f"{exc}; nor is {weight!r} after its last colon a weight (MODEL:WEIGHT, such as "
                                f"notes:2)") from None
            raise
        info, weights = load_model_folder(path)
        loaded.append((member, path, info, weights))
    first_info = loaded[0][2]
    for member, _, info, _ in loaded[1:]:
        if info.config != first_info.config:
            raise ValueError(f"{member.model} is {_size(info)}, {loaded[0][0].model} is {_size(first_info)}: "
                             f"only models of one architecture average")
    averaged: Weights = {
        name: sum((member.weight / total) * weights[name].astype(np.float64)
                  for member, _, _, weights in loaded).astype(np.float32)
        for name in first_info.config.weight_shapes()}

    # the first model's mixing weights, but none per kind of text: those fit its network alone (`textgen fit`)
    match = {key: value for key, value in first_info.match.items() if key != "kinds"}
    table = read_ngram(loaded[0][1])
    info = ModelInfo(config=first_info.config, match=match, ngram=first_info.ngram, training={
        "averaged": [{"model": member.model, "path": str(path), "weight": round(member.weight / total, 6),
                      "val_bpc": member_info.val_bpc, "training": without_file_lists(member_info.training)}
                     for member, path, member_info, _ in loaded],
        "kinds_left_out": bool(first_info.match.get("kinds")),
        "machine": machine_summary(),
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })
    if fit_texts:
        _, val = split_texts(list(fit_texts), val_fraction)
        info.training["fitted_on"] = corpus_summary(list(fit_texts)) | {"val_fraction": val_fraction}
        info.match = fit_match_weights(info, averaged, val, ngram=table)
        info.metrics = {"val_bpc": round(windowed_val_bpc(info.config, averaged, val), 4),
                        "val_bpc_with_match": info.match["val_bpc_with_match"]}
    save_model_folder(out, info, averaged, ngram=table)
    return info


def _size(info: ModelInfo) -> str:
    config = info.config
    return f"embed {config.embed_dim}, hidden {config.hidden}, {config.layers} layers"


def without_file_lists(training: dict) -> dict:
    """A member's training record with its corpus named by count, size and sha256 only: the lists
    of file names would make the average's config.json many times larger and say nothing more."""
    corpus = training.get("corpus")
    if not isinstance(corpus, dict):
        return training
    return training | {"corpus": {key: value for key, value in corpus.items() if key != "files"}}
