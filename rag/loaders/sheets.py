"""Spreadsheets (.xlsx, .csv, .tsv): one block per row, each cell named by its column header.

A row reads "Region: North; Quarter: Q3; Revenue: 1,204,000", so a chunk of rows still says
what each number is. The sheet's name is the heading; each block is labelled with the
sheet's own 1-based row number, so a chunk is located as "sheet Sales, rows 12–40".
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from rag.errors import LoaderError
from rag.loaders.base import Block, Document
from rag.loaders.office import refuse_compound_file
from rag.loaders.text import decode_text

Row = Sequence[tuple[Any, str]]  # (value, number format) per cell, in column order


class _SheetText:
    """Collects the rows of a workbook as text and row blocks, sheet after sheet."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.blocks: list[Block] = []
        self.offset = 0

    def add_sheet(self, rows: Iterable[tuple[int, Row]], headings: tuple[str, ...]) -> str:
        """Add one sheet's rows (numbered); return "" or why nothing was added ("is empty")."""
        header: list[str] | None = None
        added = 0
        for number, row in rows:
            cells = [_render(value, fmt) for value, fmt in row]
            if not any(cells):
                continue
            if header is None:
                header = cells
                continue
            line = "; ".join(
                f"{_column_name(header, i)}: {cell}" for i, cell in enumerate(cells) if cell
            )
            if self.parts:
                self.parts.append("\n")
                self.offset += 1
            self.parts.append(line)
            self.blocks.append(Block(self.offset, self.offset + len(line), None, headings,
                                     ("row", number)))  # fmt: skip
            self.offset += len(line)
            added += 1
        if header is None:
            return "is empty"
        if not added:
            return "has only a header row, no data rows"
        if self.parts:  # sheets apart by a blank line
            self.parts.append("\n")
            self.offset += 1
        return ""

    def text(self) -> str:
        return "".join(self.parts)


def load_xlsx(key: str, data: bytes) -> Document:
    """Load an Excel workbook, streaming each sheet (read-only, cached formula values)."""
    refuse_compound_file(key, data, "is an old binary Excel (.xls) workbook; save it as .xlsx")
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except zipfile.BadZipFile:
        problem = "not a readable .xlsx workbook (not a zip file); damaged, or misnamed?"
        raise LoaderError(key, problem) from None
    except Exception as exc:  # openpyxl raises KeyError, InvalidFileException, XML errors…
        raise LoaderError(key, f"not a readable .xlsx workbook ({_why(exc)})") from None
    sheets = _SheetText()
    warnings: list[str] = []
    try:
        for sheet in workbook.worksheets:
            sheet.reset_dimensions()  # the stored size can be wrong; read every row there is
            try:
                problem = sheets.add_sheet(_xlsx_rows(sheet), (sheet.title,))
            except Exception as exc:  # damaged sheet XML surfaces while streaming
                raise LoaderError(key, f"sheet {sheet.title!r} could not be read "
                                       f"({_why(exc)})") from None  # fmt: skip
            if problem:
                warnings.append(f"{key}: sheet {sheet.title!r} {problem}")
    finally:
        workbook.close()
    if not sheets.blocks:
        raise LoaderError(key, "no data in any sheet")
    return Document(key=key, kind="xlsx", text=sheets.text(), blocks=sheets.blocks,
                    warnings=warnings)  # fmt: skip


def _xlsx_rows(sheet: Any) -> Iterator[tuple[int, Row]]:
    for number, row in enumerate(sheet.iter_rows(), start=1):
        yield number, [(cell.value, getattr(cell, "number_format", "General")) for cell in row]


def load_csv(key: str, data: bytes) -> Document:
    """Load a .csv or .tsv file as one sheet without a name (the delimiter is sniffed)."""
    text, warning = decode_text(key, data)
    if not text.strip():
        raise LoaderError(key, "no text found in the file")
    dialect = _sniff(key, text)
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    rows = ((n, [(cell, "") for cell in row]) for n, row in enumerate(reader, start=1))
    sheets = _SheetText()
    try:
        problem = sheets.add_sheet(rows, ())
    except csv.Error as exc:
        raise LoaderError(key, f"not readable as CSV (record {reader.line_num}: {exc})") from None
    if problem == "is empty":
        raise LoaderError(key, "no values in any row; nothing to index")
    if problem:
        raise LoaderError(key, f"{problem.removeprefix('has ')}; nothing to index")
    return Document(key=key, kind="csv", text=sheets.text(), blocks=sheets.blocks,
                    warnings=[warning] if warning else [])  # fmt: skip


def _sniff(key: str, text: str) -> type[csv.Dialect] | csv.Dialect:
    """The file's dialect: tab for .tsv, else sniffed from the start (comma when unsure)."""
    if key.lower().endswith(".tsv"):
        return csv.excel_tab
    sample = text[:65536]
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        first = sample.split("\n", 1)[0]
        return csv.excel_tab if "\t" in first and "," not in first else csv.excel


def _column_name(header: list[str], index: int) -> str:
    if index < len(header) and header[index]:
        return header[index]
    from openpyxl.utils import get_column_letter

    return f"column {get_column_letter(index + 1)}"


# --- cell values as people read them -----------------------------------------------------------


def _render(value: Any, number_format: str) -> str:
    """A cell's value as text: "1,204,000", "12.5%", "2024-03-31"; "" when empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return _number(value, number_format or "General")
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ", timespec="minutes" if not value.second else "seconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):
        return value.isoformat(timespec="minutes" if not value.second else "seconds")
    if isinstance(value, dt.timedelta):
        return str(value)
    return " ".join(str(value).split())


def _number(value: float, number_format: str) -> str:
    """Format a number the way its cell shows it: thousands separators, decimals, percent."""
    fmt = number_format.split(";", 1)[0]
    if "%" in fmt:
        value *= 100
    decimals = _decimals(fmt)
    grouping = "," if "#,##" in fmt or "#,#" in fmt else ""
    if decimals is None:  # "General": up to 10 significant digits, no float artefacts
        if value != value or value in (float("inf"), float("-inf")):
            return str(value)
        magnitude = len(str(int(abs(value)))) if abs(value) >= 1 else 0
        if magnitude > 15:
            text = f"{value:.10g}"
        else:
            text = f"{value:{grouping}.{max(0, 10 - magnitude)}f}"
            text = text.rstrip("0").rstrip(".") if "." in text else text
    elif "E" in fmt.upper():
        text = f"{value:.{decimals}E}"
    else:
        text = f"{value:{grouping}.{decimals}f}"
    if text in ("-0", "-0.0"):
        text = text[1:]
    return text + "%" if "%" in fmt else text


def _decimals(fmt: str) -> int | None:
    """The decimals a number format shows ("#,##0.00" → 2), or None for General/unknown."""
    if "0" not in fmt:
        return None
    _, dot, fraction = fmt.upper().split("E", 1)[0].partition(".")
    if not dot:
        return 0
    return len(fraction) - len(fraction.lstrip("0#"))


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
