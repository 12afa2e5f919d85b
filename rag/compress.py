"""Sentence-level extractive compression and near-duplicate removal.

`split_sentences` returns character spans, so whatever is kept can still be cited by its
offsets in the source text.

Example:
    >>> text = "Dr. Lee ran the trial. Mice got 3.5 mg. The weather was fine."
    >>> [text[s:e] for s, e in split_sentences(text)]
    ['Dr. Lee ran the trial.', 'Mice got 3.5 mg.', 'The weather was fine.']
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

Span = tuple[int, int]
SentenceScorer = Callable[[str, list[str]], list[float]]

# Words that end with a period without ending the sentence (lowercase, final period removed).
_ABBREVIATION_LINES = (
    "mr mrs ms mx dr prof sr jr st mt rev hon gen col lt capt sgt cmdr gov sen rep pres messrs mme",
    "e.g i.e cf vs viz al approx ca resp incl esp dept univ assn bros",
    "fig figs eq eqs ref refs vol vols pp ch chap sect para ed eds op cit",
    "jan feb mar apr jun jul aug sep sept oct nov dec",
)
ABBREVIATIONS = frozenset(word for line in _ABBREVIATION_LINES for word in line.split())
# Abbreviations only when a number follows ("No. 5", "Art. 12"); otherwise ordinary words.
NUMBER_ABBREVIATIONS = frozenset({"no", "nos", "art", "sec"})

_BREAK_RE = re.compile(r"\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")
_BOUNDARY_RE = re.compile(r"(?:[.!?]+|…)[\"'”’»)\]]*(?=\s+(\S+))")
_PLAIN_LOWER_RE = re.compile(r"[^\W\d_A-Z]+(?:['’-][^\W\d_A-Z]+)*\W*")  # "and", "well-known,"
_DOTTED_RE = re.compile(r"(?:[^\W\d_]\.)+[^\W\d_]")  # U.S, e.g, Ph.D
_BULLET = r"(?:[-*+•‣◦▪·–—]|\(?\d{1,3}[.)]|\(?[a-zA-Z][.)]|\(?[ivxlcdmIVXLCDM]{1,6}[.)])"
_MARKER_RE = re.compile(_BULLET)
_BLOCK_START_RE = re.compile(rf"[ \t]*(?:{_BULLET}[ \t]|#{{1,6}}[ \t]|\|)")
_BLOCK_ALONE_RE = re.compile(r"[ \t]*(?:#{1,6}[ \t]|\|)")  # headings, table rows
_OPENERS = "([{\"'“‘«"


def split_sentences(text: str, hard_wraps: bool = False) -> list[Span]:
    """Return the (start, end) character spans of the sentences in `text`.

    Every line break ends a sentence, so each line, bullet item or heading is at least one
    sentence. Set `hard_wraps=True` for text wrapped at a fixed width (plain text, PDF): then
    only blank lines, bullet items, headings and table rows break, and single newlines are
    spaces. Abbreviations ("e.g.", "Dr.", "Fig. 2"), initials and decimals do not end a
    sentence. Spans are never empty, never start or end with whitespace, and cover every
    non-whitespace character of `text`.
    """
    blocks = _paragraphs(text) if hard_wraps else _lines(text)
    spans: list[Span] = []
    for start, end in blocks:
        spans.extend(_split_block(text, start, end))
    return spans


def _lines(text: str) -> list[Span]:
    """Return the spans of the lines of `text`, without their line breaks (may be empty)."""
    spans, pos = [], 0
    for match in _BREAK_RE.finditer(text):
        spans.append((pos, match.start()))
        pos = match.end()
    spans.append((pos, len(text)))
    return spans


def _paragraphs(text: str) -> list[Span]:
    """Return spans of paragraphs, list items, headings and table rows; other lines join."""
    blocks: list[Span] = []
    current: Span | None = None
    alone = False  # the current block is a heading or table row and ends with its line
    for start, end in _lines(text):
        line = text[start:end]
        if not line.strip():
            if current:
                blocks.append(current)
            current = None
        elif current is None or alone or _BLOCK_START_RE.match(line):
            if current:
                blocks.append(current)
            current = (start, end)
        else:
            current = (current[0], end)
        alone = bool(_BLOCK_ALONE_RE.match(line))
    if current:
        blocks.append(current)
    return blocks


def _split_block(text: str, start: int, end: int) -> list[Span]:
    """Split one block into sentences and trim whitespace from each."""
    block = text[start:end]
    cuts = [0]
    for match in _BOUNDARY_RE.finditer(block):
        if _is_sentence_end(block, cuts[-1], match):
            cuts.append(match.end())
    cuts.append(len(block))
    spans = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        piece = block[a:b]
        left = len(piece) - len(piece.lstrip())
        right = len(piece.rstrip())
        if right > left:
            spans.append((start + a + left, start + a + right))
    return spans


def _is_sentence_end(block: str, sentence_start: int, match: re.Match[str]) -> bool:
    """Decide whether the punctuation in `match` ends the sentence begun at `sentence_start`."""
    following = match.group(1)
    if following[0] in ".,;:!?…":
        return False  # dot leaders ". . . ." and stray punctuation
    if following[0].islower() and _PLAIN_LOWER_RE.fullmatch(following):
        return False  # a sentence goes on; "mRNA", "p53", "miR-21" may still start one
    if match.end() - sentence_start <= 12 and _MARKER_RE.fullmatch(
        block[sentence_start : match.end()].strip()
    ):
        return False  # "1." or "a)" opening a list item
    punct = match.group(0)
    if not punct.startswith(".") or punct.startswith(".."):
        return True  # "!", "?", "..." and "…" always end a sentence before a non-lowercase
    before = block[max(sentence_start, match.start() - 40) : match.start()].split()
    word = before[-1].lstrip(_OPENERS) if before else ""
    if word and not word.strip(".…"):
        return False  # the last dot of a leader ". . . . 12"
    lowered = word.lower()
    if lowered in ABBREVIATIONS or _DOTTED_RE.fullmatch(word):
        return False
    if lowered in NUMBER_ABBREVIATIONS and following[0].isdigit():
        return False
    return not (len(word) == 1 and word.isalpha())  # an initial: "J. K. Rowling"


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
