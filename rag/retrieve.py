"""Retrieve: BM25 and dense search over the store, fused, optionally reranked.

Fusion (`fusion=`): "zscore" (default) standardises each retriever's candidate scores by
their mean and spread over its own top `candidates` and adds them, `dense_weight` for dense
and 1 - `dense_weight` for BM25; a candidate found by only one retriever gets its exact score
from the other. "minmax" does the same with min-max scaling; "rrf" is reciprocal rank fusion
(`rrf_k`). On SciFact, SQuAD and PubMedQA z-score fusion beats RRF (nDCG@10 0.728 vs 0.710,
0.911 vs 0.881, 0.991 vs 0.989; evals/retrieval_research.md).

Every stage's rank and score is kept on the hit, so `rag search --explain` can show why a
passage was picked.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from rag.errors import ConfigError
from rag.fusion import reciprocal_rank_fusion, score_fusion

if TYPE_CHECKING:
    import numpy as np

    from rag.embed import Embedder
    from rag.rerank import Reranker
    from rag.store import Store

Mode = Literal["bm25", "dense", "hybrid"]
MODES: tuple[str, ...] = ("bm25", "dense", "hybrid")
Fusion = Literal["zscore", "minmax", "rrf"]
FUSIONS: tuple[str, ...] = ("zscore", "minmax", "rrf")


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
    detail: str | None = None  # finer than the page: "rows 12–40" of a sheet
    stages: Stages = field(default_factory=Stages)
    collection: str = ""  # the index it came from, when several were searched (rag.multi)

    def to_dict(self) -> dict:
        from dataclasses import asdict

        data = asdict(self)
        data.update(data.pop("stages"))
        return data


@dataclass
class Retrieval:
    """What one search found, and the seconds each stage took (embed_query, bm25, dense,
    fusion, fetch, rerank)."""

    hits: list[Hit]
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Filters:
    """Restrict search to documents whose path matches `path_glob` and kind is in `kinds`."""

    path_glob: str | None = None
    kinds: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return bool(self.path_glob or self.kinds)


@dataclass
class Candidates:
    """What BM25 and dense search found for one query, before fusion: (chunk id, score)
    pairs, best first, and the exact scores of one-sided candidates from the other side."""

    bm25: list[tuple[int, float]] = field(default_factory=list)
    dense: list[tuple[int, float]] = field(default_factory=list)
    extra_bm25: dict[int, float] = field(default_factory=dict)
    extra_dense: dict[int, float] = field(default_factory=dict)

    def stages(self, fused: list[tuple[int, float]]) -> dict[int, Stages]:
        """Each candidate's rank and score in the BM25, dense and `fused` lists."""
        stages: dict[int, Stages] = {}
        for rank, (cid, score) in enumerate(self.bm25, start=1):
            s = stages.setdefault(cid, Stages())
            s.bm25_rank, s.bm25_score = rank, score
        for rank, (cid, score) in enumerate(self.dense, start=1):
            s = stages.setdefault(cid, Stages())
            s.dense_rank, s.dense_score = rank, score
        for rank, (cid, score) in enumerate(fused, start=1):
            stages[cid].fused_rank, stages[cid].fused_score = rank, score
        return stages


def fuse(
    found: Candidates, mode: str, fusion: str, dense_weight: float, rrf_k: int
) -> list[tuple[int, float]]:
    """One ranking of the candidates, best first: BM25 or dense alone, else their fusion."""
    if mode != "hybrid":
        return found.bm25 or found.dense
    if fusion == "rrf":
        rankings = [[cid for cid, _ in found.bm25], [cid for cid, _ in found.dense]]
        return reciprocal_rank_fusion(rankings, k=rrf_k)
    return score_fusion(
        [found.bm25, found.dense],
        weights=[1.0 - dense_weight, dense_weight],
        normalize="zscore" if fusion == "zscore" else "minmax",
        extra=[found.extra_bm25, found.extra_dense],
    )


class Searcher(Protocol):
    """What answering needs from retrieval: `Retriever`, or `rag.multi.MultiRetriever` over
    several indexes that share one embedder."""

    @property
    def embedder(self) -> Embedder: ...

    def retrieve(
        self,
        query: str,
        k: int = 10,
        mode: str = "hybrid",
        filters: Filters | None = None,
        rerank: bool = True,
    ) -> Retrieval: ...


