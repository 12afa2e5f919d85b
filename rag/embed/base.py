"""The embedder port: what ingest, search and citation checks need from a text encoder."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

    from rag.chunking import TokenCounter


@dataclass(frozen=True)
class EmbedderInfo:
    """What identifies an embedder in an index: vectors from another one are incomparable."""

    name: str
    dim: int
    max_tokens: int
    fingerprint: str

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> EmbedderInfo:
        return cls(**json.loads(text))


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
