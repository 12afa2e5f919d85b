"""Retrieve: BM25 and dense search over the store, fused by rank, optionally reranked.

Every stage's rank and score is kept on the hit, so `rag search --explain` can show why a
passage was picked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from rag.errors import ConfigError
from rag.fusion import reciprocal_rank_fusion

if TYPE_CHECKING:
    from rag.embedding import Embedder
    from rag.rerank import Reranker
    from rag.store import Store

Mode = Literal["bm25", "dense", "hybrid"]
MODES: tuple[str, ...] = ("bm25", "dense", "hybrid")


@dataclass
class Stages:
    """Rank (1-based) and score of a hit at each stage; None where it did not appear."""

    bm25_rank: int | None = None
    bm25_score: float | None = None
    dense_rank: int | None = None
    dense_score: float | None = None
    fused_rank: int | None = None
    fused_score: float | None = None
    rerank_score: float | None = None


@dataclass
class Hit:
    """One retrieved passage: where it is (path, page, character span) and how it ranked."""

    rank: int
    score: float
    path: str
    page: int | None
    start: int
    end: int
    heading: str
    text: str
    chunk_id: int
    kind: str = ""
    stages: Stages = field(default_factory=Stages)

    def to_dict(self) -> dict:
        from dataclasses import asdict

        data = asdict(self)
        data.update(data.pop("stages"))
        return data


@dataclass(frozen=True)
class Filters:
    """Restrict search to documents whose path matches `path_glob` and kind is in `kinds`."""

    path_glob: str | None = None
    kinds: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return bool(self.path_glob or self.kinds)


class Retriever:
    """Search one store with its embedder.

    >>> retriever = Retriever(store, embedder)              # doctest: +SKIP
    >>> [h.path for h in retriever.search("battery life", k=3)]  # doctest: +SKIP
    """

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        *,
        candidates: int = 100,
        rrf_k: int = 60,
        reranker: Reranker | None = None,
        rerank_top: int = 30,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.candidates = candidates
        self.rrf_k = rrf_k
        self.reranker = reranker
        self.rerank_top = rerank_top
        self.timings: dict[str, float] = {}

    def search(
        self,
        query: str,
        k: int = 10,
        mode: str = "hybrid",
        filters: Filters | None = None,
        rerank: bool = True,
    ) -> list[Hit]:
        """Return the `k` best passages for `query`, best first."""
        if mode not in MODES:
            raise ConfigError(f"mode={mode!r} must be one of {', '.join(MODES)}")
        if k < 1:
            raise ConfigError(f"k={k} must be at least 1")
        if not query.strip():
            raise ConfigError("the query is empty")
        self.timings = {}
        allowed = None
        if filters is not None and filters.active:
            allowed = self.store.chunk_ids_matching(filters.path_glob, filters.kinds)
            if not allowed:
                return []
        depth = max(self.candidates, k, self.rerank_top)
        stages: dict[int, Stages] = {}
        rankings: list[list[int]] = []
        if mode in ("bm25", "hybrid"):
            started = time.perf_counter()
            found = self.store.bm25_index().search(query, depth, allowed)
            self.timings["bm25"] = time.perf_counter() - started
            for rank, (cid, score) in enumerate(found, start=1):
                s = stages.setdefault(cid, Stages())
                s.bm25_rank, s.bm25_score = rank, score
            rankings.append([cid for cid, _ in found])
        if mode in ("dense", "hybrid"):
            found = self._dense(query, depth, allowed)
            for rank, (cid, score) in enumerate(found, start=1):
                s = stages.setdefault(cid, Stages())
                s.dense_rank, s.dense_score = rank, score
            rankings.append([cid for cid, _ in found])
        started = time.perf_counter()
        if len(rankings) == 1:
            fused = [(cid, stages[cid].bm25_score or stages[cid].dense_score or 0.0)
                     for cid in rankings[0]]  # fmt: skip
        else:
            fused = reciprocal_rank_fusion(rankings, k=self.rrf_k)
        for rank, (cid, score) in enumerate(fused, start=1):
            stages[cid].fused_rank, stages[cid].fused_score = rank, score
        self.timings["fusion"] = time.perf_counter() - started
        started = time.perf_counter()
        pool = fused[: max(k, self.rerank_top if (rerank and self.reranker) else k)]
        chunks = self.store.chunks_by_id(cid for cid, _ in pool)
        hits = [
            Hit(rank=0, score=score, path=c.key, page=c.page, start=c.start, end=c.end,
                heading=c.heading, text=c.text, chunk_id=cid, kind=c.kind, stages=stages[cid])
            for cid, score in pool
            if (c := chunks.get(cid)) is not None
        ]  # fmt: skip
        self.timings["fetch"] = time.perf_counter() - started
        if rerank and self.reranker is not None and hits:
            started = time.perf_counter()
            scores = self.reranker.score(query, hits)
            for hit, score in zip(hits, scores, strict=True):
                hit.stages.rerank_score = hit.score = float(score)
            hits.sort(key=lambda h: -h.score)
            self.timings["rerank"] = time.perf_counter() - started
        hits = hits[:k]
        for rank, hit in enumerate(hits, start=1):
            hit.rank = rank
        return hits

    def _dense(self, query: str, depth: int, allowed: set[int] | None) -> list[tuple[int, float]]:
        import faiss
        import numpy as np

        started = time.perf_counter()
        vector = self.embedder.encode([query])
        self.timings["embed_query"] = time.perf_counter() - started
        started = time.perf_counter()
        index = self.store.faiss_index()
        if index.ntotal == 0:
            return []
        params = None
        if allowed is not None:
            selector = faiss.IDSelectorBatch(np.fromiter(allowed, dtype=np.int64))
            params = faiss.SearchParameters(sel=selector)
        scores, ids = index.search(vector, min(depth, index.ntotal), params=params)
        self.timings["dense"] = time.perf_counter() - started
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
