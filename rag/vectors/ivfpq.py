"""Approximate search with a FAISS IVF-PQ index, for millions of chunks on one machine.

Each vector is kept as `m` one-byte product-quantizer codes (96 bytes for 384 dimensions
instead of 1,536) in the one of `nlist` inverted lists whose centroid is nearest; a query
scans the `nprobe` lists nearest to it. Those scores are approximate, so the store re-scores
the best `rescore` candidates with the exact float vectors from SQLite (`Store.dense_search`).
A saved index is memory-mapped when opened: only the lists queries touch are read from disk,
and it is copied into memory only by the first write.

Memory at 10 M chunks of 384 dimensions: 10 M × (96 code bytes + 8 id bytes) = 1.04 GB of
lists (on disk, mapped), plus 16,384 centroids × 1,536 bytes = 25 MB; exact search needs
10 M × 1,536 bytes = 15.4 GB of float vectors in memory (evals/bench_ivfpq.py).

IVF-PQ must be trained (k-means for the lists and for each sub-quantizer), and k-means wants
at least 39 points a centroid: below `train_at` vectors the backend keeps an exact flat index
instead, and trains itself when an ingest crosses that size. The layout is made for the size it
is trained at (about 4·√n lists); once the corpus has grown so that the rule wants twice the
lists (about 4× the chunks), the store rebuilds it at the next save from SQLite, trained on a
fresh random sample.

>>> backend = IvfPqBackend(nprobe=32)  # or AutoBackend(): exact below 100,000 chunks
>>> index = backend.create(384)  # flat until 50,000 vectors are added  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.errors import ConfigError
from rag.vectors.faiss_files import read_index, write_index
from rag.vectors.flat import FaissIndex

if TYPE_CHECKING:
    import numpy as np

# `auto` stays exact below this many chunks. Exact search takes 6.3 ms a query at 100,000 chunks
# (evals/bench_search.py, evals/results/search-latency.md) and 154 MB of vectors, both linear in
# chunks (so about 60 ms and 1.5 GB at 1 M); below it exact search is fast enough, its recall is
# 1, and nothing needs training.
AUTO_AT = 100_000
# faiss's k-means asks for this many training points per centroid (min_points_per_centroid).
POINTS_PER_LIST = 39
# Training sample bounds: at least this many vectors (the product quantizer's 256 centroids
# want them), at most MAX_TRAIN so training takes seconds to a few minutes, not hours.
MIN_TRAIN = 16_384
MAX_TRAIN = 100_000
MIN_NLIST = 64
# Sub-quantizer counts tried, largest first: 96 one-byte codes for 384 dimensions.
PQ_SIZES = (96, 64, 48, 32, 24, 16, 12, 8, 4, 2, 1)


def auto_nlist(n: int) -> int:
    """About 4·√n inverted lists, rounded to a power of two: at least 64, and at most one
    list per 39 vectors (rounded down to a power of two) so each centroid can be trained."""
    want = 2 ** round(math.log2(max(4 * math.sqrt(n), 1.0)))
    most = 2 ** int(math.log2(max(n // POINTS_PER_LIST, 1)))
    return max(MIN_NLIST, min(want, most))


def auto_m(dim: int) -> int:
    """The most product-quantizer codes (of PQ_SIZES) that divide `dim` with ≥ 4 dimensions
    each: 96 for 384 dimensions, 64 for 768 or 1,024, 16 for 64."""
    return next((m for m in PQ_SIZES if dim % m == 0 and dim // m >= 4), 1)


def train_size(nlist: int, n: int) -> int:
    """How many vectors to train `nlist` lists on: 39 a list, within MIN_TRAIN..MAX_TRAIN."""
    return min(n, MAX_TRAIN, max(POINTS_PER_LIST * nlist, MIN_TRAIN))


class IvfPqBackend:
    """IVF-PQ with `nlist` lists (0: `auto_nlist`) and `m` codes a vector (0: `auto_m`);
    `nprobe` lists are scanned a query and the best `rescore` candidates (at least twice the
    asked-for k) re-scored exactly. Exact (flat) below `train_at` vectors: 50,000 is where
    the automatic 1,024 lists can have their 39 training points each (39,936)."""

    kind = "ivfpq"
    name = "ivfpq"

    def __init__(
        self,
        nprobe: int = 32,
        nlist: int = 0,
        m: int = 0,
        rescore: int = 100,
        train_at: int = 50_000,
    ) -> None:
        if nprobe < 1 or nlist < 0 or m < 0 or rescore < 0 or train_at < 1:
            raise ConfigError(
                f"ivfpq nprobe={nprobe} and train_at={train_at} must be >= 1, "
                f"nlist={nlist}, m={m} and rescore={rescore} >= 0 (0: automatic / none)"
            )
        if nlist and nprobe > nlist:
            raise ConfigError(f"ivfpq nprobe={nprobe} must not exceed nlist={nlist}")
        self.nprobe, self.nlist, self.m, self.rescore = nprobe, nlist, m, rescore
        self.train_at = train_at

    @property
    def trains_at(self) -> int:
        """The size at which the flat index becomes IVF-PQ: `train_at`, or 39 points for
        each list (at least 64 lists) when that is more."""
        return max(self.train_at, POINTS_PER_LIST * max(self.nlist, MIN_NLIST))

    def file_name(self, generation: int) -> str:
        return (f"ivfpq-{generation:010d}-nlist{self.nlist or 'auto'}-m{self.m or 'auto'}"
                f"-at{self.train_at}.faiss")  # fmt: skip

    def create(self, dim: int) -> IvfPqIndex:
        import faiss

        return IvfPqIndex(self, dim, faiss.IndexIDMap2(faiss.IndexFlatIP(dim)))

    def load(self, path: Path) -> IvfPqIndex | None:
        import faiss

        index = read_index(path, mmap=True)
        if isinstance(index, faiss.IndexIVFPQ):
            if self.nlist and index.nlist != self.nlist:
                return None
            return IvfPqIndex(self, index.d, index, mapped=True)
        if isinstance(index, faiss.IndexIDMap2) and index.ntotal < self.trains_at:
            return IvfPqIndex(self, index.d, index)
        return None  # unreadable, or flat but big enough to train: rebuilt from SQLite


class AutoBackend(IvfPqBackend):
    """Exact search below `at` chunks (AUTO_AT), IVF-PQ from there on."""

    kind = "auto"

    def __init__(self, nprobe: int = 32, nlist: int = 0, at: int = AUTO_AT, **options: int):
        super().__init__(nprobe, nlist, train_at=at, **options)


class IvfPqIndex:
    """An IVF-PQ index keyed by chunk id (the lists hold the ids: no id map, so removals
    edit the lists in place), or an exact flat one until it is big enough to train."""

    def __init__(self, config: IvfPqBackend, dim: int, index: Any, mapped: bool = False) -> None:
        import faiss

        self.config, self.dim = config, dim
        self._ivf: Any = index if isinstance(index, faiss.IndexIVF) else None
        self._exact = None if self._ivf is not None else FaissIndex(index)
        self._mapped = mapped  # lists read-only in the file until the first write

    @property
    def trained(self) -> bool:
        """Whether this is IVF-PQ yet (False: exact flat search)."""
        return self._ivf is not None

    @property
    def nlist(self) -> int:
        return int(self._ivf.nlist) if self._ivf is not None else 0

    @property
    def rescore(self) -> int:
        return self.config.rescore if self._ivf is not None else 0

    @property
    def wants_rebuild(self) -> bool:
        if self._ivf is None or self.config.nlist:
            return False  # a fixed nlist is never re-laid out
        return auto_nlist(len(self)) >= 2 * self.nlist

    @property
    def nbytes(self) -> int:
        """About how many bytes the saved file takes."""
        if self._ivf is None:
            return len(self) * (4 * self.dim + 8)
        return len(self) * (int(self._ivf.code_size) + 8) + self.nlist * 4 * self.dim

    def __len__(self) -> int:
        if self._ivf is not None:
            return int(self._ivf.ntotal)
        assert self._exact is not None
        return len(self._exact)

    def ids(self) -> np.ndarray:
        import faiss
        import numpy as np

        if self._exact is not None:
            return self._exact.ids()
        lists = self._ivf.invlists
        parts = [faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
                 for i in range(self.nlist) if lists.list_size(i)]  # fmt: skip
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    def train(self, total: int, sample: Callable[[int], np.ndarray]) -> None:
        """Make an empty index IVF-PQ for `total` vectors, trained on `sample(n)`; an index
        that would stay flat at that size is left as it is."""
        if self._ivf is not None or len(self) or total < self.config.trains_at:
            return
        nlist = self.config.nlist or auto_nlist(total)
        self._make_ivf(sample(train_size(nlist, total)), nlist)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        import numpy as np

        if not len(ids):
            return
        if self._exact is not None:
            self._exact.add(ids, vectors)
            if len(self._exact) >= self.config.trains_at:
                self._train_from_exact()
            return
        self._writable()
        self._ivf.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32),
                               np.asarray(ids, dtype=np.int64))  # fmt: skip

    def remove(self, ids: np.ndarray) -> bool:
        import numpy as np

        if self._exact is not None:
            return self._exact.remove(ids)
        if len(ids):
            self._writable()
            self._ivf.remove_ids(np.asarray(ids, dtype=np.int64))
        return True

    def search(
        self, vector: np.ndarray, k: int, allowed: Collection[int] | None = None
    ) -> list[tuple[int, float]]:
        import faiss
        import numpy as np

        if self._exact is not None:
            return self._exact.search(vector, k, allowed)
        total = int(self._ivf.ntotal)
        if total == 0 or (allowed is not None and not allowed):
            return []
        params: Any
        if allowed is None:
            params = faiss.SearchParametersIVF(nprobe=self.config.nprobe)  # type: ignore[attr-defined,call-arg]
        else:
            # scan more lists the fewer ids are allowed, to meet as many allowed ones
            nprobe = math.ceil(self.config.nprobe * total / len(allowed))
            selector = faiss.IDSelectorBatch(np.fromiter(allowed, dtype=np.int64))
            params = faiss.SearchParametersIVF(sel=selector, nprobe=min(nprobe, self.nlist))  # type: ignore[attr-defined,call-arg]
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1)
        scores, ids = self._ivf.search(query, min(k, total), params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

    def save(self, path: Path) -> None:
        if self._exact is not None:
            self._exact.save(path)
            return
        self._writable()  # a mapped index would write a reference to its file, not its lists
        write_index(self._ivf, path)

    def _make_ivf(self, sample: np.ndarray, nlist: int) -> None:
        import faiss
        import numpy as np

        m = self.config.m or auto_m(self.dim)
        ivf: Any = faiss.index_factory(self.dim, f"IVF{nlist},PQ{m}x8", faiss.METRIC_INNER_PRODUCT)
        # fewer than 39 points a centroid is deliberate above MAX_TRAIN / 39 lists (training
        # time); lowering the minimum keeps faiss from printing a warning about it
        ivf.cp.min_points_per_centroid = max(1, min(POINTS_PER_LIST, len(sample) // nlist))
        ivf.pq.cp.min_points_per_centroid = max(1, min(POINTS_PER_LIST, len(sample) // 256))
        # each sub-quantizer's k-means (256 centroids in 4 dimensions) on 16,384 points, not
        # faiss's 65,536: its cost is points × 256 distances × 25 iterations × m sub-quantizers,
        # the longest part of training at 96 sub-quantizers
        ivf.pq.cp.max_points_per_centroid = 64
        ivf.do_polysemous_training = False  # minutes of annealing for a search we never run
        ivf.train(np.ascontiguousarray(sample, dtype=np.float32))
        ivf.nprobe = self.config.nprobe
        self._ivf, self._exact, self._mapped = ivf, None, False

    def _train_from_exact(self) -> None:
        """Turn the flat index (now big enough) into IVF-PQ trained on its own vectors."""
        import faiss
        import numpy as np

        assert self._exact is not None
        ids = self._exact.ids()
        vectors = faiss.downcast_index(self._exact.index.index).reconstruct_n(0, len(ids))
        nlist = self.config.nlist or auto_nlist(len(ids))
        rows = np.random.default_rng(0).permutation(len(ids))[: train_size(nlist, len(ids))]
        self._make_ivf(vectors[np.sort(rows)], nlist)
        self._ivf.add_with_ids(vectors, ids)

    def _writable(self) -> None:
        """Copy memory-mapped lists into memory: the mapping is read-only."""
        import faiss

        if not self._mapped:
            return
        mapped = self._ivf.invlists
        lists: Any = faiss.ArrayInvertedLists(self.nlist, self._ivf.code_size)
        for i in range(self.nlist):
            if size := mapped.list_size(i):
                lists.add_entries(i, size, mapped.get_ids(i), mapped.get_codes(i))
        self._ivf.replace_invlists(lists, True)  # frees the mapped lists (and the mapping)
        lists.this.disown()  # the index owns them now
        self._mapped = False
