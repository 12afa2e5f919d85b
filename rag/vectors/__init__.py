"""Vector indexes behind one port (`base.VectorIndex`): exact FAISS, HNSW, IVF-PQ; pick by name."""

from __future__ import annotations

from rag.errors import ConfigError
from rag.vectors.base import TrainedIndex, VectorBackend, VectorIndex
from rag.vectors.flat import FlatBackend
from rag.vectors.hnsw import HnswBackend
from rag.vectors.ivfpq import AUTO_AT, AutoBackend, IvfPqBackend

DENSE_INDEXES = ("flat", "hnsw", "ivfpq", "auto")
# The built-in backends' file prefixes: "<prefix>-<generation, 10 digits>….faiss".
VECTOR_FILE_PREFIXES = (FlatBackend.name, HnswBackend.name, IvfPqBackend.name)


def vector_backend(
    kind: str = "flat",
    *,
    hnsw_m: int = 32,
    hnsw_ef_search: int = 128,
    ivf_nprobe: int = 32,
    ivf_nlist: int = 0,
) -> VectorBackend:
    """The backend named `kind`: "flat" (exact), "hnsw" or "ivfpq" (approximate), or "auto"
    (exact below AUTO_AT chunks, IVF-PQ above)."""
    if kind == "flat":
        return FlatBackend()
    if kind == "hnsw":
        return HnswBackend(hnsw_m, hnsw_ef_search)
    if kind == "ivfpq":
        return IvfPqBackend(ivf_nprobe, ivf_nlist)
    if kind == "auto":
        return AutoBackend(ivf_nprobe, ivf_nlist)
    raise ConfigError(f"retrieval.dense_index={kind!r} must be one of {', '.join(DENSE_INDEXES)}")


__all__ = [
    "AUTO_AT",
    "DENSE_INDEXES",
    "VECTOR_FILE_PREFIXES",
    "AutoBackend",
    "FlatBackend",
    "HnswBackend",
    "IvfPqBackend",
    "TrainedIndex",
    "VectorBackend",
    "VectorIndex",
    "vector_backend",
]
