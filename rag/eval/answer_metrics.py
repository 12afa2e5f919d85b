"""Score a predicted answer against gold answers with the SQuAD 2.0 official rules.

Normalisation is the official script's: lowercase, drop ASCII punctuation, drop the articles
"a", "an", "the", collapse whitespace. Each score is the maximum over the gold answers.
As in SQuAD 2.0, an unanswerable question has no gold answer (or only answers that normalise
to nothing); it is scored against the empty answer, so only an empty prediction scores 1.

Example:
    >>> exact_match("The Normans.", ["Normans", "the Norman people"])
    1.0
    >>> token_f1("Normans of France", ["the Normans"])
    0.5
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation and articles, collapse whitespace (SQuAD rules)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(pred: str, golds: Iterable[str]) -> float:
    """Return 1.0 if the normalised prediction equals any normalised gold answer, else 0.0."""
    norm_pred = normalize_answer(pred)
    return float(any(norm_pred == gold for gold in _gold_norms(golds)))


def token_f1(pred: str, golds: Iterable[str]) -> float:
    """Return the best bag-of-tokens F1 between the prediction and any gold answer."""
    pred_tokens = normalize_answer(pred).split()
    return max(_f1(pred_tokens, gold.split()) for gold in _gold_norms(golds))


def gold_contained(pred: str, golds: Iterable[str]) -> bool:
    """Return True if any normalised gold answer appears, as whole tokens, in the prediction.

    Matching is on token boundaries: "1973" is not found in "19734". With no gold answer
    (unanswerable) only an empty prediction counts as containing it.
    """
    norm_pred = normalize_answer(pred)
    padded = f" {norm_pred} "
    return any(f" {gold} " in padded if gold else not norm_pred for gold in _gold_norms(golds))


def _gold_norms(golds: Iterable[str]) -> list[str]:
    if isinstance(golds, str):
        raise TypeError("golds must be a list of answers, not a single string")
    norms = [norm for norm in (normalize_answer(gold) for gold in golds) if norm]
    return norms or [""]


def _f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)
