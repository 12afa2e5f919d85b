"""Say where a passage is, the way each format's readers find it: page, slide, sheet rows.

>>> describe("pptx", 3)
'slide 3'
>>> where("/docs/q3.xlsx", "xlsx", None, "rows 2–40", "Sales")
'/docs/q3.xlsx (sheet Sales, rows 2–40)'
"""

from __future__ import annotations

PAGE_NOUNS = {"pptx": "slide"}  # what a "page" is called, where it is not a page
SHEET_KINDS = {"xlsx", "csv"}  # the heading of a spreadsheet chunk is its sheet's name


def describe(kind: str, page: int | None, detail: str | None = None, heading: str = "") -> str:
    """The location inside a document: "page 3", "slide 4", "sheet Sales, rows 2–40"; or ""."""
    parts = []
    if kind in SHEET_KINDS and heading:
        parts.append(f"sheet {heading}")
    if page:
        parts.append(f"{PAGE_NOUNS.get(kind, 'page')} {page}")
    if detail:
        parts.append(detail)
    return ", ".join(parts)


def where(
    path: str, kind: str, page: int | None, detail: str | None = None, heading: str = ""
) -> str:
    """A document path with its location in brackets: "report.pdf (page 3)"."""
    inside = describe(kind, page, detail, heading)
    return f"{path} ({inside})" if inside else path
