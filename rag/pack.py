"""Fit passages into the prompt's token budget and order them for long-context models.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Hit:
    ...     text: str
    ...     score: float
    >>> budget = token_budget(context_window=40, template_tokens=20, reserved_answer_tokens=12)
    >>> hits = [Hit("a b c", 0.9), Hit("d e f g h i", 0.8), Hit("j k", 0.7), Hit("l", 0.1)]
    >>> [h.text for h in pack(hits, budget, count_tokens=lambda text: len(text.split()))]
    ['a b c', 'l', 'j k']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from rag.errors import ConfigError


class Passage(Protocol):
    """Anything with a text and a relevance score (higher is better)."""

    @property
    def text(self) -> str: ...

    @property
    def score(self) -> float: ...


P = TypeVar("P", bound=Passage)
T = TypeVar("T")


def token_budget(context_window: int, template_tokens: int, reserved_answer_tokens: int) -> int:
    """Return the tokens left for passages: window - prompt template - reserved answer."""
    for name, value in [
        ("context_window", context_window),
        ("template_tokens", template_tokens),
        ("reserved_answer_tokens", reserved_answer_tokens),
    ]:
        if value < 0:
            raise ConfigError(f"{name} must be >= 0, got {value}")
    budget = context_window - template_tokens - reserved_answer_tokens
    if budget <= 0:
        raise ConfigError(
            f"no room for passages: context window {context_window} - prompt template "
            f"{template_tokens} - reserved answer {reserved_answer_tokens} = {budget} tokens. "
            "Use a model with a larger context window, raise the context size setting, "
            "shorten the prompt template or reserve fewer answer tokens."
        )
    return budget


def pack(
    passages: Sequence[P],
    budget: int,
    count_tokens: Callable[[str], int],
    separator_tokens: int = 0,
) -> list[P]:
    """Return the passages that fit in `budget`, in lost-in-the-middle order.

    Passages are taken by score, highest first; one that does not fit is skipped and smaller
    ones are still tried. `separator_tokens` is paid between each pair of packed passages,
    so the total never exceeds `budget`. Equal scores keep their input order.
    """
    if budget < 0:
        raise ConfigError(f"budget={budget} must be >= 0")
    if separator_tokens < 0:
        raise ConfigError(f"separator_tokens={separator_tokens} must be >= 0")
    by_score = sorted(passages, key=lambda p: -p.score)
    packed: list[P] = []
    used = 0
    for passage in by_score:
        cost = count_tokens(passage.text) + (separator_tokens if packed else 0)
        if used + cost <= budget:
            packed.append(passage)
            used += cost
    return lost_in_the_middle(packed)


def lost_in_the_middle(ranked: Sequence[T]) -> list[T]:
    """Reorder best-first items so the strongest sit at both ends and the weakest in the middle.

    1st goes first, 2nd last, 3rd second, 4th second-to-last, ...: [1, 2, 3, 4, 5] becomes
    [1, 3, 5, 4, 2] (as Haystack's LostInTheMiddleRanker; Liu et al. 2023).
    """
    items = list(ranked)
    return items[0::2] + items[1::2][::-1]
