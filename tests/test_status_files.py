"""`rag status --files`: one line per document, with what its loader found."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from rag_cli.main import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_status_files_lists_each_document_with_kind_chunks_and_warnings(tmp_path: Path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.md").write_text("# Notes\n\nThe pump is serviced every 90 days.\n")
    (docs / "latin1.txt").write_bytes("Le café ouvre à 7 h 30, fermé le lundi.\n".encode("latin-1"))
    index = str(tmp_path / "idx")
    assert invoke("ingest", str(docs), "--index", index).exit_code == 0

    rows = json.loads(invoke("status", "--index", index, "--files", "--json").stdout)
    by_path = {Path(row["path"]).name: row for row in rows}
    assert set(by_path) == {"notes.md", "latin1.txt"}
    notes, latin = by_path["notes.md"], by_path["latin1.txt"]
    assert (notes["kind"], notes["chunks"], notes["warnings"]) == ("md", 1, [])
    assert latin["kind"] == "txt" and latin["chunks"] == 1
    assert len(latin["warnings"]) == 1 and "not UTF-8" in latin["warnings"][0]
    assert notes["ocr_pages"] == [] and notes["indexed_at"] > 0

    table = invoke("status", "--index", index, "--files")
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert any("notes.md" in line and " md " in line for line in lines)
    assert any("latin1.txt" in line and "not UTF-8" in line for line in lines)
    assert "2 documents" in lines[-1]
