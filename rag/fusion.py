"""Fuse several rankings of chunk ids (e.g. BM25 and dense) into one.

Use `reciprocal_rank_fusion` when the scores are not comparable (BM25 vs cosine): it only
looks at ranks. Use `score_fusion` when the scores carry meaning worth keeping.

Example:
    >>> reciprocal_rank_fusion([[3, 1, 2], [1, 4]])  # doctest: +ELLIPSIS
    [(1, 0.0325...), (3, 0.0163...), (4, 0.0161...), (2, 0.0158...)]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal


def _check_weights(weights: Sequence[float] | None, n: int) -> list[float]:
    """Return one weight per input, defaulting to 1.0."""
    if weights is None:
        return [1.0] * n
    if len(weights) != n:
        raise ValueError(f"got {len(weights)} weights for {n} rankings")
    if any(w < 0 for w in weights):
        raise ValueError(f"weights must be >= 0, got {list(weights)}")
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
        raise ValueError(f"k={k} must be >= 0")
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
    normalize: Literal["minmax", "none"] = "minmax",
) -> list[tuple[int, float]]:
    """Return (id, score) pairs, best first, scoring each id by a weighted sum of its scores.

    With normalize="minmax" each result list is first scaled to [0, 1] (a list whose scores
    are all equal scales to 1.0); an id missing from a list contributes 0 for it.
    An id repeated within one list counts once, with its highest score.
    Ties are broken by first appearance, reading the lists in order.
    """
    if normalize not in ("minmax", "none"):
        raise ValueError(f"normalize={normalize!r} must be 'minmax' or 'none'")
    weight_list = _check_weights(weights, len(results))
    totals: dict[int, float] = {}
    for hits, weight in zip(results, weight_list, strict=True):
        best: dict[int, float] = {}
        for item, score in hits:
            if item not in best or score > best[item]:
                best[item] = float(score)
        if not best:
            continue
        low, high = min(best.values()), max(best.values())
        for item, score in best.items():
            if normalize == "minmax":
                score = (score - low) / (high - low) if high > low else 1.0
            totals[item] = totals.get(item, 0.0) + weight * score
    return _sorted(totals)
