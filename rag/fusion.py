"""Fuse several rankings of chunk ids (e.g. BM25 and dense) into one.

`reciprocal_rank_fusion` only looks at ranks. `score_fusion` normalises each list's scores
(z-score or min-max) and adds them with weights, so it keeps how far ahead a hit is: on
SciFact, SQuAD and PubMedQA a z-score mix of BM25 and dense beats RRF (see
evals/retrieval_research.md), which is why `Retriever` uses it by default.

Example:
    >>> reciprocal_rank_fusion([[3, 1, 2], [1, 4]])  # doctest: +ELLIPSIS
    [(1, 0.0325...), (3, 0.0163...), (4, 0.0161...), (2, 0.0158...)]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

from rag.errors import ConfigError

Normalize = Literal["minmax", "zscore", "none"]
NORMALIZE: tuple[str, ...] = ("minmax", "zscore", "none")


def _check_weights(weights: Sequence[float] | None, n: int) -> list[float]:
    """Return one weight per input, defaulting to 1.0."""
    if weights is None:
        return [1.0] * n
    if len(weights) != n:
        raise ValueError(f"got {len(weights)} weights for {n} rankings")
    if any(w < 0 for w in weights):
        raise ConfigError(f"weights must be >= 0, got {list(weights)}")
    return [float(w) for w in weights]


def _sorted(totals: dict[int, float]) -> list[tuple[int, float]]:
    """Sort by score descending; ties keep first-appearance order (dicts keep insertion)."""
    return sorted(totals.items(), key=lambda item: -item[1])


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[int]],
    k: int = 60,
    weights: Sequence[float] | None = None,
) -> list[tuple[int, float]]:
    """Return (id, score) pairs, best first, scoring each id by sum of weight / (k + rank).

    Ranks start at 1. An id repeated within one ranking counts once, at its best rank.
    Ties are broken by first appearance, reading the rankings in order.
    """
    if k < 0:
        raise ConfigError(f"k={k} must be >= 0")
    weight_list = _check_weights(weights, len(rankings))
    totals: dict[int, float] = {}
    for ranking, weight in zip(rankings, weight_list, strict=True):
        seen: set[int] = set()
        for rank, item in enumerate(ranking, start=1):
            if item in seen:
                continue
            seen.add(item)
            totals[item] = totals.get(item, 0.0) + weight / (k + rank)
    return _sorted(totals)


def score_fusion(
    results: Sequence[Sequence[tuple[int, float]]],
    weights: Sequence[float] | None = None,
    normalize: Normalize = "minmax",
    extra: Sequence[Mapping[int, float]] | None = None,
) -> list[tuple[int, float]]:
    """Return (id, score) pairs, best first, scoring each id by a weighted sum of its scores.

    Each result list is first normalised by its own statistics: "minmax" scales it to [0, 1],
    "zscore" subtracts its mean and divides by its standard deviation, "none" keeps raw scores
    (a list whose scores are all equal maps them to 1.0, and lower extra scores to 0.0).
    `extra[i]` holds scores of further ids for list i (e.g. the exact BM25 score of a dense-only
    candidate): they are normalised with list i's statistics but do not change them.
    An id with no score from a list gets that list's lowest normalised score (0 with "none").
    An id repeated within one list counts once, with its highest score.
    Ties are broken by first appearance, reading the lists in order.
    """
    if normalize not in NORMALIZE:
        raise ConfigError(f"normalize={normalize!r} must be one of {', '.join(NORMALIZE)}")
    weight_list = _check_weights(weights, len(results))
    if extra is not None and len(extra) != len(results):
        raise ValueError(f"got {len(extra)} extra score maps for {len(results)} result lists")
    scaled: list[dict[int, float]] = []
    floors: list[float] = []
    for i, hits in enumerate(results):
        best: dict[int, float] = {}
        for item, score in hits:
            if item not in best or score > best[item]:
                best[item] = float(score)
        scale = _normaliser(list(best.values()), normalize)
        floors.append(scale(min(best.values())) if best and normalize != "none" else 0.0)
        more = {item: score for item, score in (extra[i] if extra else {}).items()
                if item not in best}  # fmt: skip
        scaled.append({item: scale(score) for item, score in (best | more).items()})
    order: dict[int, None] = {}
    for part in scaled:
        order.update(dict.fromkeys(part))
    totals = {
        item: sum(w * part.get(item, floor)
                  for part, w, floor in zip(scaled, weight_list, floors, strict=True))
        for item in order
    }  # fmt: skip
    return _sorted(totals)


def _normaliser(values: list[float], normalize: str) -> Callable[[float], float]:
    """Return the function that normalises one score by the statistics of `values`."""
    if normalize == "none" or not values:
        return float
    if normalize == "minmax":
        low, high = min(values), max(values)
        return (lambda s: (s - low) / (high - low)) if high > low else _step(low)
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return (lambda s: (s - mean) / std) if std > 0 else _step(mean)


def _step(value: float) -> Callable[[float], float]:
    """Normaliser of a list without spread: its scores map to 1.0, lower extra scores to 0.0."""
    return lambda s: 1.0 if s >= value else 0.0
