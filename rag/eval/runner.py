"""Run a retrieval eval: index a dataset's corpus once per chunk size, query it in every mode.

One run compares configurations side by side: search modes (``bm25``, ``dense``, ``hybrid``
and any of them with ``+rerank``) × chunk sizes, scored at the cutoffs in ``ks``. The modes of
one chunk size share one cached index, so a sweep over modes costs one encode, and a second
run reuses the index built by the first (see ``rag.eval.cache``).

How a ranking is made, per query and configuration:

- ``Index.search`` returns chunks; a document ranks by its best chunk. The head of a ranking
  is one timed ``Index.search(query, k=max(ks))``, exactly what a user asking for that many
  passages gets. Chunks of one document repeat, so when the head holds fewer than ``max(ks)``
  documents it continues with an untimed deeper search (1.5 × chunks per document × max(ks)
  chunks, at least 2 × max(ks)), keeping Recall@100 about documents, not chunks;
- ``X+rerank``: the head is ``Index.search(..., rerank=True)`` asking for the retriever's whole
  rerank pool, followed by the rest of mode X's ranking: what a user sees is reranked, and
  Recall@100 is not limited to the rerank pool. When the index has no reranker (the warm-up
  query reports no ``rerank`` stage), the mode ranks and is timed as X, and the report says so;
- rankings are cut at ``max(ks)`` documents, so ``map`` is MAP@max(ks).

Latency: wall time of each ``Index.search`` call plus the retriever's per-stage timings, as
p50/p95/mean in milliseconds, after one untimed warm-up query per configuration.

Example:
    >>> report = run_retrieval("datasets/scifact", modes=("bm25", "hybrid"))  # doctest: +SKIP
    >>> report.configs[0].metrics["ndcg@10"]  # doctest: +SKIP
    0.665
"""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rag.chunking import TokenCounter
from rag.embed import Embedder, EmbedderInfo
from rag.embed.factory import local_embedder
from rag.errors import ConfigError, DatasetError
from rag.eval.cache import CachedIndex, Corpus, IndexBuild, open_cached_index
from rag.eval.datasets import (
    BEIR_LAYOUT,
    LABELLED_LAYOUT,
    QA_LAYOUT,
    load_beir,
    load_labelled,
    load_qa,
)
from rag.eval.metrics import evaluate
from rag.ingest import IngestProgress
from rag.retrieve import MODES as BASE_MODES
from rag.settings import Settings, load_settings

DEFAULT_MODES: tuple[str, ...] = ("bm25", "dense", "hybrid", "hybrid+rerank")
RERANK_SUFFIX = "+rerank"
QUESTIONS_FILE = "questions.jsonl"
_METRIC_KINDS = ("ndcg", "recall", "mrr", "p")


@dataclass
class EvalDataset:
    """Queries, relevance judgments and the corpus to index, whatever the file layout."""

    name: str
    path: Path
    kind: str  # "beir", "qa" or "labelled"
    corpus: Corpus
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    skipped: int = 0  # questions with no relevant document (unanswerable), left out


@dataclass
class ConfigResult:
    """One configuration's scores and latencies."""

    mode: str
    chunk_tokens: int | None
    metrics: dict[str, float]
    latency_ms: dict[str, dict[str, float]]  # stage (and "total") -> p50, p95, mean
    docs_ranked: float  # mean documents per ranking (should reach max(ks))

    @property
    def name(self) -> str:
        return config_name(self.mode, self.chunk_tokens)

    def to_dict(self) -> dict:
        total = self.latency_ms.get("total", {})
        return {
            "name": self.name,
            "mode": self.mode,
            "chunk_tokens": self.chunk_tokens,
            **{name: round(value, 6) for name, value in self.metrics.items()},
            "latency_ms_p50": total.get("p50"),
            "latency_ms_p95": total.get("p95"),
            "latency_ms": self.latency_ms,
            "docs_ranked": round(self.docs_ranked, 2),
        }


@dataclass
class RetrievalReport:
    """Everything one run measured; ``to_dict`` is the report.json / ``--json`` shape."""

    dataset: str
    dataset_path: str
    kind: str
    queries: int
    skipped_queries: int
    ks: list[int]
    configs: list[ConfigResult]
    indexes: list[IndexBuild]
    reranker: str | None
    seconds: float
    created: str
    machine: dict[str, str | int]
    command: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["configs"] = [config.to_dict() for config in self.configs]
        data["indexes"] = [build.to_dict() for build in self.indexes]
        return data


