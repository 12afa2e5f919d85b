"""Turn file bytes into text with structure: paragraphs, heading paths, pages, rows.

One module per format; `load_document` picks the loader by kind. Every loader returns a
`Document` whose `blocks` are character spans into `Document.text`; chunks keep those spans
so a citation can point back into the source.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from rag.errors import LoaderError
from rag.loaders.base import Block, Document, Part
from rag.loaders.epub import load_epub
from rag.loaders.html import html_to_text, load_html
from rag.loaders.image import load_image
from rag.loaders.jsonl import Record, iter_jsonl_parts, iter_jsonl_records, record_document
from rag.loaders.mail import iter_eml_parts, iter_mbox_parts, load_eml
from rag.loaders.pdf import load_pdf
from rag.loaders.sheets import load_csv, load_xlsx
from rag.loaders.slides import load_pptx
from rag.loaders.text import decode_text, load_text, markdown_blocks, paragraph_blocks
from rag.loaders.word import load_docx

__all__ = [
    "CONTAINERS", "KIND_BY_SUFFIX", "Block", "Document", "Part", "Record", "decode_text",
    "html_to_text", "iter_jsonl_records", "kind_of", "load_document", "markdown_blocks",
    "paragraph_blocks", "record_document",
]  # fmt: skip

TEXT_KINDS = {".txt": "txt", ".text": "txt", ".md": "md", ".markdown": "md"}
HTML_KINDS = {".html": "html", ".htm": "html", ".xhtml": "html"}
OFFICE_KINDS = {".docx": "docx", ".pptx": "pptx", ".epub": "epub"}
SHEET_SUFFIXES = {".xlsx": "xlsx", ".csv": "csv", ".tsv": "csv"}
MAIL_KINDS = {".eml": "eml", ".mbox": "mbox"}
IMAGE_KINDS = dict.fromkeys((".png", ".jpg", ".jpeg", ".tif", ".tiff"), "image")  # OCR'd
KIND_BY_SUFFIX = {**TEXT_KINDS, **HTML_KINDS, **OFFICE_KINDS, **SHEET_SUFFIXES, **MAIL_KINDS,
                  **IMAGE_KINDS, ".pdf": "pdf", ".jsonl": "jsonl"}  # fmt: skip

Loader = Callable[[str, bytes], Document]
_LOADERS: dict[str, Loader] = {
    "txt": lambda key, data: load_text(key, "txt", data),
    "md": lambda key, data: load_text(key, "md", data),
    "html": load_html,
    "pdf": load_pdf,
    "docx": load_docx,
    "pptx": load_pptx,
    "epub": load_epub,
    "xlsx": load_xlsx,
    "csv": load_csv,
    "eml": load_eml,  # one message alone (an attached .eml); a .eml file is a container
    "image": load_image,
}

# Container kinds hold several documents; each Part is hashed, loaded and kept on its own.
ContainerLoader = Callable[[Path, str], Iterator[Part | LoaderError]]
CONTAINERS: dict[str, ContainerLoader] = {
    "jsonl": iter_jsonl_parts,
    "eml": iter_eml_parts,  # the message, then its attachments
    "mbox": iter_mbox_parts,
}


def kind_of(path: Path) -> str | None:
    """Return the loader kind for a file name, or None when the type is not supported."""
    return KIND_BY_SUFFIX.get(path.suffix.lower())


def load_document(key: str, kind: str, data: bytes) -> Document:
    """Extract a document of `kind` (see KIND_BY_SUFFIX) from its bytes."""
    if not data:
        raise LoaderError(key, "file is empty (0 bytes); nothing to index")
    loader = _LOADERS.get(kind)
    if loader is None:
        raise LoaderError(key, f"no loader for kind {kind!r}")
    return loader(key, data)
