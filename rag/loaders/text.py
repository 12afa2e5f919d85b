"""Plain text and markdown: decoding bytes, then paragraphs and heading paths."""

from __future__ import annotations

import re

from rag.errors import LoaderError
from rag.loaders.base import Block, Document


def load_text(key: str, kind: str, data: bytes) -> Document:
    """Load a .txt (paragraphs) or .md (paragraphs under # headings) file."""
    text, warning = decode_text(key, data)
    blocks = markdown_blocks(text) if kind == "md" else paragraph_blocks(text, 0, len(text))
    if not blocks:
        raise LoaderError(key, "no text found in the file")
    return Document(key=key, kind=kind, text=text, blocks=blocks,
                    warnings=[warning] if warning else [])  # fmt: skip


# --- text decoding ---------------------------------------------------------------------------


def decode_text(key: str, data: bytes) -> tuple[str, str | None]:
    """Decode bytes as UTF-8, else detect the encoding; refuse binary data.

    Returns the text and a warning when a non-UTF-8 encoding was detected.
    """
    if b"\x00" in data[:8192] and not _looks_like_utf16(data):
        raise LoaderError(key, "binary data, not text (found NUL bytes); is the extension right?")
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data[: 4 * 1024 * 1024]).best()
    if best is None or best.encoding is None:
        raise LoaderError(
            key, "not valid UTF-8 and no text encoding could be detected; convert it to UTF-8"
        )
    try:
        text = data.decode(best.encoding)
    except (UnicodeDecodeError, LookupError) as exc:
        raise LoaderError(key, f"could not decode as {best.encoding}: {exc}") from None
    if _control_ratio(text) > 0.05:
        raise LoaderError(key, "binary data, not text; is the extension right?")
    return text, f"{key}: not UTF-8; decoded as {best.encoding}"


def _looks_like_utf16(data: bytes) -> bool:
    return data[:2] in (b"\xff\xfe", b"\xfe\xff")


def _control_ratio(text: str) -> float:
    sample = text[:20000]
    if not sample:
        return 0.0
    bad = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\n\r\t\f")
    return bad / len(sample)


# --- structure: paragraphs and headings -------------------------------------------------------

_BLANK_LINES = re.compile(r"\n[ \t]*\n")
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def join_pages(texts: list[str]) -> tuple[str, list[Block]]:
    """The document text (pages joined by blank lines) and its paragraph blocks, with pages."""
    parts: list[str] = []
    blocks: list[Block] = []
    offset = 0
    for number, page_text in enumerate(texts, start=1):
        parts.append(page_text)
        for block in paragraph_blocks(page_text, 0, len(page_text), number):
            blocks.append(Block(block.start + offset, block.end + offset, number))
        parts.append("\n\n")
        offset += len(page_text) + 2
    return "".join(parts), blocks


def paragraph_blocks(
    text: str, start: int, end: int, page: int | None = None, headings: tuple[str, ...] = ()
) -> list[Block]:
    """Split `text[start:end]` at blank lines into trimmed, non-empty paragraph blocks."""
    blocks: list[Block] = []
    pos = start
    for match in _BLANK_LINES.finditer(text, start, end):
        _add_trimmed(blocks, text, pos, match.start(), page, headings)
        pos = match.end()
    _add_trimmed(blocks, text, pos, end, page, headings)
    return blocks


def _add_trimmed(
    blocks: list[Block], text: str, s: int, e: int, page: int | None, headings: tuple[str, ...]
) -> None:
    while s < e and text[s].isspace():
        s += 1
    while e > s and text[e - 1].isspace():
        e -= 1
    if e > s:
        blocks.append(Block(s, e, page, headings))


def markdown_blocks(text: str) -> list[Block]:
    """Split markdown into paragraph blocks that carry their heading path (# lines)."""
    blocks: list[Block] = []
    path: list[tuple[int, str]] = []
    section_start = 0
    in_fence = False
    pos = 0
    for line in text.splitlines(keepends=True):
        line_start, pos = pos, pos + len(line)
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        match = None if in_fence else _HEADING.match(line.rstrip("\r\n"))
        if match is None:
            continue
        headings = tuple(title for _, title in path)
        blocks.extend(paragraph_blocks(text, section_start, line_start, None, headings))
        level = len(match.group(1))
        path = [(lvl, title) for lvl, title in path if lvl < level]
        path.append((level, match.group(2).strip()))
        section_start = pos
    headings = tuple(title for _, title in path)
    blocks.extend(paragraph_blocks(text, section_start, len(text), None, headings))
    return blocks
