"""PowerPoint .pptx: one page per slide, its title as heading, speaker notes marked."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

from rag.errors import LoaderError
from rag.loaders.base import Block, Document
from rag.loaders.office import (
    BROKEN_ZIP_ERRORS,
    broken,
    looks_like_header,
    open_zip,
    table_rows,
)

NOTES_PREFIX = "Speaker notes: "


def load_pptx(key: str, data: bytes) -> Document:
    """Load a .pptx: every block carries its 1-based slide number as `page` and the slide
    title as heading; text boxes and tables in reading order (top to bottom, then left to
    right), then the speaker notes as a block starting "Speaker notes: "."""
    from pptx import Presentation
    from pptx.exc import PackageNotFoundError

    open_zip(key, data, ".pptx").close()
    try:
        slides = list(Presentation(io.BytesIO(data)).slides)
        texts = [_slide_texts(slide) for slide in slides]
    except ValueError as exc:
        if "not a PowerPoint file" in str(exc):
            raise LoaderError(key, (
                "is not a PowerPoint presentation (the zip holds another Office format); "
                "is the extension right?")) from None  # fmt: skip
        raise broken(key, ".pptx", exc) from None
    except (PackageNotFoundError, *BROKEN_ZIP_ERRORS) as exc:
        raise broken(key, ".pptx", exc) from None
    parts: list[str] = []
    blocks: list[Block] = []
    empty: list[int] = []
    pos = 0
    for number, (title, body) in enumerate(texts, start=1):
        if not title and not body:
            empty.append(number)
        headings = (title,) if title else ()
        # the title is the heading; it is a block of its own only on a title-only slide
        pieces = ([(title, not body)] if title else []) + [(piece, True) for piece in body]
        for piece, is_block in pieces:
            if parts:
                parts.append("\n\n")
                pos += 2
            parts.append(piece)
            if is_block:
                blocks.append(Block(pos, pos + len(piece), number, headings))
            pos += len(piece)
    if not blocks:
        raise LoaderError(key, "no text found in the presentation (only images or empty?)")
    return Document(key=key, kind="pptx", text="".join(parts), blocks=blocks, pages=len(slides),
                    empty_pages=empty)  # fmt: skip


def _slide_texts(slide: Any) -> tuple[str, list[str]]:
    """A slide's title, and its other text: paragraphs and table rows, then the notes."""
    title_shape = slide.shapes.title
    title = _one_line(title_shape.text_frame.text) if title_shape is not None else ""
    title_id = title_shape.shape_id if title_shape is not None else None
    body: list[str] = []
    for shape in _reading_order(slide.shapes):
        if shape.shape_id == title_id or _is_chrome(shape):
            continue
        if getattr(shape, "has_table", False) and shape.has_table:
            body.extend(_table_rows(shape.table))
        elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            for paragraph in shape.text_frame.paragraphs:
                if line := _clean(paragraph.text):
                    body.append(line)
    if slide.has_notes_slide:
        frame = slide.notes_slide.notes_text_frame
        notes = _clean(frame.text) if frame is not None else ""
        if notes:
            body.append(NOTES_PREFIX + notes)
    return title, body


def _reading_order(shapes: Any) -> Iterator[Any]:
    """Yield shapes top to bottom, then left to right; group shapes opened in place."""
    from pptx.shapes.group import GroupShape

    def position(shape: Any) -> tuple[int, int]:
        try:
            return (shape.top or 0, shape.left or 0)
        except (AttributeError, ValueError, KeyError):
            return (0, 0)

    for shape in sorted(shapes, key=position):
        if isinstance(shape, GroupShape):
            yield from _reading_order(shape.shapes)
        else:
            yield shape


def _is_chrome(shape: Any) -> bool:
    """Footer, date and slide-number placeholders: the same on every slide, not content."""
    from pptx.enum.shapes import PP_PLACEHOLDER

    if not shape.is_placeholder:
        return False
    chrome = (PP_PLACEHOLDER.FOOTER, PP_PLACEHOLDER.DATE, PP_PLACEHOLDER.SLIDE_NUMBER)
    return shape.placeholder_format.type in chrome


def _table_rows(table: Any) -> list[str]:
    grid: list[list[str | None]] = []
    for row in table.rows:
        grid.append([None if cell.is_spanned else _one_line(cell.text) for cell in row.cells])
    header = len(grid) >= 2 and table.first_row and looks_like_header(grid[0])
    return table_rows(grid, header)


def _clean(text: str) -> str:
    """Trim each line (a line break inside a paragraph is "\\v" in python-pptx)."""
    lines = (" ".join(line.split()) for line in text.replace("\v", "\n").split("\n"))
    return "\n".join(line for line in lines if line)


def _one_line(text: str) -> str:
    return " ".join(text.split())
