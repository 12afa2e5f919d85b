"""Search and ask several indexes as one; every hit says which collection it came from.

The indexes are searched like the shards of one index: each gives its top candidates from
BM25 and dense search (one query vector, so they must share an embedder), the candidates are
pooled, and the pooled BM25 and dense lists are fused exactly as one index fuses its own
(`retrieval.fusion`: z-score by default, min-max or RRF; `retrieval.dense_weight`), then
reranked if a reranker is set. Dense similarities are comparable across the indexes as they
are; BM25 scores keep each index's own term statistics, as sharded search engines do by
default (Elasticsearch's query_then_fetch).

Normalising each index's results on their own (a z-score of each index's fused scores, or
rank fusion of their rankings) was not chosen: it makes a small index's best hit look as
strong as a big one's, whatever it says. A z-score over n hits is at most sqrt(n - 1), so a
2-chunk index's best is always 1.0 and an exact match there ranks below the loose matches of
a big index; rank fusion puts every index's best guess in the top n.

>>> many = MultiIndex({"docs": "~/idx/docs", "mail": "~/idx/mail"})  # doctest: +SKIP
>>> [(h.collection, h.path) for h in many.search("the March invoice", k=3)]  # doctest: +SKIP
[('mail', '/home/me/mail/2024-03.eml'), ('docs', '/home/me/docs/invoices.md'), ...]
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.collections import collection_names, is_index, read_collection
from rag.errors import ConfigError, IndexFormatError, IndexNotFoundError
from rag.index import Index
from rag.retrieve import (
    Candidates,
    Filters,
    Hit,
    Retrieval,
    Retriever,
    check_fusion,
    check_query,
    fuse,
    rerank_head,
)
from rag.settings import AnswerSettings, Settings, load_settings

if TYPE_CHECKING:
    from rag.ask import Answer
    from rag.embed import Embedder
    from rag.llm.base import ChatModel
    from rag.rerank import Reranker


class MultiRetriever:
    """Search several retrievers that share one embedder as if they were one index.

    `retrievers` maps each collection's name to its retriever; each contributes its top
    `depth` BM25 and dense candidates to the pooled lists that are fused (see the module
    docstring). Hits are tagged with their collection when there is more than one.

    >>> many = MultiRetriever({"docs": docs.retriever, "mail": mail.retriever})  # doctest: +SKIP
    >>> many.search("the March invoice", k=3)  # doctest: +SKIP
    """

    def __init__(
        self,
        retrievers: Mapping[str, Retriever],
        *,
        fusion: str = "zscore",
        dense_weight: float = 0.5,
        rrf_k: int = 60,
        reranker: Reranker | None = None,
        rerank_top: int = 30,
        depth: int = 100,
    ) -> None:
        if not retrievers:
            raise ConfigError("no index to search: give at least one")
        check_fusion(fusion, dense_weight, depth=depth, rerank_top=rerank_top)
        self.retrievers = dict(retrievers)
        first, *_ = self.retrievers.items()
        self.embedder: Embedder = first[1].embedder
        for name, retriever in self.retrievers.items():
            if retriever.embedder is not self.embedder:
                _refuse_mixed(first[0], _identity(self.embedder.info), name,
                              _identity(retriever.embedder.info))  # fmt: skip
        self.fusion = fusion
        self.dense_weight = dense_weight
        self.rrf_k = rrf_k
        self.reranker = reranker
        self.rerank_top = rerank_top
        self.depth = depth

    def search(self, query: str, k: int = 10, **options: Any) -> list[Hit]:
        """Return the `k` best passages of all the indexes, best first (options as `retrieve`)."""
        return self.retrieve(query, k, **options).hits

    def retrieve(
        self,
        query: str,
        k: int = 10,
        mode: str = "hybrid",
        filters: Filters | None = None,
        rerank: bool = True,
    ) -> Retrieval:
        """Return the `k` best passages of all the indexes, best first, with each stage's
        seconds summed over the indexes. Stage ranks are in the pooled lists."""
        check_query(query, k, mode)
        timings: dict[str, float] = {}
        vector = None
        if mode != "bm25":
            started = time.perf_counter()
            vector = self.embedder.encode([query])
            timings["embed_query"] = time.perf_counter() - started
        reranking = rerank and self.reranker is not None
        depth = max(self.depth, k, self.rerank_top if reranking else k)
        n = len(self.retrievers)
        pooled = Candidates()
        one_sided = mode == "hybrid" and self.fusion != "rrf"
        for i, retriever in enumerate(self.retrievers.values()):
            found = retriever.gather(query, depth, mode, filters, timings, query_vector=vector,
                                     one_sided=one_sided)  # fmt: skip
            if found is not None:
                _pool(pooled, found, i, n)
        pooled.bm25.sort(key=lambda pair: -pair[1])
        pooled.dense.sort(key=lambda pair: -pair[1])
        started = time.perf_counter()
        fused = fuse(pooled, mode, self.fusion, self.dense_weight, self.rrf_k)
        stages = pooled.stages(fused)
        timings["fusion"] = timings.get("fusion", 0.0) + time.perf_counter() - started
        started = time.perf_counter()
        pool = fused[: max(k, self.rerank_top if reranking else k)]
        fetched: dict[int, Hit] = {}
        for i, (name, retriever) in enumerate(self.retrievers.items()):
            mine = [(gid // n, score) for gid, score in pool if gid % n == i]
            own_stages = {gid // n: stages[gid] for gid, _ in pool if gid % n == i}
            for hit in retriever.fetch(mine, own_stages, name if n > 1 else ""):
                fetched[hit.chunk_id * n + i] = hit
        hits = [fetched[gid] for gid, _ in pool if gid in fetched]
        timings["fetch"] = time.perf_counter() - started
        if reranking and self.reranker is not None:
            hits = rerank_head(self.reranker, query, hits, self.rerank_top, timings)
        hits = hits[:k]
        for rank, hit in enumerate(hits, start=1):
            hit.rank = rank
        return Retrieval(hits, timings)


def _pool(pooled: Candidates, found: Candidates, i: int, n: int) -> None:
    """Add the candidates of index `i` of `n` to the pooled ones: chunk id c becomes c*n + i."""

    def key(cid: int) -> int:
        return cid * n + i

    pooled.bm25 += [(key(cid), score) for cid, score in found.bm25]
    pooled.dense += [(key(cid), score) for cid, score in found.dense]
    pooled.extra_bm25.update({key(cid): score for cid, score in found.extra_bm25.items()})
    pooled.extra_dense.update({key(cid): score for cid, score in found.extra_dense.items()})


class MultiIndex:
    """Several indexes searched and asked as one (`rag search --index docs --index mail`).

    `indexes` maps collection names to index directories, or lists the directories (named
    after them: `rag.collections.collection_names`). They must share an embedder; the
    settings, the chat model and the embedder are shared too. Models load on first use.

    >>> many = MultiIndex(["~/idx/docs", "~/idx/mail"], preset="fast")  # doctest: +SKIP
    >>> many.ask("When is the March invoice due?").sources[0].collection  # doctest: +SKIP
    'mail'
    """

    def __init__(
        self,
        indexes: Mapping[str, str | Path] | Sequence[str | Path],
        *,
        settings: Settings | None = None,
        preset: str | None = None,
        embedder: Embedder | None = None,
        chat_model: ChatModel | None = None,
    ) -> None:
        if isinstance(indexes, Mapping):
            named = {name: Path(p).expanduser() for name, p in indexes.items()}
        else:
            paths = _unique([Path(p).expanduser() for p in indexes])
            named = dict(zip(collection_names(paths), paths, strict=True))
        if not named:
            raise ConfigError("no index to search: give at least one --index")
        if settings is None:
            settings = load_settings(preset=preset).settings
        elif preset is not None:
            raise ConfigError("give MultiIndex either settings= or preset=, not both")
        _check_embedders(named)
        self.settings = settings
        self.paths = named
        self._embedder = embedder
        self._chat_model = chat_model
        self._indexes: dict[str, Index] = {}
        self._retriever: MultiRetriever | None = None
        self._lock = threading.RLock()

    @property
    def indexes(self) -> dict[str, Index]:
        """Each collection's `Index`, sharing the first one's embedder and reranker."""
        with self._lock:
            if not self._indexes:
                (name, path), *rest = self.paths.items()
                first = Index(path, settings=self.settings, embedder=self._embedder,
                              chat_model=self._chat_model)  # fmt: skip
                self._indexes[name] = first
                for other, directory in rest:
                    self._indexes[other] = Index(directory, settings=self.settings,
                                                 embedder=first.embedder,
                                                 reranker=first.reranker)  # fmt: skip
            return self._indexes

    @property
    def retriever(self) -> MultiRetriever:
        """The merged retrieval over every index (keeps their BM25 and vectors loaded)."""
        with self._lock:
            if self._retriever is None:
                indexes = self.indexes
                r = self.settings.retrieval
                first = next(iter(indexes.values()))
                self._retriever = MultiRetriever(
                    {name: idx.retriever for name, idx in indexes.items()},
                    fusion=r.fusion, dense_weight=r.dense_weight, rrf_k=r.rrf_k,
                    reranker=first.reranker,
                    rerank_top=r.rerank_top, depth=r.candidates,
                )  # fmt: skip
            return self._retriever

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        mode: str = "hybrid",
        path_glob: str | None = None,
        kinds: Sequence[str] = (),
        rerank: bool = True,
    ) -> list[Hit]:
        """Return the `k` best passages of all the indexes, each with its `collection`."""
        filters = Filters(path_glob=path_glob, kinds=tuple(kinds))
        return self.retriever.search(query, k, mode=mode, filters=filters, rerank=rerank)

    def ask(
        self,
        question: str,
        *,
        settings: AnswerSettings | None = None,
        history: Sequence[tuple[str, str]] = (),
        filters: Filters | None = None,
        on_token: Callable[[str], None] | None = None,
        on_event: Callable[[str, dict], None] | None = None,
    ) -> Answer:
        """Answer from the passages of all the indexes, as `Index.ask`; each source says
        its collection, and so does its label in the prompt ("mail: inbox/a.eml")."""
        from rag.ask import Asker

        if not question.strip():
            raise ConfigError("the question is empty")
        first = next(iter(self.indexes.values()))
        asker = Asker(self.retriever, first.chat_model(), self.settings.answer)
        return asker.ask(question, history=history, on_token=on_token, on_event=on_event,
                         settings=settings, filters=filters)  # fmt: skip

    def close(self) -> None:
        """Free the chat model and close every index."""
        with self._lock:
            for index in self._indexes.values():
                index.close()
            self._indexes, self._retriever = {}, None


def _unique(paths: list[Path]) -> list[Path]:
    """The paths without repeats (the same directory given twice is searched once)."""
    seen: dict[Path, Path] = {}
    for path in paths:
        seen.setdefault(path.resolve(), path)
    return list(seen.values())


def _identity(info: object) -> tuple[str, int | None, str]:
    return (getattr(info, "name", ""), getattr(info, "dim", None),
            getattr(info, "fingerprint", ""))  # fmt: skip


def _check_embedders(named: Mapping[str, Path]) -> None:
    """Refuse, before any model loads, indexes that do not exist or that were embedded with
    different embedders (one query vector could not search them all)."""
    seen: tuple[str, tuple[str, int | None, str]] | None = None
    for name, path in named.items():
        if not is_index(path):
            raise IndexNotFoundError(
                f"no index at {path} (collection {name}); run 'rag ingest PATH --index "
                f"{name}' first, or see 'rag indexes'"
            )
        info = read_collection(name, path)
        if not info.embedder:
            continue  # nothing embedded yet: any embedder will do
        identity = (info.embedder, info.embedder_dim, info.embedder_fingerprint)
        if seen is None:
            seen = (name, identity)
        elif identity != seen[1]:
            _refuse_mixed(seen[0], seen[1], name, identity)


def _refuse_mixed(
    a: str, a_id: tuple[str, int | None, str], b: str, b_id: tuple[str, int | None, str]
) -> None:
    def shown(i: tuple[str, int | None, str]) -> str:
        return f"{i[0]} (dim {i[1]}, fingerprint {i[2]})"

    raise IndexFormatError(
        f"cannot search {a} and {b} together: {a} was embedded with {shown(a_id)}, {b} with "
        f"{shown(b_id)}, so one query vector cannot search both; re-ingest one into a new "
        "index with the other's embedder (rag ingest --embedder ...), or search them one at "
        "a time"
    )
