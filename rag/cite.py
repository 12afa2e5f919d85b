"""Citations: parse `[n]` markers, check each answer sentence against its sources, repair.

Small models cite badly, so the pipeline does not trust the markers: every answer sentence gets
a support score against every source (the best of lexical coverage and embedding similarity to
the source's sentences), halved for a source that does not state the sentence's key terms
(numbers, names, acronyms) or states them only away from what the question asks about; invalid
markers are removed and reported, a valid marker whose source
does not back the sentence is dropped when another cited source does, and a sentence is
re-attributed to the source that supports it best when none of its own citations does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rag.text.key_terms import bound, missing_terms
from rag.text.sentences import sentences_or_whole, split_sentences
from rag.text.words import content_words

if TYPE_CHECKING:
    from rag.embed import Embedder

CITATION = re.compile(r"\s*\[(\d+(?:\s*[,;]\s*\d+)*)\]")
LEADING_CITATIONS = re.compile(r"(?:\s*\[\d+(?:\s*[,;]\s*\d+)*\])+")
CLAIM_MARGIN = 0.05  # how much less of the question a kept citation may cover than the best
# A source that lacks a sentence's key terms (rag/text/key_terms.py), or holds them only away
# from what the question asks about, backs it at most this share of its similarity score.
KEY_TERM_PENALTY = 0.5


@dataclass(frozen=True)
class SourceText:
    """A numbered source as shown to the model."""

    n: int
    text: str


@dataclass
class CitedSentence:
    """One answer sentence with the sources that back it."""

    text: str
    citations: list[int]
    support: float
    supported: bool
    quote: tuple[int, int, int] | None = None  # (source n, start, end) of the best span
    invalid: list[int] = field(default_factory=list)
    repaired: bool = False
    unsupporting: list[int] = field(default_factory=list)  # cited, valid, but not backing it
    cited: list[int] = field(default_factory=list)  # the citations as the model wrote them
    spans: dict[int, tuple[int, int]] = field(default_factory=dict)  # kept n -> best span
    missing: list[str] = field(default_factory=list)  # key terms no kept source states

    @property
    def repaired_from(self) -> list[int]:
        """The model's citations the checker moved to another source (`citations` holds it)."""
        added = [n for n in self.citations if n not in self.cited]
        return [n for n in self.cited if n not in self.citations] if added else []

    @property
    def dropped(self) -> list[int]:
        """The model's citations removed with nothing in their place: a source that was not
        given (`invalid`) or one that does not back the sentence."""
        if self.repaired_from:
            return []
        return [n for n in self.cited if n not in self.citations]

    def to_dict(self) -> dict:
        """The `--json` shape of a checked sentence."""
        return {
            "text": self.text,
            "citations": self.citations,
            "support": self.support,
            "supported": self.supported,
            "repaired": self.repaired,
            "unsupporting_citations": self.unsupporting,
            "repaired_from": self.repaired_from,
            "dropped": self.dropped,
            "missing_terms": self.missing,
        }


def strip_citations(text: str) -> tuple[str, list[int]]:
    """Remove `[n]` markers from text; return the clean text and the numbers, in order."""
    numbers: list[int] = []
    for match in CITATION.finditer(text):
        numbers.extend(int(x) for x in re.split(r"[,;]", match.group(1)))
    clean = CITATION.sub("", text).strip()
    return clean, list(dict.fromkeys(numbers))


def cited_sentences(text: str) -> list[tuple[str, list[int]]]:
    """Split text into sentences, each with the [n] numbers it cites.

    Markers belong to the sentence they follow: in "It lasts 41 months. [1] It has a
    clip. [2]" the sentence splitter starts the second sentence at "[1]", so numbers that
    open a sentence go to the one before it (a lone "[2]." too).
    """
    sentences: list[tuple[str, list[int]]] = []
    for start, end in split_sentences(text):
        piece = text[start:end]
        lead = LEADING_CITATIONS.match(piece)
        if lead and sentences:
            _, moved = strip_citations(lead.group(0))
            sentences[-1][1].extend(n for n in moved if n not in sentences[-1][1])
            piece = piece[lead.end() :]
        clean, cited = strip_citations(piece)
        if clean.strip(" .,;:-"):
            sentences.append((clean, cited))
        elif sentences and cited:
            sentences[-1][1].extend(n for n in cited if n not in sentences[-1][1])
    return sentences


def lexical_support(sentence: str, source: str) -> float:
    """Share of the sentence's content words that occur in the source."""
    words = content_words(sentence)
    if not words:
        return 0.0
    vocabulary = set(content_words(source))
    return sum(w in vocabulary for w in words) / len(words)


