"""Word .docx: paragraphs under their heading path, table rows, in document order."""

from __future__ import annotations

import io
import re
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

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_MC_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
_HEADING_STYLE = re.compile(r"heading (\d)")
_TOC_STYLE = re.compile(r"(toc \d|toc heading|table of figures)")
_BODY_LEVEL = 9  # w:outlineLvl 9 is body text; 0–8 are heading levels 1–9


def load_docx(key: str, data: bytes) -> Document:
    """Load a .docx: Title / Heading n styles (or outline levels) give the heading path,
    each paragraph and each table row is a block, in the order of the document."""
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    open_zip(key, data, ".docx").close()
    try:
        document = docx.Document(io.BytesIO(data))
        levels = _style_levels(document)
        default_style = document.styles.default(_paragraph_style_type())
        builder = _Builder()
        for kind, element in _body_items(document.element.body):
            if kind == "tbl":
                builder.table(_rows(element, document))
                continue
            style_id = element.style or (default_style.style_id if default_style else None)
            raw = _outline_raw(element)
            level = levels.get(style_id or "") if raw is None else _heading_level(raw)
            if level == -1:  # a table-of-contents entry: the headings are indexed anyway
                continue
            builder.paragraph(_paragraph_text(element), level)
        meta = _meta(document)
    except ValueError as exc:
        if "not a Word file" in str(exc):
            raise LoaderError(key, (
                "is not a Word document (the zip holds another Office format); "
                "is the extension right?")) from None  # fmt: skip
        raise broken(key, ".docx", exc) from None
    except (PackageNotFoundError, *BROKEN_ZIP_ERRORS) as exc:
        raise broken(key, ".docx", exc) from None
    if not builder.blocks:
        raise LoaderError(key, "no text found in the document (only images or empty?)")
    return Document(key=key, kind="docx", text="".join(builder.parts), blocks=builder.blocks,
                    meta=meta)  # fmt: skip


class _Builder:
    """Append paragraphs, headings and rows to one text, keeping the current heading path."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.blocks: list[Block] = []
        self.path: list[tuple[int, str]] = []
        self.pos = 0

    def paragraph(self, text: str, level: int | None) -> None:
        lines = [" ".join(line.split()) for line in text.split("\n")]
        text = "\n".join(line for line in lines if line)
        if not text:
            return
        if level is None:
            self._add(text, block=True)
            return
        title = " ".join(text.split())
        self.path = [(lvl, t) for lvl, t in self.path if lvl < level]
        self.path.append((level, title))
        self._add(title, block=False)

    def table(self, rows: list[str]) -> None:
        for row in rows:
            self._add(row, block=True)

    def _add(self, text: str, block: bool) -> None:
        if self.parts:
            self.parts.append("\n\n")
            self.pos += 2
        start = self.pos
        self.parts.append(text)
        self.pos += len(text)
        if block:
            headings = tuple(title for _, title in self.path)
            self.blocks.append(Block(start, self.pos, None, headings))


def _body_items(container: Any) -> Iterator[tuple[str, Any]]:
    """Yield ("p", w:p) and ("tbl", w:tbl) in document order, inside content controls too."""
    for child in container:
        if child.tag == f"{_W}p":
            yield "p", child
        elif child.tag == f"{_W}tbl":
            yield "tbl", child
        elif child.tag == f"{_W}sdt":
            gallery = child.find(f"{_W}sdtPr/{_W}docPartObj/{_W}docPartGallery")
            if gallery is not None and gallery.get(f"{_W}val") == "Table of Contents":
                continue
            content = child.find(f"{_W}sdtContent")
            if content is not None:
                yield from _body_items(content)
        elif child.tag == f"{_W}customXml":
            yield from _body_items(child)


def _paragraph_text(element: Any) -> str:
    """The visible text of a paragraph: runs, hyperlinks, fields, insertions and text boxes;
    deleted text and the fallback copy of drawings left out."""
    parts: list[str] = []

    def walk(node: Any) -> None:
        for child in node:
            tag = child.tag
            if not isinstance(tag, str) or tag in (f"{_W}del", _MC_FALLBACK):
                continue
            if tag == f"{_W}t":
                parts.append(child.text or "")
            elif tag in (f"{_W}tab", f"{_W}ptab"):
                parts.append("\t")
            elif tag in (f"{_W}br", f"{_W}cr", f"{_W}p"):
                parts.append("\n")
                walk(child)
            elif tag == f"{_W}noBreakHyphen":
                parts.append("-")
            else:
                walk(child)

    walk(element)
    return "".join(parts)


def _rows(tbl: Any, document: Any) -> list[str]:
    """Render a table's rows, one line each; a header row names the cells of the others."""
    from docx.table import Table

    table = Table(tbl, document)
    grid: list[list[str | None]] = []
    repeat_header = False
    for number, row in enumerate(table.rows):
        if number == 0:
            flag = row._tr.find(f"{_W}trPr/{_W}tblHeader")
            repeat_header = flag is not None and flag.get(f"{_W}val", "1") not in ("0", "false")
        cells: list[str | None] = []
        previous = None
        for cell in row.cells:
            tc = cell._tc
            cells.append(None if tc is previous else " ".join(_paragraph_text(tc).split()))
            previous = tc
        grid.append(cells)
    header = len(grid) >= 2 and (repeat_header or (_look_first_row(tbl) and
                                                    looks_like_header(grid[0])))  # fmt: skip
    return table_rows(grid, header)


def _look_first_row(tbl: Any) -> bool:
    """Whether the table's style options mark a header row (w:tblLook firstRow)."""
    look = tbl.find(f"{_W}tblPr/{_W}tblLook")
    if look is None:
        return False
    first_row = look.get(f"{_W}firstRow")
    if first_row is not None:
        return first_row in ("1", "true", "on")
    try:
        return bool(int(look.get(f"{_W}val", "0"), 16) & 0x0020)
    except ValueError:
        return False


def _outline_raw(node: Any) -> int | None:
    """The w:outlineLvl value under `node` (a w:p or a style): 0–8 heading, 9 body; or None."""
    found = node.find(f"{_W}pPr/{_W}outlineLvl")
    if found is None:
        return None
    try:
        return int(found.get(f"{_W}val", str(_BODY_LEVEL)))
    except ValueError:
        return None


def _heading_level(raw: int) -> int | None:
    """Heading level 1–9 for an outline value 0–8; None for body text."""
    return raw + 1 if 0 <= raw < _BODY_LEVEL else None


def _style_levels(document: Any) -> dict[str, int | None]:
    """Map paragraph style ids to a heading level (Title 0, Heading n n), -1 for TOC entries,
    None for body text; following each style's base styles."""

    def level(style: Any, depth: int = 0) -> int | None:
        name = (style.name or "").lower()
        if name == "title":
            return 0
        if match := _HEADING_STYLE.fullmatch(name):
            return int(match.group(1))
        if _TOC_STYLE.fullmatch(name):
            return -1
        if (raw := _outline_raw(style.element)) is not None:
            return _heading_level(raw)
        base = style.base_style
        return level(base, depth + 1) if base is not None and depth < 20 else None

    levels: dict[str, int | None] = {}
    for style in document.styles:
        if style.type == _paragraph_style_type():
            levels[style.style_id] = level(style)
    return levels


def _paragraph_style_type() -> Any:
    from docx.enum.style import WD_STYLE_TYPE

    return WD_STYLE_TYPE.PARAGRAPH


def _meta(document: Any) -> dict[str, str]:
    props = document.core_properties
    meta = {"title": props.title or "", "author": props.author or ""}
    return {name: " ".join(value.split()) for name, value in meta.items() if value.strip()}