def check_fusion(fusion: str, dense_weight: float, **at_least_one: int) -> None:
    """Raise ConfigError for an unknown fusion, a dense weight outside [0, 1], or any of the
    named counts (`candidates=…`, `rerank_top=…`) under 1."""
    if fusion not in FUSIONS:
        raise ConfigError(f"fusion={fusion!r} must be one of {', '.join(FUSIONS)}")
    if not 0.0 <= dense_weight <= 1.0:
        raise ConfigError(f"dense_weight={dense_weight} must be between 0 and 1")
    if any(value < 1 for value in at_least_one.values()):
        named = " and ".join(f"{name}={value}" for name, value in at_least_one.items())
        raise ConfigError(f"{named} must be >= 1")


def check_query(query: str, k: int, mode: str) -> None:
    """Raise ConfigError for an unknown mode, k under 1 or an empty query."""
    if mode not in MODES:
        raise ConfigError(f"mode={mode!r} must be one of {', '.join(MODES)}")
    if k < 1:
        raise ConfigError(f"k={k} must be at least 1")
    if not query.strip():
        raise ConfigError("the query is empty")


def rerank_head(
    reranker: Reranker, query: str, hits: list[Hit], top: int, timings: dict[str, float]
) -> list[Hit]:
    """Rescore the first `top` hits with `reranker` and sort them; the rest follow as they were."""
    if not hits:
        return hits
    started = time.perf_counter()
    head, tail = hits[:top], hits[top:]
    scores = reranker.score(query, head)
    for hit, score in zip(head, scores, strict=True):
        hit.stages.rerank_score = hit.score = float(score)
    head.sort(key=lambda h: -h.score)
    timings["rerank"] = time.perf_counter() - started
    return head + tail


