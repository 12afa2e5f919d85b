"""What every loader returns: a `Document` whose `blocks` are character spans into its text."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Block:
    """A paragraph: `text[start:end]`, under the heading path `headings`.

    `page` is the citation's page: a PDF page, a slide. `label` numbers a finer unit inside
    it, as `(noun, number)`, e.g. `("row", 12)` for a spreadsheet row; a chunk covering
    labelled blocks is located as "rows 12–40".
    """

    start: int
    end: int
    page: int | None = None
    headings: tuple[str, ...] = ()
    label: tuple[str, int] | None = None


@dataclass
class Document:
    """Extracted text of one source document, ready for chunking.

    `meta` holds what the format says about the document (e-mail subject, from, date; the
    message an attachment came from as `parent`). `ocr_pages` lists pages whose text came
    from OCR; `empty_pages` pages that stayed without text.
    """

    key: str
    kind: str
    text: str
    blocks: list[Block]
    pages: int | None = None
    warnings: list[str] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)
    ocr_pages: list[int] = field(default_factory=list)
    empty_pages: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Part:
    """One document inside a container file: a .jsonl line, an mbox message, an attachment.

    `key` is `<file>#<id>` (an e-mail's own message may use the file path itself); `raw` is
    what its content hash is taken from, so an unchanged part is never loaded again; `where`
    names it in failures ("<file> line 3"). `load` extracts the document when it changed.
    """

    key: str
    raw: bytes
    where: str
    load: Callable[[], Document]
