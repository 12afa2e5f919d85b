"""Token-aware chunking: sentences packed into chunks that the embedder never truncates.

Chunks are counted in the embedder's own word pieces, break at paragraph and then sentence
boundaries, never cross a heading or a PDF page, overlap by trailing sentences, and keep the
character span they cover in the document text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from rag.loaders import Document
from rag.text.sentences import split_sentences

HEADING_SEPARATOR = " > "


def with_heading(heading: str, text: str) -> str:
    """The text a passage is embedded and shown as: its heading path line, then the text."""
    return f"{heading}\n{text}" if heading else text


class TokenCounter(Protocol):
    """Counts tokens the way the embedder will see them."""

    def count_many(self, texts: Sequence[str]) -> list[int]: ...

    def split_to_fit(self, text: str, max_tokens: int) -> list[tuple[int, int]]: ...


@dataclass(frozen=True)
class Chunk:
    """A span `start:end` of a document's text, with where it sits in the document."""

    ord: int
    text: str
    start: int
    end: int
    page: int | None
    heading: str
    n_tokens: int
    detail: str | None = None  # finer than the page, e.g. "rows 12–40" of a sheet
    embed_heading: bool = True  # False: embedded without its heading (see chunk_document)

    @property
    def embed_text(self) -> str:
        """The text embedded: the heading path, then the chunk (keyword-indexed likewise)."""
        return with_heading(self.heading if self.embed_heading else "", self.text)


@dataclass(frozen=True)
class _Unit:
    start: int
    end: int
    block: int
    section: int
    n_tokens: int


def chunk_document(
    doc: Document,
    counter: TokenCounter,
    max_tokens: int,
    overlap: float = 0.15,
    repeat_heading: bool = True,
) -> list[Chunk]:
    """Cut a document into chunks of at most `max_tokens` tokens, heading included.

    With `repeat_heading` False only a section's first chunk is embedded with the heading
    path; the others keep it (shown, keyword-indexed) but embed their text alone. The cuts
    are the same either way.
    """
    sections: dict[tuple[int | None, tuple[str, ...]], int] = {}
    raw: list[tuple[int, int, int, int]] = []  # start, end, block, section
    for block_index, block in enumerate(doc.blocks):
        section = sections.setdefault((block.page, block.headings), len(sections))
        for s, e in split_sentences(doc.text[block.start : block.end], hard_wraps=True):
            raw.append((block.start + s, block.start + e, block_index, section))
    if not raw:
        return []
    section_keys = list(sections)
    headings = [_fit_heading(key[1], counter, max_tokens // 3) for key in section_keys]
    heading_tokens = counter.count_many(headings)
    budgets = [max_tokens - (n + 1 if n else 0) for n in heading_tokens]
    counts = counter.count_many([doc.text[s:e] for s, e, _, _ in raw])
    units: list[_Unit] = []
    for (s, e, block_no, section), n in zip(raw, counts, strict=True):
        if n <= budgets[section]:
            units.append(_Unit(s, e, block_no, section, n))
        else:
            units.extend(_split_long(doc.text, s, e, block_no, section, budgets[section], counter))
    block_tokens: dict[int, int] = {}
    for unit in units:
        block_tokens[unit.block] = block_tokens.get(unit.block, 0) + unit.n_tokens
    groups = _pack(units, budgets, block_tokens, int(max_tokens * overlap))
    chunks: list[Chunk] = []
    headed: set[int] = set()  # sections whose first chunk is made
    for group in groups:
        first, last = group[0], group[-1]
        embed_heading = repeat_heading or first.section not in headed
        headed.add(first.section)
        page = section_keys[first.section][0]
        chunks.append(
            Chunk(
                ord=len(chunks),
                text=doc.text[first.start : last.end],
                start=first.start,
                end=last.end,
                page=page,
                heading=headings[first.section],
                n_tokens=sum(u.n_tokens for u in group) + heading_tokens[first.section],
                detail=_detail(doc, group),
                embed_heading=embed_heading,
            )
        )
    return chunks


def _detail(doc: Document, group: list[_Unit]) -> str | None:
    """Name the labelled blocks a chunk covers: "row 7", "rows 7–30"; None when unlabelled."""
    labels = [label for u in group if (label := doc.blocks[u.block].label) is not None]
    if not labels:
        return None
    noun = labels[0][0]
    low = min(n for _, n in labels)
    high = max(n for _, n in labels)
    return f"{noun} {low}" if low == high else f"{noun}s {low}–{high}"


def _fit_heading(path: tuple[str, ...], counter: TokenCounter, limit: int) -> str:
    """Join a heading path, dropping outer headings (then cutting) until it fits `limit`."""
    for first in range(len(path)):
        joined = HEADING_SEPARATOR.join(path[first:])
        if counter.count_many([joined])[0] <= limit:
            return joined
    if not path:
        return ""
    start, end = counter.split_to_fit(path[-1], max(limit - 1, 1))[0]
    return path[-1][start:end].strip()


def _split_long(
    text: str, start: int, end: int, block: int, section: int, budget: int, counter: TokenCounter
) -> list[_Unit]:
    """Cut a sentence longer than the budget into pieces that each fit."""
    pieces: list[_Unit] = []
    limit = budget
    spans = [(start + s, start + e) for s, e in counter.split_to_fit(text[start:end], limit)]
    counts = counter.count_many([text[s:e] for s, e in spans])
    for (s, e), n in zip(spans, counts, strict=True):
        if not text[s:e].strip():
            continue
        if n > budget:  # re-tokenising a cut piece can add a token or two: cut it again
            pieces.extend(
                _split_long(text, s, e, block, section, budget - (n - budget) - 1, counter)
            )
        else:
            pieces.append(_Unit(s, e, block, section, n))
    return pieces


def _pack(
    units: list[_Unit], budgets: list[int], block_tokens: dict[int, int], overlap_tokens: int
) -> list[list[_Unit]]:
    """Greedily group sentences into chunks; prefer paragraph ends; carry a sentence overlap."""
    groups: list[list[_Unit]] = []
    current: list[_Unit] = []
    used = 0
    for unit in units:
        budget = budgets[unit.section]
        if current:
            new_section = unit.section != current[-1].section
            new_block = unit.block != current[-1].block
            overflow = used + unit.n_tokens > budget
            # At a paragraph start, close a well-filled chunk rather than split the paragraph.
            paragraph_break = (
                new_block and used >= budget // 2 and used + block_tokens[unit.block] > budget
            )
            if new_section or overflow or paragraph_break:
                groups.append(current)
                carry: list[_Unit] = []
                if not new_section and not paragraph_break and overlap_tokens > 0:
                    carried = 0
                    for prev in reversed(current):
                        if carried + prev.n_tokens > overlap_tokens:
                            break
                        if carried + prev.n_tokens + unit.n_tokens > budget:
                            break
                        carry.insert(0, prev)
                        carried += prev.n_tokens
                    if len(carry) == len(current):
                        carry = []
                current = carry
                used = sum(u.n_tokens for u in carry)
        current.append(unit)
        used += unit.n_tokens
    if current:
        groups.append(current)
    return groups
