"""PDF: text page by page, every block carrying its 1-based page number."""

from __future__ import annotations

import io

from rag.errors import LoaderError
from rag.loaders.base import Block, Document
from rag.loaders.text import paragraph_blocks


def load_pdf(key: str, data: bytes) -> Document:
    """Extract a PDF page by page; every block carries its 1-based page number."""
    import logging

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not _decrypts_with_empty_password(reader):
            raise LoaderError(key, "PDF is encrypted; decrypt it first (e.g. qpdf --decrypt)")
        pages = list(reader.pages)
    except LoaderError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise LoaderError(key, f"not a readable PDF ({type(exc).__name__}: {exc})") from None
    parts: list[str] = []
    blocks: list[Block] = []
    empty: list[int] = []
    offset = 0
    for number, page in enumerate(pages, start=1):
        try:
            page_text = page.extract_text() or ""
        except Exception as exc:  # pypdf raises many types on damaged content streams
            raise LoaderError(key, f"page {number} could not be read ({exc})") from None
        page_text = page_text.replace("\x00", "")
        if not page_text.strip():
            empty.append(number)
        parts.append(page_text)
        for block in paragraph_blocks(page_text, 0, len(page_text), number):
            blocks.append(Block(block.start + offset, block.end + offset, number))
        parts.append("\n\n")
        offset += len(page_text) + 2
    text = "".join(parts)
    warnings = []
    if empty:
        listed = ", ".join(map(str, empty))
        warnings.append(f"{key}: no extractable text on page(s) {listed} (scanned? try OCR first)")
    if not blocks:
        raise LoaderError(key, "PDF has no extractable text (scanned images? run OCR first)")
    return Document(key=key, kind="pdf", text=text, blocks=blocks, pages=len(pages),
                    warnings=warnings)  # fmt: skip


def _decrypts_with_empty_password(reader: object) -> bool:
    try:
        return bool(reader.decrypt(""))  # type: ignore[attr-defined]
    except Exception:
        return False
