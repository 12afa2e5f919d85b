"""Exact re-scoring of an approximate index's candidates with the float vectors SQLite holds."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def exact_top(
    vector: np.ndarray, ids: np.ndarray, vectors: np.ndarray, k: int
) -> list[tuple[int, float]]:
    """The `k` best (id, inner product with the query row `vector`) of `ids`, best first;
    `vectors` has one row per id, NaN for a chunk that is gone (such ids are left out)."""
    import numpy as np

    if not len(ids):
        return []
    scores = np.asarray(vectors, dtype=np.float32) @ np.asarray(vector, dtype=np.float32).ravel()
    kept = np.flatnonzero(~np.isnan(scores))
    best = kept[np.argsort(-scores[kept], kind="stable")[:k]]
    return [(int(ids[j]), float(scores[j])) for j in best]