class EvalProgress(Protocol):
    """Receives progress events; the CLI draws bars with an ETA from them."""

    def index_started(self, label: str) -> IngestProgress | None: ...

    def index_finished(self) -> None: ...

    def search_started(self, label: str, total: int) -> None: ...

    def search_done(self, count: int) -> None: ...

    def search_finished(self) -> None: ...


def config_name(mode: str, chunk_tokens: int | None) -> str:
    """Name a configuration: the mode, plus the chunk size when it is not the default."""
    return mode if chunk_tokens is None else f"{mode} @{chunk_tokens}tok"


def check_modes(modes: Iterable[str]) -> list[str]:
    """Validate mode names (a base mode, optionally with ``+rerank``), keeping order."""
    checked: list[str] = []
    for mode in modes:
        base = mode.removesuffix(RERANK_SUFFIX)
        if base not in BASE_MODES:
            allowed = ", ".join(BASE_MODES)
            raise ConfigError(f"mode {mode!r}: use one of {allowed}, optionally with '+rerank'")
        if mode not in checked:
            checked.append(mode)
    if not checked:
        raise ConfigError("no mode given; use bm25, dense, hybrid or hybrid+rerank")
    return checked


def load_dataset(path: str | Path, limit: int | None = None) -> EvalDataset:
    """Recognise and load a BEIR, QA or labelled dataset; keep the first `limit` queries."""
    path = Path(path).expanduser()
    if path.is_file():
        dataset = _labelled(path)
    elif not path.is_dir():
        raise DatasetError(str(path), "no such dataset folder")
    elif (path / "queries.jsonl").is_file() or (path / "qrels").is_dir():
        dataset = _beir(path)
    elif (path / "corpus.jsonl").is_file():
        if not (path / QUESTIONS_FILE).is_file():
            raise DatasetError(
                str(path),
                "has corpus.jsonl but no queries.jsonl + qrels/test.tsv (BEIR) and no "
                f"{QUESTIONS_FILE} (QA). Layouts understood: {BEIR_LAYOUT}; {QA_LAYOUT}",
            )
        dataset = _qa(path)
    elif (path / QUESTIONS_FILE).is_file():
        dataset = _labelled(path / QUESTIONS_FILE)
    else:
        raise DatasetError(
            str(path),
            "not an evaluation dataset: found no corpus.jsonl, queries.jsonl, qrels/ or "
            f"{QUESTIONS_FILE}. Layouts understood: {BEIR_LAYOUT}; {QA_LAYOUT}; a folder of "
            f"documents with {QUESTIONS_FILE}, where {LABELLED_LAYOUT}",
        )
    if limit is not None:
        if limit < 1:
            raise ConfigError(f"limit={limit} must be at least 1")
        keep = list(dataset.queries)[:limit]
        dataset.queries = {qid: dataset.queries[qid] for qid in keep}
        dataset.qrels = {qid: dataset.qrels[qid] for qid in keep}
    return dataset


def run_retrieval(
    dataset_dir: str | Path,
    modes: Sequence[str] = DEFAULT_MODES,
    chunk_sizes: Sequence[int | None] = (None,),
    ks: Sequence[int] = (10, 100),
    limit: int | None = None,
    cache_dir: str | Path | None = None,
    progress: EvalProgress | None = None,
    *,
    embedder: Embedder | str | None = None,
    settings: Settings | None = None,
) -> RetrievalReport:
    """Index the dataset's corpus (cached) and score every mode × chunk size on its queries
    under `settings` (default: the layered settings, as `rag config show` prints them)."""
    started = time.perf_counter()
    base = settings or load_settings().settings
    modes = check_modes(modes)
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ConfigError(f"ks={list(ks)} must be positive cutoffs, e.g. 10 100")
    chunk_sizes = list(dict.fromkeys(chunk_sizes)) or [None]
    dataset = load_dataset(dataset_dir, limit)
    if not dataset.queries:
        raise DatasetError(str(dataset.path), "holds no query with a relevant document")
    embedder = _ReplayEmbedder.wrap(
        embedder
        if isinstance(embedder, Embedder)
        else local_embedder(embedder or base.ingest.embedder, base.ingest)
    )
    progress = progress or _NoProgress()
    configs: list[ConfigResult] = []
    builds: list[IndexBuild] = []
    reranker: str | None = None
    for chunk_tokens in chunk_sizes:
        settings = base.replace(**{"chunk.max_tokens": chunk_tokens})
        label = "index" if chunk_tokens is None else f"index @{chunk_tokens}tok"
        bar = progress.index_started(label)
        try:
            cached = open_cached_index(
                dataset.corpus, settings, cache_dir=cache_dir, embedder=embedder, progress=bar
            )
        finally:
            progress.index_finished()
        try:
            builds.append(cached.build)
            results, reranked = _run_modes(cached, dataset, modes, ks, chunk_tokens, progress)
            configs.extend(results)
            if reranked:
                reranker = reranker or _reranker_name(cached) or "unnamed"
        finally:
            cached.close()
    notes = []
    if reranker is None and any(m.endswith(RERANK_SUFFIX) for m in modes):
        notes.append("no reranker is configured: each '+rerank' mode ranks as its base mode")
    return RetrievalReport(
        dataset=dataset.name,
        dataset_path=str(dataset.path),
        kind=dataset.kind,
        queries=len(dataset.queries),
        skipped_queries=dataset.skipped,
        ks=ks,
        configs=configs,
        indexes=builds,
        reranker=reranker,
        seconds=round(time.perf_counter() - started, 2),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        machine=_machine(),
        notes=notes,
    )


