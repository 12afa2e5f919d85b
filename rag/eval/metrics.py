"""Score a retrieval run against relevance judgments, with trec_eval's definitions.

A run maps each query id to ``{doc_id: score}``; qrels map each query id to
``{doc_id: relevance}`` (graded relevance allowed). Metrics are named ``ndcg@10``,
``recall@100``, ``mrr@10``, ``map``, ``p@10`` (case-insensitive; ``ndcg``, ``recall``,
``mrr`` and ``map`` also work without a cutoff, meaning the whole ranking).

Definitions follow trec_eval 9.x (as wrapped by pytrec_eval), so numbers are comparable with
published BEIR tables:

- ranking: score descending, ties by doc id descending (byte order); scores are compared as
  32-bit floats, as trec_eval stores them;
- a document is relevant when its relevance is ``>= relevance_level`` (default 1); unjudged
  documents are not relevant;
- nDCG@k (``ndcg_cut_k``): gain = relevance (negative relevance counts as 0), discount
  ``log2(rank + 1)``, ideal ranking built from the qrels; 0 when the ideal gain is 0;
- Recall@k: relevant in top k / relevant in qrels; P@k: relevant in top k / k;
- MRR@k: 1 / rank of the first relevant document in the top k, else 0;
- MAP (``map``): sum of precision at each relevant rank / relevant in qrels (``map@k`` is
  trec_eval's ``map_cut_k``).

Averaging: the mean is taken over every query in the qrels, including queries whose
judgments hold no relevant document (they score 0, as in trec_eval). Queries the run lacks
score 0 on every metric, as with ``trec_eval -c`` (plain trec_eval and pytrec_eval drop them,
which would flatter a run that skips hard queries). Run queries absent from the qrels are
ignored.

Example:
    >>> run = {"q1": {"d1": 2.0, "d2": 1.0}}
    >>> qrels = {"q1": {"d2": 1}}
    >>> evaluate(run, qrels, metrics=("mrr@10", "p@1"))
    {'mrr@10': 0.5, 'p@1': 0.0}
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from rag.errors import ConfigError

Run = Mapping[str, Mapping[str, float]]
Qrels = Mapping[str, Mapping[str, int]]

DEFAULT_METRICS: tuple[str, ...] = ("ndcg@10", "recall@100", "mrr@10", "map", "p@10")

_KINDS = ("ndcg", "recall", "mrr", "map", "p")
_NEEDS_CUTOFF = ("p",)
_SPEC = re.compile(r"^\s*([a-z]+)\s*(?:@\s*(\d+))?\s*$")


@dataclass(frozen=True)
class MetricSpec:
    """One metric and its cutoff; ``k=None`` means the whole ranking."""

    kind: str
    k: int | None = None

    def __str__(self) -> str:
        return self.kind if self.k is None else f"{self.kind}@{self.k}"

    @classmethod
    def parse(cls, text: str | MetricSpec) -> MetricSpec:
        """Parse a name like ``ndcg@10``; raise ConfigError naming a bad one."""
        if isinstance(text, MetricSpec):
            return text
        match = _SPEC.match(text.lower())
        known = ", ".join(f"{kind}@k" for kind in _KINDS)
        if match is None or match.group(1) not in _KINDS:
            raise ConfigError(f"unknown metric {text!r}; use one of {known} (e.g. ndcg@10, map)")
        kind, cutoff = match.group(1), match.group(2)
        if cutoff is None:
            if kind in _NEEDS_CUTOFF:
                raise ConfigError(f"metric {text!r} needs a cutoff, e.g. {kind}@10")
            return cls(kind)
        k = int(cutoff)
        if k < 1:
            raise ConfigError(f"metric {text!r}: the cutoff must be at least 1")
        return cls(kind, k)


def parse_metrics(metrics: Iterable[str | MetricSpec]) -> list[MetricSpec]:
    """Parse metric names, keeping their order and dropping repeats."""
    specs: list[MetricSpec] = []
    for metric in [metrics] if isinstance(metrics, str) else metrics:
        spec = MetricSpec.parse(metric)
        if spec not in specs:
            specs.append(spec)
    return specs


def trec_order(scores: Mapping[str, float]) -> list[str]:
    """Rank doc ids as trec_eval does: float32 score descending, then doc id descending."""
    ids = list(scores)
    with np.errstate(over="ignore"):
        sims = np.asarray([scores[doc] for doc in ids], dtype=np.float64).astype(np.float32)
    if np.isnan(sims).any():
        bad = [doc for doc, sim in zip(ids, sims.tolist(), strict=True) if math.isnan(sim)]
        raise ConfigError(f"run scores must be numbers, got NaN for doc ids {bad[:5]}")
    return [doc for _, doc in sorted(zip(sims.tolist(), ids, strict=True), reverse=True)]


def score_ranking(
    ranking: Sequence[str],
    judgments: Mapping[str, int],
    metrics: Iterable[str | MetricSpec] = DEFAULT_METRICS,
    relevance_level: int = 1,
) -> dict[str, float]:
    """Score one ranked list of doc ids (best first) against one query's judgments."""
    rels = [judgments.get(doc, 0) for doc in ranking]
    hits = [rel >= relevance_level for rel in rels]
    num_rel = sum(1 for rel in judgments.values() if rel >= relevance_level)
    out: dict[str, float] = {}
    for spec in parse_metrics(metrics):
        k = len(ranking) if spec.k is None else spec.k
        if spec.kind == "ndcg":
            out[str(spec)] = _ndcg(rels[:k], judgments.values(), spec.k)
        elif spec.kind == "recall":
            out[str(spec)] = sum(hits[:k]) / num_rel if num_rel else 0.0
        elif spec.kind == "p":
            out[str(spec)] = sum(hits[:k]) / k
        elif spec.kind == "mrr":
            first = next((i for i, hit in enumerate(hits[:k]) if hit), None)
            out[str(spec)] = 0.0 if first is None else 1.0 / (first + 1)
        else:  # map
            out[str(spec)] = _average_precision(hits[:k], num_rel)
    return out


