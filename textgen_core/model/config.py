"""Model architecture as one small dataclass, saved beside the weights in `config.json`."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

FORMAT_NAME = "textgen-char-gru"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ModelConfig:
    """Embedding(256, embed_dim) → GRU(hidden) × layers → Dense(256)."""

    embed_dim: int = 128
    hidden: int = 512
    layers: int = 2
    vocab_size: int = 256

    def __post_init__(self) -> None:
        for name in ("embed_dim", "hidden", "layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 8192:
                raise ValueError(f"{name} must be an integer between 1 and 8192, got {value!r}")
        if self.layers > 16:
            raise ValueError(f"layers must be at most 16, got {self.layers}")
        if self.vocab_size != 256:
            raise ValueError(f"vocab_size must be 256 (UTF-8 bytes), got {self.vocab_size}")

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every array a model folder must hold, by name, with its shape."""
        shapes: dict[str, tuple[int, ...]] = {"embedding": (self.vocab_size, self.embed_dim)}
        inputs = self.embed_dim
        for i in range(self.layers):
            shapes[f"gru{i}/kernel"] = (inputs, 3 * self.hidden)
            shapes[f"gru{i}/recurrent_kernel"] = (self.hidden, 3 * self.hidden)
            shapes[f"gru{i}/bias"] = (2, 3 * self.hidden)
            inputs = self.hidden
        shapes["dense/kernel"] = (self.hidden, self.vocab_size)
        shapes["dense/bias"] = (self.vocab_size,)
        return shapes

    def parameter_count(self) -> int:
        total = 0
        for shape in self.weight_shapes().values():
            n = 1
            for d in shape:
                n *= d
            total += n
        return total

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        known = {k: data[k] for k in ("embed_dim", "hidden", "layers", "vocab_size") if k in data}
        return cls(**known)


@dataclass
class ModelInfo:
    """What a model folder says about itself beyond the architecture (training data, metrics)."""

    config: ModelConfig
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    match: dict[str, Any] = field(default_factory=dict)   # match-model mixing weights, see match.py
    ngram: dict[str, Any] = field(default_factory=dict)   # what the corpus n-gram counted (ngram.py), if any

    @property
    def val_bpc(self) -> float | None:
        value = self.metrics.get("val_bpc")
        return float(value) if isinstance(value, (int, float)) else None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "architecture": self.config.to_dict(),
            "training": self.training,
            "metrics": self.metrics,
            "match": self.match,
            **({"ngram": self.ngram} if self.ngram else {}),
        }
