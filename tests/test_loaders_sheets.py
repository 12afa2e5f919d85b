"""Spreadsheets: rows as "column: value" blocks under the sheet's name, numbered as the sheet
numbers them; readable numbers and dates; clear errors on workbooks that cannot be read."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest
from openpyxl import Workbook

from rag import Index
from rag.errors import LoaderError
from rag.loaders import load_document
from rag.locations import where


def _xlsx(sheets: dict[str, list[list]], path: Path | None = None) -> bytes:
    workbook = Workbook()
    workbook.remove(workbook.active)
    for title, rows in sheets.items():
        sheet = workbook.create_sheet(title)
        for row in rows:
            sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    if path is not None:
        path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def _covers(detail: str | None, row: int) -> bool:
    """Whether a chunk's "rows 12–40" (or "row 12") takes in `row`."""
    assert detail is not None and detail.startswith("row")
    numbers = detail.split(" ", 1)[1].split("–")
    return int(numbers[0]) <= row <= int(numbers[-1])


def _rows(doc) -> list[tuple[str, tuple[str, ...], tuple[str, int] | None]]:
    return [(doc.text[b.start : b.end], b.headings, b.label) for b in doc.blocks]


def test_rows_name_their_columns_under_the_sheet_heading_with_sheet_row_numbers():
    data = _xlsx({"Sales": [[], ["Region", "Quarter", "Revenue"], ["North", "Q3", 1204000],
                            [], ["South", None, 880]]})  # fmt: skip
    doc = load_document("q3.xlsx", "xlsx", data)
    assert doc.kind == "xlsx" and doc.warnings == []
    assert _rows(doc) == [
        ("Region: North; Quarter: Q3; Revenue: 1204000", ("Sales",), ("row", 3)),
        ("Region: South; Revenue: 880", ("Sales",), ("row", 5)),  # empty cell left out
    ]


def test_numbers_and_dates_read_as_the_sheet_shows_them():
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "Numbers"
    sheet.append(["Revenue", "Share", "Ratio", "Day", "At", "Flag", "Tiny", "Sci"])
    sheet.append([1204000.0000001, 0.125, 0.1 + 0.2, dt.date(2024, 3, 31),
                  dt.datetime(2024, 3, 31, 14, 5), True, -1e-12, 12345678.9])  # fmt: skip
    sheet["A2"].number_format = "#,##0"
    sheet["B2"].number_format = "0.0%"
    sheet["H2"].number_format = "0.00E+00"
    buffer = io.BytesIO()
    workbook.save(buffer)
    doc = load_document("n.xlsx", "xlsx", buffer.getvalue())
    assert doc.text.strip() == (
        "Revenue: 1,204,000; Share: 12.5%; Ratio: 0.3; Day: 2024-03-31; At: 2024-03-31 14:05; "
        "Flag: TRUE; Tiny: 0; Sci: 1.23E+07"
    )


def test_cells_without_header_are_named_by_their_column_letter():
    doc = load_document("h.xlsx", "xlsx", _xlsx({"S": [["Name", None], ["Ada", "x", "y"]]}))
    assert _rows(doc)[0][0] == "Name: Ada; column B: x; column C: y"


def test_every_sheet_is_read_and_an_empty_one_is_skipped_with_a_warning():
    data = _xlsx({"Empty": [], "Hidden": [["Code"], ["HX-9"]], "Only header": [["A", "B"]]})
    doc = load_document("w.xlsx", "xlsx", data)
    assert _rows(doc) == [("Code: HX-9", ("Hidden",), ("row", 2))]
    assert doc.warnings == [
        "w.xlsx: sheet 'Empty' is empty",
        "w.xlsx: sheet 'Only header' has only a header row, no data rows",
    ]


def test_workbook_with_no_data_in_any_sheet_is_refused():
    with pytest.raises(LoaderError, match="no data in any sheet"):
        load_document("e.xlsx", "xlsx", _xlsx({"A": [], "B": [[None, None]]}))


def test_large_sheet_streams_every_row(tmp_path):
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Log")
    sheet.append(["Id", "Reading"])
    for i in range(20_000):
        sheet.append([i, i * 0.5])
    workbook.save(tmp_path / "big.xlsx")
    doc = load_document("big.xlsx", "xlsx", (tmp_path / "big.xlsx").read_bytes())
    assert len(doc.blocks) == 20_000
    assert doc.blocks[-1].label == ("row", 20_001)
    assert doc.text[doc.blocks[-1].start : doc.blocks[-1].end] == "Id: 19999; Reading: 9999.5"


