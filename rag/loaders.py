"""Turn file bytes into text with structure: paragraphs, heading paths and PDF pages.

Every loader returns a `Document` whose `blocks` are character spans into `Document.text`;
chunks keep those spans so a citation can point back into the source.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import LoaderError

TEXT_KINDS = {".txt": "txt", ".text": "txt", ".md": "md", ".markdown": "md"}
HTML_KINDS = {".html": "html", ".htm": "html", ".xhtml": "html"}
KIND_BY_SUFFIX = {**TEXT_KINDS, **HTML_KINDS, ".pdf": "pdf", ".jsonl": "jsonl"}


@dataclass(frozen=True)
class Block:
    """A paragraph: `text[start:end]`, on `page` (PDFs), under the heading path `headings`."""

    start: int
    end: int
    page: int | None = None
    headings: tuple[str, ...] = ()


@dataclass
class Document:
    """Extracted text of one source document, ready for chunking."""

    key: str
    kind: str
    text: str
    blocks: list[Block]
    pages: int | None = None
    warnings: list[str] = field(default_factory=list)


def kind_of(path: Path) -> str | None:
    """Return the loader kind for a file name, or None when the type is not supported."""
    return KIND_BY_SUFFIX.get(path.suffix.lower())


def load_document(key: str, kind: str, data: bytes) -> Document:
    """Extract a document of `kind` ("txt", "md", "html", "pdf") from its bytes."""
    if not data:
        raise LoaderError(key, "file is empty (0 bytes); nothing to index")
    if kind == "pdf":
        return load_pdf(key, data)
    text, warning = decode_text(key, data)
    warnings = [warning] if warning else []
    if kind == "html":
        text = html_to_text(text)
        blocks = markdown_blocks(text)
    elif kind == "md":
        blocks = markdown_blocks(text)
    else:
        blocks = paragraph_blocks(text, 0, len(text))
    if not blocks:
        raise LoaderError(key, "no text found in the file")
    return Document(key=key, kind=kind, text=text, blocks=blocks, warnings=warnings)


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


# --- HTML --------------------------------------------------------------------------------------

_DROP_TAGS = [
    "script", "style", "noscript", "template", "nav", "header", "footer", "aside",
    "form", "button", "svg", "iframe", "head",
]  # fmt: skip
_BLOCK_TAGS = {
    "p", "div", "section", "article", "main", "li", "ul", "ol", "dl", "dt", "dd", "pre",
    "blockquote", "table", "tr", "figure", "figcaption", "caption", "br", "hr", "address",
    "h1", "h2", "h3", "h4", "h5", "h6", "body", "details", "summary",
}  # fmt: skip
_CELL_TAGS = {"td", "th"}


def html_to_text(html: str) -> str:
    """Return the visible text of an HTML page as markdown-like text (# headings, paragraphs).

    Scripts, styles and page chrome (nav, header, footer, aside, forms) are dropped; when the
    page has a <main> or <article>, only that is kept.
    """
    from selectolax.lexbor import LexborHTMLParser as HTMLParser

    tree = HTMLParser(html)
    root = tree.css_first("main") or tree.css_first("article") or tree.body or tree.root
    if root is None:
        return ""
    for tag in _DROP_TAGS:
        for node in root.css(tag):
            node.decompose()
    lines: list[str] = []
    current: list[str] = []

    def flush() -> None:
        line = " ".join("".join(current).split())
        if line:
            lines.append(line)
        current.clear()

    def walk(node: object) -> None:
        for child in node.iter(include_text=True):  # type: ignore[attr-defined]
            tag = child.tag
            if tag == "-text":
                current.append(child.text_content or "")
            elif tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
                flush()
                current.append("#" * int(tag[1]) + " ")
                walk(child)
                flush()
            elif tag in _BLOCK_TAGS:
                flush()
                walk(child)
                flush()
            elif tag in _CELL_TAGS:
                walk(child)
                current.append(" | ")
            elif tag != "-comment":
                walk(child)

    walk(root)
    flush()
    return "\n\n".join(line.rstrip(" |") for line in lines) + "\n"


# --- PDF ---------------------------------------------------------------------------------------


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


# --- JSON lines collections (BEIR corpus.jsonl and similar) -----------------------------------


@dataclass(frozen=True)
class Record:
    """One document inside a .jsonl collection: `{"_id"|"id", "title"?, "text"}`."""

    key: str
    raw: bytes
    title: str
    text: str
    line: int = 0  # 1-based line number in the collection file


def iter_jsonl_records(path: Path, key_prefix: str) -> Iterator[Record | LoaderError]:
    """Yield each line of a JSON-lines corpus as a Record, or a LoaderError naming the line.

    Raises LoaderError when the first line is not a document: the file is not a collection.
    """
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            where = f"{key_prefix} line {number}"
            try:
                obj = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                yield LoaderError(where, f"invalid JSON ({exc})")
                continue
            if not isinstance(obj, dict) or "text" not in obj:
                problem = 'expected an object with "_id" (or "id") and "text"'
                if number == 1:
                    raise LoaderError(where, f"not a document collection: {problem} on every line")
                yield LoaderError(where, problem)
                continue
            doc_id = obj.get("_id", obj.get("id"))
            if doc_id is None:
                yield LoaderError(where, 'missing "_id" (or "id")')
                continue
            yield Record(f"{key_prefix}#{doc_id}", raw, str(obj.get("title") or ""),
                         str(obj["text"]), number)  # fmt: skip


def record_document(record: Record) -> Document:
    """Turn a jsonl record into a markdown-like document whose title is the heading.

    Raises LoaderError when the id, title or text is not valid Unicode (JSON allows unpaired
    `\\ud800`-style surrogate escapes, which no text index can store).
    """
    fields = (("_id (or the file name)", record.key), ("title", record.title),
              ("text", record.text))  # fmt: skip
    for name, value in fields:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            bad = value[exc.start : exc.end].encode("unicode_escape").decode("ascii")
            raise LoaderError(
                record.key,
                f"{name} holds an unpaired UTF-16 surrogate ({bad}), which is not "
                "valid Unicode text; fix or remove that \\u escape",
            ) from None
    text = f"# {record.title}\n\n{record.text}\n" if record.title else record.text
    blocks = markdown_blocks(text)
    if not blocks:
        raise LoaderError(record.key, "record has no text")
    return Document(key=record.key, kind="jsonl", text=text, blocks=blocks)