def metric_names(ks: Sequence[int]) -> list[str]:
    """Return the metrics scored for cutoffs `ks`: nDCG, Recall, MRR, P at each k, and MAP."""
    return [f"{kind}@{k}" for kind in _METRIC_KINDS for k in ks] + ["map"]


def _run_modes(
    cached: CachedIndex,
    dataset: EvalDataset,
    modes: list[str],
    ks: list[int],
    chunk_tokens: int | None,
    progress: EvalProgress,
) -> tuple[list[ConfigResult], bool]:
    """Run every mode over every query on one index, in the order of `modes`.

    Return the results and whether any query was reranked (a "+rerank" mode on an index
    without a reranker ranks, and is timed, as its base mode).
    """
    top = ks[-1]
    per_doc = cached.build.chunks / max(cached.build.documents, 1)
    depth = max(2 * top, math.ceil(1.5 * per_doc * top))
    bases = list(dict.fromkeys(m.removesuffix(RERANK_SUFFIX) for m in modes))
    passes = bases + [m for m in modes if m.endswith(RERANK_SUFFIX)]
    label = "queries" if chunk_tokens is None else f"queries @{chunk_tokens}tok"
    progress.search_started(label, len(passes) * len(dataset.queries))
    rankings: dict[str, dict[str, list[str]]] = {}
    latencies: dict[str, dict[str, list[float]]] = {}
    reranked = False
    try:
        for mode in passes:
            base = mode.removesuffix(RERANK_SUFFIX)
            rerank = mode != base
            # the rerank pool is the retriever's; asking for all of it returns it reranked
            k = getattr(cached.index.retriever, "rerank_top", ks[0]) if rerank else top
            search = _Searcher(cached, base, k, rerank)
            deep = _Searcher(cached, base, depth, False, replay=True)
            _, warm, _ = search(next(iter(dataset.queries.values())))  # loads models, indexes
            if rerank and "rerank" not in warm:  # no reranker: the mode ranks as its base
                rankings[mode], latencies[mode] = rankings[base], latencies[base]
                progress.search_done(len(dataset.queries))
                continue
            reranked = reranked or rerank
            ranked: dict[str, list[str]] = {}
            stages: dict[str, list[float]] = {}
            for qid, text in dataset.queries.items():
                docs, timings, hits = search(text)
                tail: list[str] = []
                if rerank:
                    tail = rankings[base][qid]
                elif len(docs) < top and hits == k:  # chunks of one document repeat
                    tail = deep(text)[0]
                seen = set(docs)
                docs += [d for d in tail if d not in seen]
                ranked[qid] = docs[:top]
                for stage, seconds in timings.items():
                    stages.setdefault(stage, []).append(seconds)
                progress.search_done(1)
            rankings[mode], latencies[mode] = ranked, stages
    finally:
        progress.search_finished()
    names = metric_names(ks)
    results = []
    for mode in modes:
        run = {
            qid: {doc: float(len(docs) - i) for i, doc in enumerate(docs)}
            for qid, docs in rankings[mode].items()
        }
        metrics = evaluate(run, dataset.qrels, names)
        latency = {stage: _summary(values) for stage, values in latencies[mode].items()}
        docs_ranked = float(np.mean([len(docs) for docs in rankings[mode].values()]))
        results.append(ConfigResult(mode, chunk_tokens, metrics, latency, docs_ranked))
    return results, reranked


