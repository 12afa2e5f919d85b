"""Vector indexes behind one port (`base.VectorIndex`): exact FAISS, HNSW; pick by name."""

from __future__ import annotations

from rag.errors import ConfigError
from rag.vectors.base import VectorBackend, VectorIndex
from rag.vectors.flat import FlatBackend
from rag.vectors.hnsw import HnswBackend

DENSE_INDEXES = ("flat", "hnsw")


def vector_backend(
    kind: str = "flat", *, hnsw_m: int = 32, hnsw_ef_search: int = 128
) -> VectorBackend:
    """The backend named `kind`: "flat" (exact) or "hnsw" (approximate)."""
    if kind == "flat":
        return FlatBackend()
    if kind == "hnsw":
        return HnswBackend(hnsw_m, hnsw_ef_search)
    raise ConfigError(f"retrieval.dense_index={kind!r} must be one of {', '.join(DENSE_INDEXES)}")


__all__ = [
    "DENSE_INDEXES",
    "FlatBackend",
    "HnswBackend",
    "VectorBackend",
    "VectorIndex",
    "vector_backend",
]