class CitationChecker:
    """Score answer sentences against sources and fix their citations.

    `threshold` is the support a sentence needs to count as supported (0..1).
    """

    def __init__(
        self,
        embedder: Embedder | None = None,
        threshold: float = 0.6,
        claim_margin: float = CLAIM_MARGIN,
    ) -> None:
        self.embedder = embedder
        self.threshold = threshold
        self.claim_margin = claim_margin

    def check(
        self, answer: str, sources: Sequence[SourceText], question: str | None = None
    ) -> list[CitedSentence]:
        """Split the answer into sentences and verify or repair each one's citations.

        With the `question`, a sentence's claim is the question and the sentence together: a
        short answer ("1973") occurs in many sources, but only some say it about what was
        asked. Of the sources that back the sentence, citations then go to those that also
        cover the question about as well as the best one (within `claim_margin`).
        """
        valid = {s.n for s in sources}
        sentences = cited_sentences(answer)
        if not sentences:
            return []
        matrix, quotes = self._support_matrix([s for s, _ in sentences], sources)
        gaps = [self._penalise_key_terms(clean, row, sources, question)
                for (clean, _), row in zip(sentences, matrix, strict=True)]  # fmt: skip
        results = []
        for i, (clean, cited) in enumerate(sentences):
            invalid = [n for n in cited if n not in valid]
            kept = [n for n in cited if n in valid]
            scores = {src.n: matrix[i][j] for j, src in enumerate(sources)}
            best_n = max(scores, key=lambda n: scores[n]) if scores else None
            support = max((scores[n] for n in kept), default=0.0)
            repaired = False
            if best_n is not None and scores[best_n] >= self.threshold and support < self.threshold:
                kept, support, repaired = [best_n], scores[best_n], True
            unsupporting: list[int] = []
            if support >= self.threshold:  # drop the citations that do not back the sentence
                unsupporting = [n for n in kept if scores[n] < self.threshold]
                kept = [n for n in kept if scores[n] >= self.threshold]
            if question and support >= self.threshold:
                backing = [src for src in sources if scores[src.n] >= self.threshold]
                claim = {src.n: lexical_support(f"{question} {clean}", src.text) for src in backing}
                best_claim = max(claim.values())
                on_topic = [n for n in kept if claim[n] >= best_claim - self.claim_margin]
                unsupporting += [n for n in kept if n not in on_topic]
                if on_topic:
                    kept = on_topic
                else:
                    kept, repaired = [max(claim, key=lambda n: claim[n])], True
                support = max(scores[n] for n in kept)
            quote_n = max(kept, key=lambda n: scores[n]) if kept else None
            quote = quotes[i][quote_n] if quote_n is not None else None
            results.append(
                CitedSentence(
                    text=clean,
                    citations=kept,
                    support=round(float(support), 4),
                    supported=support >= self.threshold,
                    quote=quote,
                    invalid=invalid,
                    repaired=repaired,
                    unsupporting=unsupporting,
                    cited=cited,
                    spans={n: quotes[i][n][1:] for n in kept},
                    missing=_missing_in(gaps[i], kept or cited),
                )
            )
        return results

    @staticmethod
    def _penalise_key_terms(
        sentence: str, row: list[float], sources: Sequence[SourceText], question: str | None
    ) -> dict[int, list[str]]:
        """Scale down, in place, the scores of sources that do not state the sentence's key
        terms, or state them only away from the question's subject; return each such source's
        missing terms (empty for an unbound one)."""
        gaps: dict[int, list[str]] = {}
        for j, src in enumerate(sources):
            missing = missing_terms(sentence, src.text, question or "")
            if missing or (question and not bound(sentence, src.text, question)):
                row[j] *= KEY_TERM_PENALTY
                gaps[src.n] = missing
        return gaps

    def _support_matrix(
        self, sentences: list[str], sources: Sequence[SourceText]
    ) -> tuple[list[list[float]], list[dict[int, tuple[int, int, int]]]]:
        """Support of each answer sentence by each source, and the best span in each source."""
        spans = [sentences_or_whole(src.text) for src in sources]
        dense = None
        if self.embedder is not None:
            flat = [src.text[s:e] for src, sp in zip(sources, spans, strict=True) for s, e in sp]
            vectors = self.embedder.encode(list(sentences) + flat)
            dense = vectors[: len(sentences)] @ vectors[len(sentences) :].T
        matrix: list[list[float]] = []
        quotes: list[dict[int, tuple[int, int, int]]] = []
        for i, sentence in enumerate(sentences):
            row: list[float] = []
            best_spans: dict[int, tuple[int, int, int]] = {}
            offset = 0
            for src, sp in zip(sources, spans, strict=True):
                best, best_span = 0.0, sp[0]
                for k, (s, e) in enumerate(sp):
                    lexical = lexical_support(sentence, src.text[s:e])
                    semantic = float(dense[i, offset + k]) if dense is not None else 0.0
                    score = max(lexical, semantic)
                    if score > best:
                        best, best_span = score, (s, e)
                # facts spread over a passage: coverage by the whole source counts too
                best = max(best, lexical_support(sentence, src.text) * 0.95)
                row.append(best)
                best_spans[src.n] = (src.n, *best_span)
                offset += len(sp)
            matrix.append(row)
            quotes.append(best_spans)
        return matrix, quotes


def _missing_in(gaps: dict[int, list[str]], sources: list[int]) -> list[str]:
    """The key terms that none of `sources` states (those of the first such source)."""
    if not sources or any(n not in gaps for n in sources):
        return []
    return gaps[sources[0]]
