"""HTML: the visible text of a page, with its headings, as markdown-like blocks."""

from __future__ import annotations

from rag.errors import LoaderError
from rag.loaders.base import Document
from rag.loaders.text import decode_text, markdown_blocks


def load_html(key: str, data: bytes) -> Document:
    """Load an HTML page: page chrome dropped, headings kept as the heading path."""
    text, warning = decode_text(key, data)
    text = html_to_text(text)
    blocks = markdown_blocks(text)
    if not blocks:
        raise LoaderError(key, "no text found in the file")
    return Document(key=key, kind="html", text=text, blocks=blocks,
                    warnings=[warning] if warning else [])  # fmt: skip


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
