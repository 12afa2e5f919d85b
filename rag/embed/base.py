"""The embedder port: what ingest, search and citation checks need from a text encoder."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

    from rag.chunking import TokenCounter


# The lowest cosine two encoders of one model may give the same text for their vectors to
# share an index (an index embedded by one is searched, or added to, with the other).
REQUIRED_COSINE = 0.999
# Measured: the lowest cosine between the vectors of two encoders of the packaged
# all-MiniLM-L6-v2 on the same SciFact windows (evals/bench_encoder.py; the ONNX Runtime
# figure is also pinned on the demo corpus by tests/test_onnx_encoder.py). "" is an index
# that did not record its encoder: made by the torch encoder (fp32 or bf16) before encoders
# were recorded.
ENCODER_COSINE: dict[frozenset[str], float] = {
    frozenset({"torch", "onnx"}): 0.99999,
}


def interchangeable(a: str, b: str) -> bool:
    """Tell whether vectors of encoders `a` and `b` (of one model) may share an index."""
    a, b = a or "torch", b or "torch"
    return a == b or ENCODER_COSINE.get(frozenset({a, b}), -1.0) >= REQUIRED_COSINE


@dataclass(frozen=True)
class EmbedderInfo:
    """What identifies an embedder in an index: vectors from another one are incomparable.

    `encoder` is the runtime that ran the model ("torch", "onnx"; "" when not recorded):
    two encoders of one model are one embedder where `interchangeable` says so.
    """

    name: str
    dim: int
    max_tokens: int
    fingerprint: str
    encoder: str = ""

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> EmbedderInfo:
        return cls(**json.loads(text))

    def same_vectors(self, other: EmbedderInfo) -> bool:
        """Tell whether vectors of `other` may be compared with (and mixed into) ours."""
        same_model = (self.name, self.dim, self.fingerprint) == (
            other.name, other.dim, other.fingerprint)  # fmt: skip
        return same_model and interchangeable(self.encoder, other.encoder)

    @property
    def key(self) -> str:
        """The fingerprint, with the encoder unless it is torch: what names its vectors."""
        return self.fingerprint if self.encoder in ("", "torch") else \
            f"{self.fingerprint}/{self.encoder}"  # fmt: skip


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length vectors; counts text in its own tokens for chunking."""

    @property
    def info(self) -> EmbedderInfo:
        """Name, dimension, longest input in tokens, and a fingerprint of the weights."""
        ...

    @property
    def counter(self) -> TokenCounter:
        """The embedder's own tokenizer, so no chunk is longer than it reads."""
        ...

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One L2-normalised float32 row per text."""
        ...
