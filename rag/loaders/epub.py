"""EPUB e-books: chapters in reading (spine) order, each under its title from the table of
contents, inner headings nested below it."""

from __future__ import annotations

import posixpath
import zipfile
from typing import Any
from urllib.parse import unquote, urldefrag

from rag.errors import LoaderError
from rag.loaders.base import Block, Document
from rag.loaders.html import html_to_text
from rag.loaders.office import BROKEN_ZIP_ERRORS, broken, not_valid, open_zip
from rag.loaders.text import decode_text, markdown_blocks

_OPF = "{http://www.idpf.org/2007/opf}"
_DC = "{http://purl.org/dc/elements/1.1/}"
_NCX = "{http://www.daisy.org/z3986/2005/ncx/}"
_CONTAINER = "{urn:oasis:names:tc:opendocument:xmlns:container}"
_XENC = "{http://www.w3.org/2001/04/xmlenc#}"
_EPUB_TYPE = "{http://www.idpf.org/2007/ops}type"
_HTML_TYPES = {"application/xhtml+xml", "text/html", "application/x-dtbook+xml"}
# Font obfuscation is listed in encryption.xml too, but hides no text: not DRM.
_FONT_OBFUSCATION = {"http://www.idpf.org/2008/embedding", "http://ns.adobe.com/pdf/enc#RC"}


def load_epub(key: str, data: bytes) -> Document:
    """Load an .epub: each chapter's blocks carry the path (chapter title, inner headings...).

    The chapter title comes from the table of contents (nav or NCX), else the chapter's first
    h1/h2; a spine file with neither continues the chapter before it (split chapters).
    """
    with open_zip(key, data, ".epub") as archive:
        try:
            _refuse_drm(key, archive)
            opf_path = _opf_path(key, archive)
            opf = _xml(archive.read(opf_path))
            book = _Book(opf, posixpath.dirname(opf_path))
            titles = _toc_titles(archive, book)
            names = set(archive.namelist())
            chapters = [(href, archive.read(href)) for href in book.spine if href in names]
            missing = [href for href in book.spine if href not in names]
        except BROKEN_ZIP_ERRORS as exc:
            raise broken(key, ".epub", exc) from None
    parts: list[str] = []
    blocks: list[Block] = []
    warnings = [f"{key}: chapter file {href} is missing from the book" for href in missing]
    offset = 0
    title = ""
    for href, raw in chapters:
        html, warning = decode_text(f"{key}#{href}", raw)
        if warning:
            warnings.append(warning)
        title = titles.get(href) or _first_heading(html) or title
        text = html_to_text(html)
        chapter_blocks = markdown_blocks(text)
        if not chapter_blocks:
            continue
        for block in chapter_blocks:
            inner = block.headings
            if inner and title and _same(inner[0], title):
                inner = inner[1:]
            headings = ((title,) if title else ()) + inner
            blocks.append(Block(block.start + offset, block.end + offset, None, headings))
        parts.append(text + "\n")
        offset += len(text) + 1
    if not blocks:
        raise LoaderError(key, "no text found in the e-book (only images, or empty?)")
    return Document(key=key, kind="epub", text="".join(parts), blocks=blocks,
                    warnings=warnings, meta=book.meta)  # fmt: skip


class _Book:
    """What the package document (OPF) says: manifest, spine order, metadata."""

    def __init__(self, opf: Any, base: str) -> None:
        self.items: dict[str, tuple[str, str, str]] = {}  # id -> href, media type, properties
        for item in opf.iter(f"{_OPF}item"):
            href = _resolve(base, item.get("href", ""))
            self.items[item.get("id", "")] = (href, item.get("media-type", ""),
                                              item.get("properties", ""))  # fmt: skip
        spine = opf.find(f"{_OPF}spine")
        self.ncx = ""
        self.spine: list[str] = []
        if spine is not None:
            ncx_item = self.items.get(spine.get("toc", ""))
            self.ncx = ncx_item[0] if ncx_item else ""
            for ref in spine.iter(f"{_OPF}itemref"):
                item = self.items.get(ref.get("idref", ""))
                if item is not None and item[1] in _HTML_TYPES:
                    self.spine.append(item[0])
        if not self.ncx:
            self.ncx = next((h for h, t, _ in self.items.values() if t.endswith("dtbncx+xml")), "")
        self.nav = next((h for h, _, p in self.items.values() if "nav" in p.split()), "")
        self.meta: dict[str, str] = {}
        for name, tag in (("title", "title"), ("author", "creator")):
            element = opf.find(f"{_OPF}metadata/{_DC}{tag}")
            if element is not None and (value := " ".join("".join(element.itertext()).split())):
                self.meta[name] = value