def evaluate_per_query(
    run: Run,
    qrels: Qrels,
    metrics: Iterable[str | MetricSpec] = DEFAULT_METRICS,
    relevance_level: int = 1,
) -> dict[str, dict[str, float]]:
    """Score every query in the qrels; a query missing from the run scores 0."""
    specs = parse_metrics(metrics)
    return {
        qid: score_ranking(trec_order(run.get(qid, {})), judgments, specs, relevance_level)
        for qid, judgments in qrels.items()
    }


def evaluate(
    run: Run,
    qrels: Qrels,
    metrics: Iterable[str | MetricSpec] = DEFAULT_METRICS,
    relevance_level: int = 1,
) -> dict[str, float]:
    """Average each metric over the queries in the qrels (see the module docstring)."""
    if not qrels:
        raise ConfigError("qrels hold no query: there is nothing to average over")
    specs = parse_metrics(metrics)
    per_query = evaluate_per_query(run, qrels, specs, relevance_level)
    names = [str(spec) for spec in specs]
    return {name: math.fsum(q[name] for q in per_query.values()) / len(qrels) for name in names}


def _ndcg(rels: Sequence[int], judged: Iterable[int], k: int | None) -> float:
    """Divide the DCG of ``rels`` by the DCG of the best top-k ordering of the judgments."""
    ideal = sorted((rel for rel in judged if rel > 0), reverse=True)[:k]
    ideal_dcg = _dcg(ideal)
    return _dcg(rels) / ideal_dcg if ideal_dcg > 0 else 0.0


def _dcg(rels: Iterable[int]) -> float:
    return sum(rel / math.log2(rank + 2) for rank, rel in enumerate(rels) if rel > 0)


def _average_precision(hits: Sequence[bool], num_rel: int) -> float:
    if not num_rel:
        return 0.0
    total, found = 0.0, 0
    for rank, hit in enumerate(hits, start=1):
        if hit:
            found += 1
            total += found / rank
    return total / num_rel
