"""The vector-index port: exact, approximate or remote nearest-neighbour search over chunk ids.

SQLite holds every vector; a vector index is derived from it and may be rebuilt at any time,
so a backend needs no durability of its own. The store picks the file a backend's index is
saved in by generation, and rebuilds the index from SQLite when that file is missing or stale.

An index trained on a sample, whose scores are approximate (IVF-PQ), also implements
`TrainedIndex`: the store then trains it on a random sample from SQLite before a rebuild,
re-scores its candidates with the exact vectors from SQLite (`Store.dense_search`), and
rebuilds it when it asks to be laid out again.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np


@runtime_checkable
class VectorIndex(Protocol):
    """Inner-product search over unit vectors keyed by chunk id."""

    def __len__(self) -> int:
        """How many vectors the index holds."""
        ...

    def ids(self) -> np.ndarray:
        """Every chunk id in the index (int64)."""
        ...

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add `vectors` (float32, one row per id) under `ids` (int64)."""
        ...

    def remove(self, ids: np.ndarray) -> bool:
        """Remove `ids`; return False if this kind of index cannot (the store rebuilds it)."""
        ...

    def search(
        self, vector: np.ndarray, k: int, allowed: Collection[int] | None = None
    ) -> list[tuple[int, float]]:
        """The `k` best (chunk id, score) pairs for one query row, best first, restricted
        to the chunk ids in `allowed` when it is given."""
        ...

    def save(self, path: Path) -> None:
        """Write the index to `path` atomically."""
        ...


@runtime_checkable
class TrainedIndex(VectorIndex, Protocol):
    """A vector index trained on a sample whose scores are approximate (compressed codes)."""

    @property
    def rescore(self) -> int:
        """How many candidates to re-score with exact vectors (0: its scores are exact)."""
        ...

    @property
    def wants_rebuild(self) -> bool:
        """True once the index has outgrown its training: rebuild it at the next save."""
        ...

    @property
    def nbytes(self) -> int:
        """About how many bytes its saved file takes."""
        ...

    def train(self, total: int, sample: Callable[[int], np.ndarray]) -> None:
        """Prepare an empty index for `total` vectors; `sample(n)` gives n random ones."""
        ...


@runtime_checkable
class VectorBackend(Protocol):
    """Makes and loads one kind of vector index."""

    @property
    def kind(self) -> str:
        """A short label for reports and probe configs ("flat", "hnsw", ...)."""
        ...

    @property
    def name(self) -> str:
        """The prefix of its files in the index directory (stale ones are removed by it)."""
        ...

    def file_name(self, generation: int) -> str:
        """The file that holds the index of `generation`."""
        ...

    def create(self, dim: int) -> VectorIndex:
        """An empty index for vectors of `dim` dimensions."""
        ...

    def load(self, path: Path) -> VectorIndex | None:
        """The index saved at `path`; None when it is missing or unreadable."""
        ...