def _refuse_drm(key: str, archive: zipfile.ZipFile) -> None:
    """Raise when META-INF/encryption.xml encrypts more than fonts, or Adobe rights exist."""
    names = set(archive.namelist())
    if "META-INF/encryption.xml" not in names:
        return
    drm = "META-INF/rights.xml" in names
    try:
        root = _xml(archive.read("META-INF/encryption.xml"))
        for data in root.iter(f"{_XENC}EncryptedData"):
            method = data.find(f"{_XENC}EncryptionMethod")
            if method is None or method.get("Algorithm") not in _FONT_OBFUSCATION:
                drm = True
    except Exception:
        drm = True
    if drm:
        raise LoaderError(key, (
            "is DRM-protected (META-INF/encryption.xml lists encrypted content); "
            "index a DRM-free copy"))  # fmt: skip


def _opf_path(key: str, archive: zipfile.ZipFile) -> str:
    """The package document named by META-INF/container.xml, else the first .opf file."""
    names = set(archive.namelist())
    if "META-INF/container.xml" in names:
        container = _xml(archive.read("META-INF/container.xml"))
        for rootfile in container.iter(f"{_CONTAINER}rootfile"):
            path = unquote(rootfile.get("full-path", ""))
            if path in names:
                return path
    found = next((n for n in archive.namelist() if n.lower().endswith(".opf")), None)
    if found is None:
        raise LoaderError(key, not_valid(".epub", "no package document (.opf) found"))
    return found


def _toc_titles(archive: zipfile.ZipFile, book: _Book) -> dict[str, str]:
    """Map each chapter file to its first title in the table of contents (nav, else NCX)."""
    titles: dict[str, str] = {}
    names = set(archive.namelist())
    if book.nav in names:
        nav_root = _xml(archive.read(book.nav), html=True)
        navs = [n for n in nav_root.iter() if _local(n.tag) == "nav"]
        kinds = [(n.get(_EPUB_TYPE) or n.get("epub:type") or "").split() for n in navs]
        toc = next((n for n, k in zip(navs, kinds, strict=True) if "toc" in k), None)
        toc = toc if toc is not None else (navs[0] if navs else None)
        if toc is not None:
            base = posixpath.dirname(book.nav)
            for link in toc.iter():
                if _local(link.tag) == "a" and link.get("href"):
                    _add_title(titles, base, link.get("href"), "".join(link.itertext()))
    if not titles and book.ncx in names:
        base = posixpath.dirname(book.ncx)
        for point in _xml(archive.read(book.ncx)).iter(f"{_NCX}navPoint"):
            label = point.find(f"{_NCX}navLabel/{_NCX}text")
            content = point.find(f"{_NCX}content")
            if label is not None and content is not None and content.get("src"):
                _add_title(titles, base, content.get("src"), label.text or "")
    return titles


def _add_title(titles: dict[str, str], base: str, href: str, text: str) -> None:
    title = " ".join(text.split())
    path = _resolve(base, urldefrag(href)[0])
    if title and path not in titles:
        titles[path] = title


def _first_heading(html: str) -> str:
    from selectolax.lexbor import LexborHTMLParser

    node = LexborHTMLParser(html).css_first("h1, h2")
    return " ".join(node.text().split()) if node is not None else ""


def _resolve(base: str, href: str) -> str:
    return posixpath.normpath(posixpath.join(base, unquote(href))).lstrip("/")


def _same(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _xml(data: bytes, html: bool = False) -> Any:
    """Parse XML without fetching anything (no DTDs, no entities); HTML leniently."""
    from lxml import etree

    if html:
        try:
            return etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))
        except etree.XMLSyntaxError:
            from lxml import html as lxml_html

            return lxml_html.fromstring(data)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, recover=True)
    root = etree.fromstring(data, parser)
    if root is None:
        raise ValueError("empty or unparseable XML")
    return root
