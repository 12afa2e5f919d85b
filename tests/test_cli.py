"""The `rag` command line: reports, JSON shapes and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from rag_cli.main import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_ingest_json_report_and_exit_codes(tmp_path: Path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nAlpha is the first letter.\n")
    index = str(tmp_path / "idx")
    result = invoke("ingest", str(docs), "--index", index, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    for key in ("added", "updated", "unchanged", "removed", "skipped", "failed"):
        assert key in report
    assert report["added"] == 1 and report["failed"] == []

    (docs / "b.txt").write_bytes(b"")
    result = invoke("ingest", str(docs), "--index", index, "--json")
    assert result.exit_code == 1
    failed = json.loads(result.stdout)["failed"]
    assert failed == [
        {"path": str(docs / "b.txt"), "error": "file is empty (0 bytes); nothing to index"}
    ]

    status = json.loads(invoke("status", "--index", index, "--json").stdout)
    assert {"documents", "chunks", "embedder", "bytes"} <= status.keys()
    assert status["documents"] == 1


def test_usage_errors_exit_2_with_one_line_and_no_traceback(tmp_path: Path):
    result = invoke("ingest", str(tmp_path / "nope"), "--index", str(tmp_path / "idx"))
    assert result.exit_code == 2
    assert "no such file or directory" in result.stderr and "Traceback" not in result.stderr
    result = invoke("status", "--index", str(tmp_path / "missing"))
    assert result.exit_code == 2 and "rag ingest" in result.stderr
    assert invoke("ingest", "x", "--overlap", "0.9").exit_code == 2


def test_human_report_names_failures(tmp_path: Path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ok.txt").write_text("Fine text.")
    (docs / "bad.pdf").write_bytes(b"%PDF-1.4 garbage")
    result = invoke("ingest", str(docs), "--index", str(tmp_path / "idx"))
    assert result.exit_code == 1
    assert "added 1" in result.stdout
    assert f"{docs / 'bad.pdf'}: not a readable PDF" in result.stderr