class Retriever:
    """Search one store with its embedder.

    `candidates` is how many hits each of BM25 and dense contributes to fusion; the reranker,
    if any, reorders the best `rerank_top` fused hits (the rest follow in fused order). The
    keyword and vector indexes are the store's (its backends: exact FAISS, HNSW, ...). A
    retriever keeps no per-query state: several threads may search it at once.

    >>> retriever = Retriever(store, embedder)              # doctest: +SKIP
    >>> [h.path for h in retriever.search("battery life", k=3)]  # doctest: +SKIP
    >>> Retriever(store, embedder, fusion="rrf", rrf_k=60)  # doctest: +SKIP
    """

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        *,
        candidates: int = 100,
        fusion: str = "zscore",
        dense_weight: float = 0.5,
        rrf_k: int = 60,
        reranker: Reranker | None = None,
        rerank_top: int = 30,
    ) -> None:
        check_fusion(fusion, dense_weight, candidates=candidates, rerank_top=rerank_top)
        self.store = store
        self.embedder = embedder
        self.candidates = candidates
        self.fusion = fusion
        self.dense_weight = dense_weight
        self.rrf_k = rrf_k
        self.reranker = reranker
        self.rerank_top = rerank_top

    def search(self, query: str, k: int = 10, **options: Any) -> list[Hit]:
        """Return the `k` best passages for `query`, best first (options as `retrieve`)."""
        return self.retrieve(query, k, **options).hits

    def retrieve(
        self,
        query: str,
        k: int = 10,
        mode: str = "hybrid",
        filters: Filters | None = None,
        rerank: bool = True,
    ) -> Retrieval:
        """Return the `k` best passages for `query`, best first, with each stage's seconds."""
        check_query(query, k, mode)
        timings: dict[str, float] = {}
        reranking = rerank and self.reranker is not None
        depth = max(self.candidates, k, self.rerank_top if reranking else k)
        one_sided = mode == "hybrid" and self.fusion != "rrf"
        found = self.gather(query, depth, mode, filters, timings, one_sided=one_sided)
        if found is None:
            return Retrieval([], timings)
        started = time.perf_counter()
        fused = fuse(found, mode, self.fusion, self.dense_weight, self.rrf_k)
        stages = found.stages(fused)
        timings["fusion"] = timings.get("fusion", 0.0) + time.perf_counter() - started
        started = time.perf_counter()
        pool = fused[: max(k, self.rerank_top if reranking else k)]
        hits = self.fetch(pool, stages)
        timings["fetch"] = time.perf_counter() - started
        if reranking and self.reranker is not None:
            hits = rerank_head(self.reranker, query, hits, self.rerank_top, timings)
        hits = hits[:k]
        for rank, hit in enumerate(hits, start=1):
            hit.rank = rank
        return Retrieval(hits, timings)

    def gather(
        self,
        query: str,
        depth: int,
        mode: str = "hybrid",
        filters: Filters | None = None,
        timings: dict[str, float] | None = None,
        *,
        query_vector: np.ndarray | None = None,
        one_sided: bool = True,
    ) -> Candidates | None:
        """The top `depth` BM25 and dense candidates `mode` asks for (None: `filters` allow
        no chunk); with `one_sided` (hybrid score fusion), also the exact score from the
        other retriever of each candidate only one of them found. `query_vector` is the
        query already embedded by this retriever's embedder (`rag.multi` embeds it once)."""
        timings = {} if timings is None else timings
        allowed = None
        if filters is not None and filters.active:
            allowed = self.store.chunk_ids_matching(filters.path_glob, filters.kinds)
            if not allowed:
                return None
        found = Candidates()
        vector = None
        if mode in ("bm25", "hybrid"):
            started = time.perf_counter()
            found.bm25 = self.store.keyword_index().search(query, depth, allowed)
            timings["bm25"] = timings.get("bm25", 0.0) + time.perf_counter() - started
        if mode in ("dense", "hybrid"):
            vector = self._embed(query, timings) if query_vector is None else query_vector
            found.dense = self._dense(vector, depth, allowed, timings)
        if one_sided and mode == "hybrid":
            started = time.perf_counter()
            self._score_one_sided(query, vector, found, timings)
            timings["fusion"] = timings.get("fusion", 0.0) + time.perf_counter() - started
        return found

    def fetch(
        self, pool: list[tuple[int, float]], stages: dict[int, Stages], collection: str = ""
    ) -> list[Hit]:
        """The hits of the (chunk id, score) pairs in `pool`, in its order."""
        chunks = self.store.chunks_by_id(cid for cid, _ in pool)
        return [
            Hit(rank=0, score=score, path=c.key, page=c.page, start=c.start, end=c.end,
                heading=c.heading, text=c.text, chunk_id=cid, kind=c.kind, detail=c.detail,
                stages=stages[cid], collection=collection)
            for cid, score in pool
            if (c := chunks.get(cid)) is not None
        ]  # fmt: skip

    def _score_one_sided(
        self,
        query: str,
        vector: np.ndarray | None,
        found: Candidates,
        timings: dict[str, float],
    ) -> None:
        """Score each candidate only one retriever found with the other one, exactly."""
        in_bm25 = {cid for cid, _ in found.bm25}
        in_dense = {cid for cid, _ in found.dense}
        only_dense = in_dense - in_bm25
        only_bm25 = in_bm25 - in_dense
        found.extra_bm25 = dict.fromkeys(only_dense, 0.0)  # BM25 lists only > 0
        if only_dense:
            extra = self.store.keyword_index().search(query, len(only_dense), only_dense)
            found.extra_bm25.update(extra)
        if only_bm25 and vector is not None:
            found.extra_dense = dict(self._dense(vector, len(only_bm25), only_bm25, timings))

    def _embed(self, query: str, timings: dict[str, float]) -> np.ndarray:
        started = time.perf_counter()
        vector = self.embedder.encode([query])
        timings["embed_query"] = time.perf_counter() - started
        return vector

    def _dense(
        self,
        vector: np.ndarray,
        depth: int,
        allowed: Collection[int] | None,
        timings: dict[str, float],
    ) -> list[tuple[int, float]]:
        """Inner-product search in the store's vector index, restricted to `allowed` ids."""
        started = time.perf_counter()
        found = self.store.dense_search(vector, depth, allowed)
        timings["dense"] = timings.get("dense", 0.0) + time.perf_counter() - started
        return found