def test_csv_sniffs_the_delimiter_and_numbers_rows_from_one():
    doc = load_document("c.csv", "csv", "Stadt;Einwohner\n\nKöln;1 084 831\n".encode())
    assert _rows(doc) == [("Stadt: Köln; Einwohner: 1 084 831", (), ("row", 3))]
    assert doc.kind == "csv" and doc.warnings == []


def test_tsv_is_split_at_tabs():
    doc = load_document("t.tsv", "csv", b"a,b\tc\n1,5\t2\n")
    assert _rows(doc) == [("a,b: 1,5; c: 2", (), ("row", 2))]


def test_csv_with_only_a_header_row_is_refused():
    with pytest.raises(LoaderError, match="only a header row, no data rows; nothing to index"):
        load_document("h.csv", "csv", b"name,price\n")


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"this is not a zip", "not a readable .xlsx workbook (not a zip file)"),
        (b"PK\x03\x04 truncated", "not a readable .xlsx workbook"),
    ],
)
def test_corrupt_xlsx_names_the_problem(data, problem):
    with pytest.raises(LoaderError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        load_document("bad.xlsx", "xlsx", data)


def _encrypted_xlsx() -> bytes:
    """A Compound File holding an EncryptedPackage stream: what Excel writes for a password."""
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504
    directory = "EncryptedPackage".encode("utf-16-le").ljust(64, b"\x00") + b"\x00" * 64
    return header + directory


def test_password_protected_xlsx_is_refused_with_what_to_do():
    with pytest.raises(LoaderError, match=r"is password-protected \(encrypted\); save an unpro"):
        load_document("secret.xlsx", "xlsx", _encrypted_xlsx())
    with pytest.raises(LoaderError, match=r"old binary Excel \(.xls\)"):
        load_document("old.xlsx", "xlsx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600)


def test_search_finds_the_row_in_its_sheet_and_row_range(tmp_path, embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    sales = [["Region", "Quarter", "Product", "Revenue"]]
    sales += [[f"Region {i}", "Q3", f"Widget {i}", 1000 + i] for i in range(2, 30)]
    sales.insert(15, ["Saskatoon", "Q3", "Ptarmigan heated gloves", 1204000])  # row 16
    _xlsx({"Costs": [["Item", "Cost"], ["Rent", 900]], "Sales": sales}, docs / "q3.xlsx")
    (docs / "stock.csv").write_text("Part,Bin\nBolt,A1\nGasket kit for the Okapi pump,Z42\n")
    (docs / "empty.xlsx").write_bytes(_xlsx({"A": []}))
    (docs / "secret.xlsx").write_bytes(_encrypted_xlsx())
    (docs / "header.csv").write_text("only,a,header\n")
    (docs / "zero.csv").write_bytes(b"")
    index = Index(tmp_path / "idx", preset="tiny", embedder=embedder)
    report = index.ingest([docs])
    assert sorted((Path(f.path).name, f.error) for f in report.failed) == [
        ("empty.xlsx", "no data in any sheet"),
        ("header.csv", "only a header row, no data rows; nothing to index"),
        ("secret.xlsx", "is password-protected (encrypted); save an unprotected copy"),
        ("zero.csv", "file is empty (0 bytes); nothing to index"),
    ]
    assert report.added == 2

    hit = index.search("Revenue of Ptarmigan heated gloves in Saskatoon", k=1)[0]
    assert hit.path == str(docs / "q3.xlsx") and hit.kind == "xlsx" and hit.heading == "Sales"
    assert "Product: Ptarmigan heated gloves; Revenue: 1204000" in hit.text
    assert _covers(hit.detail, 16)
    assert where(hit.path, hit.kind, hit.page, hit.detail, hit.heading).startswith(
        f"{docs / 'q3.xlsx'} (sheet Sales, rows "
    )
    hit = index.search("Which bin holds the Okapi pump gasket kit?", k=1)[0]
    assert (Path(hit.path).name, hit.heading) == ("stock.csv", "") and _covers(hit.detail, 3)
    assert "Part: Gasket kit for the Okapi pump; Bin: Z42" in hit.text