class _Searcher:
    """Search one index in one mode; return ranked doc ids, this query's timings, hit count."""

    def __init__(
        self, cached: CachedIndex, mode: str, k: int, rerank: bool, replay: bool = False
    ) -> None:
        self.cached, self.mode, self.k, self.rerank = cached, mode, k, rerank
        self.replay = replay

    def __call__(self, query: str) -> tuple[list[str], dict[str, float], int]:
        index = self.cached.index
        embedder = index.embedder
        if isinstance(embedder, _ReplayEmbedder):
            embedder.replay = self.replay
        started = time.perf_counter()
        try:
            retrieval = index.retriever.retrieve(query, self.k, mode=self.mode, rerank=self.rerank)
        finally:
            if isinstance(embedder, _ReplayEmbedder):
                embedder.replay = False
        total = time.perf_counter() - started
        hits = retrieval.hits
        timings = dict(retrieval.timings)
        timings["total"] = total
        docs = list(dict.fromkeys(self.cached.doc_id(hit.path) for hit in hits))
        return docs, timings, len(hits)


class _ReplayEmbedder:
    """An embedder that can replay the vector of the query it encoded last (the port, by
    delegation): an untimed deeper search right after a timed one then costs no second encode.
    """

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.replay = False
        self._last: tuple[str, Any] | None = None

    @classmethod
    def wrap(cls, embedder: Embedder) -> _ReplayEmbedder:
        return embedder if isinstance(embedder, cls) else cls(embedder)

    @property
    def info(self) -> EmbedderInfo:
        return self.inner.info

    @property
    def counter(self) -> TokenCounter:
        return self.inner.counter

    def __getattr__(self, name: str) -> Any:  # spec, folder, dtype of the wrapped embedder
        return getattr(self.inner, name)

    def encode(self, texts: Sequence[str]) -> Any:
        last = self._last
        if self.replay and last is not None and list(texts) == [last[0]]:
            return last[1]
        vectors = self.inner.encode(texts)
        if len(texts) == 1:
            self._last = (texts[0], vectors)
        return vectors


def _summary(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000.0
    return {
        "p50": round(float(np.percentile(ms, 50)), 3),
        "p95": round(float(np.percentile(ms, 95)), 3),
        "mean": round(float(ms.mean()), 3),
    }


def _reranker_name(cached: CachedIndex) -> str | None:
    reranker = cached.index.reranker or getattr(cached.index.retriever, "reranker", None)
    if reranker is None:
        return None
    return str(getattr(reranker, "name", type(reranker).__name__))


def _machine() -> dict[str, str | int]:
    return {
        "cpus": os.cpu_count() or 0,
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "system": platform.system(),
    }


def _beir(root: Path) -> EvalDataset:
    data = load_beir(root)
    return EvalDataset(
        name=root.resolve().name,
        path=root,
        kind="beir",
        corpus=Corpus(root / "corpus.jsonl"),
        queries=data.queries,
        qrels=data.qrels,
    )


def _qa(root: Path) -> EvalDataset:
    data = load_qa(root)
    answerable = [q for q in data.questions if q.gold_doc_ids]
    return EvalDataset(
        name=root.resolve().name,
        path=root,
        kind="qa",
        corpus=Corpus(root / "corpus.jsonl"),
        queries={q.id: q.question for q in answerable},
        qrels={q.id: dict.fromkeys(q.gold_doc_ids, 1) for q in answerable},
        skipped=len(data.questions) - len(answerable),
    )


def _labelled(file: Path) -> EvalDataset:
    """A labelled file: its folder is the corpus; each gold file is relative to that folder."""
    questions = load_labelled(file)
    root = file.parent
    lines = [n for n, text in enumerate(file.read_bytes().splitlines(), start=1) if text.strip()]
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for question, line in zip(questions, lines, strict=True):
        if not question.gold_doc_ids:
            continue
        gold = question.gold_doc_ids[0]
        target = root / gold
        if not target.is_file():
            raise DatasetError(str(file), f"'file' {gold!r} is not a file under {root}", line)
        relative = os.path.relpath(os.path.abspath(target), os.path.abspath(root))
        queries[question.id] = question.question
        qrels[question.id] = {relative.replace(os.sep, "/"): 1}
    return EvalDataset(
        name=root.resolve().name,
        path=root,
        kind="labelled",
        corpus=Corpus(root, exclude=(file,)),
        queries=queries,
        qrels=qrels,
        skipped=len(questions) - len(queries),
    )


class _NoProgress:
    def index_started(self, label: str) -> IngestProgress | None:
        return None

    def index_finished(self) -> None:
        pass

    def search_started(self, label: str, total: int) -> None:
        pass

    def search_done(self, count: int) -> None:
        pass

    def search_finished(self) -> None:
        pass
