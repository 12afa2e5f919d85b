"""Exact inner-product search with FAISS (`IndexFlatIP` behind an id map): the default."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.vectors.faiss_files import read_index, write_index

if TYPE_CHECKING:
    import numpy as np


class FaissIndex:
    """A FAISS index keyed by chunk id (`IndexIDMap2`); the search is exact or not by the
    inner index. `search_params` makes the per-query parameters (and id filter)."""

    def __init__(self, index: Any, approximate: bool = False, ef_search: int = 0) -> None:
        self.index = index
        self.approximate = approximate
        self.ef_search = ef_search

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def ids(self) -> np.ndarray:
        import faiss

        return faiss.vector_to_array(self.index.id_map).astype("int64")

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        import numpy as np

        if len(ids):
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32),
                                    np.asarray(ids, dtype=np.int64))  # fmt: skip

    def remove(self, ids: np.ndarray) -> bool:
        import numpy as np

        if self.approximate:
            return False  # HNSW graphs cannot delete
        if len(ids):
            self.index.remove_ids(np.asarray(ids, dtype=np.int64))
        return True

    def search(
        self, vector: np.ndarray, k: int, allowed: Collection[int] | None = None
    ) -> list[tuple[int, float]]:
        import faiss
        import numpy as np

        if self.index.ntotal == 0:
            return []
        params: Any = None
        if allowed is not None:
            selector = faiss.IDSelectorBatch(np.fromiter(allowed, dtype=np.int64))
            if self.approximate:
                params = faiss.SearchParametersHNSW(sel=selector, efSearch=self.ef_search)  # type: ignore[attr-defined,call-arg]
            else:
                params = faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]
        scores, ids = self.index.search(vector, min(k, self.index.ntotal), params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

    def save(self, path: Path) -> None:
        write_index(self.index, path)


class FlatBackend:
    """Exact search: every query is compared with every vector (6 ms at 100,000 chunks)."""

    kind = "flat"
    name = "vectors"

    def file_name(self, generation: int) -> str:
        return f"vectors-{generation:010d}.faiss"

    def create(self, dim: int) -> FaissIndex:
        import faiss

        return FaissIndex(faiss.IndexIDMap2(faiss.IndexFlatIP(dim)))

    def load(self, path: Path) -> FaissIndex | None:
        index = read_index(path)
        return FaissIndex(index) if index is not None else None
