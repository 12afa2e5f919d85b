"""Sentence-level extractive compression and near-duplicate removal.

Sentences come from `rag.text.sentences.split_sentences` as character spans, so whatever is
kept can still be cited by its offsets in the source text.

Example:
    >>> text = "Dr. Lee ran the trial. Mice got 3.5 mg. The weather was fine."
    >>> compress("what dose did the mice get", text, keep_ratio=0.3).text
    'Mice got 3.5 mg.'
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from rag.bm25 import Tokenizer
from rag.errors import ConfigError
from rag.text.sentences import Span, split_sentences

SentenceScorer = Callable[[str, list[str]], list[float]]


@dataclass(frozen=True)
class Compressed:
    """The kept sentences of a text and where every sentence came from."""

    text: str
    kept_spans: list[Span]
    dropped_spans: list[Span]

    @property
    def kept_fraction(self) -> float:
        """Return the share of sentence characters that were kept."""
        kept = sum(e - s for s, e in self.kept_spans)
        total = kept + sum(e - s for s, e in self.dropped_spans)
        return kept / total if total else 1.0


@lru_cache(maxsize=1)
def _default_tokenizer() -> Tokenizer:
    return Tokenizer()


def lexical_scorer(tokenizer: Tokenizer | None = None, idf: bool = True) -> SentenceScorer:
    """Return a scorer: the summed weight of distinct query terms found in each sentence.

    Terms are stemmed with stopwords removed. With `idf`, a term's weight is its BM25 idf
    among the sentences being scored, so terms found in every sentence count little.
    """

    def score(query: str, sentences: list[str]) -> list[float]:
        tokenize = tokenizer or _default_tokenizer()
        wanted = set(tokenize(query))
        found = [set(tokenize(s)) & wanted for s in sentences]
        if not idf:
            return [float(len(terms)) for terms in found]
        n = len(sentences)
        df = Counter(term for terms in found for term in terms)
        weight = {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}
        return [sum(weight[t] for t in terms) for terms in found]

    return score


def compress(
    query: str,
    text: str,
    score_sentence: SentenceScorer | None = None,
    keep_ratio: float = 0.5,
    min_score: float | None = None,
    elision: str = " … ",
    hard_wraps: bool = False,
) -> Compressed:
    """Keep the sentences of `text` that best match `query`, in their original order.

    Keeps the top `keep_ratio` of sentences by score (rounded up), minus any scoring below
    `min_score`; the best sentence is always kept. `score_sentence(query, sentences)` returns
    one score per sentence (default: `lexical_scorer()`; pass an embedding scorer to rank by
    meaning). Kept sentences that were adjacent keep the text between them; a gap left by
    dropped sentences is marked with `elision`.
    """
    if not 0 < keep_ratio <= 1:
        raise ConfigError(f"keep_ratio={keep_ratio} must be in (0, 1]")
    spans = split_sentences(text, hard_wraps=hard_wraps)
    if not spans:
        return Compressed("", [], [])
    sentences = [text[s:e] for s, e in spans]
    scores = list((score_sentence or lexical_scorer())(query, sentences))
    if len(scores) != len(sentences):
        raise ValueError(f"scorer returned {len(scores)} scores for {len(sentences)} sentences")
    ranked = sorted(range(len(spans)), key=lambda i: (-scores[i], i))
    keep = set(ranked[: max(1, math.ceil(keep_ratio * len(spans) - 1e-9))])
    if min_score is not None:
        keep = {i for i in keep if scores[i] >= min_score} | {ranked[0]}
    kept = sorted(keep)
    parts = [sentences[kept[0]]]
    for prev, cur in zip(kept, kept[1:], strict=False):
        gap = text[spans[prev][1] : spans[cur][0]] if cur == prev + 1 else elision
        parts.extend((gap, sentences[cur]))
    return Compressed(
        text="".join(parts),
        kept_spans=[spans[i] for i in kept],
        dropped_spans=[spans[i] for i in range(len(spans)) if i not in keep],
    )


def _shingles(text: str, size: int) -> frozenset[tuple[str, ...]]:
    """Return the set of word `size`-grams of `text` (the whole text if it is shorter)."""
    words = re.findall(r"\w+", text.lower())
    if len(words) < size:
        return frozenset({tuple(words)})
    return frozenset(tuple(words[i : i + size]) for i in range(len(words) - size + 1))


def remove_near_duplicates(
    texts: Sequence[str], threshold: float = 0.9, shingle_size: int = 5
) -> list[int]:
    """Return the indices of texts to keep, dropping any text too similar to an earlier one.

    Similarity is the exact Jaccard similarity of lowercased word `shingle_size`-grams; a
    text is dropped when it reaches `threshold` against a kept text. Pass texts best first.
    """
    if not 0 < threshold <= 1:
        raise ConfigError(f"threshold={threshold} must be in (0, 1]")
    if shingle_size < 1:
        raise ConfigError(f"shingle_size={shingle_size} must be >= 1")
    kept: list[int] = []
    kept_sets: dict[int, frozenset[tuple[str, ...]]] = {}
    postings: dict[tuple[str, ...], list[int]] = {}
    for i, text in enumerate(texts):
        mine = _shingles(text, shingle_size)
        candidates = {j for s in mine for j in postings.get(s, ())}
        if any(
            len(mine & kept_sets[j]) / len(mine | kept_sets[j]) >= threshold for j in candidates
        ):
            continue
        kept.append(i)
        kept_sets[i] = mine
        for s in mine:
            postings.setdefault(s, []).append(i)
    return kept
