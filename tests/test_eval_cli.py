"""`rag eval retrieval`: the JSON shape, files written, baselines and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag_cli.eval_cmd import eval_app
from tests.test_eval_runner import make_beir

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(eval_app, list(args), catch_exceptions=False)


@pytest.mark.model
def test_json_output_has_the_documented_shape_and_files_are_written(tmp_path: Path):
    dataset = make_beir(tmp_path / "tiny")
    out = tmp_path / "out"
    common = ["--mode", "bm25", "--mode", "dense", "--cache-dir", str(tmp_path / "cache")]
    result = invoke("retrieval", str(dataset), *common, "--out", str(out), "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["dataset"] == "tiny" and data["queries"] == 5
    assert [c["mode"] for c in data["configs"]] == ["bm25", "dense"]
    for config in data["configs"]:
        assert {"mode", "ndcg@10", "recall@100", "mrr@10", "latency_ms_p50"} <= config.keys()
    assert data["command"].startswith("rag eval retrieval ") and "--mode dense" in data["command"]
    for name in ("report.json", "report.md", "metrics.png", "latency.png"):
        assert (out / name).is_file()

    again = invoke(
        "retrieval", str(dataset), *common, "--out", str(tmp_path / "out2"),
        "--baseline", str(out / "report.json"), "--limit", "3",
    )  # fmt: skip
    assert again.exit_code == 0, again.stderr
    assert "index reused" in again.stdout and "bm25" in again.stdout
    compared = json.loads((tmp_path / "out2" / "report.json").read_text())
    assert compared["queries"] == 3
    assert compared["configs"][0]["baseline"]["ndcg@10"]["change"] in ("better", "worse", "same")


def test_folder_that_is_not_a_dataset_exits_2_with_one_line(tmp_path: Path):
    result = invoke("retrieval", str(tmp_path), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "not an evaluation dataset" in result.stderr and "corpus.jsonl" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_malformed_dataset_exits_2_naming_the_line(tmp_path: Path):
    dataset = make_beir(tmp_path / "bad")
    (dataset / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\n")
    result = invoke("retrieval", str(dataset), "--json")
    assert result.exit_code == 2
    assert "test.tsv, line 2" in result.stderr and result.stdout == ""


def test_unknown_mode_and_bad_baseline_exit_2(tmp_path: Path):
    dataset = make_beir(tmp_path / "tiny")
    assert invoke("retrieval", str(dataset), "--mode", "sparse").exit_code == 2
    (tmp_path / "x.json").write_text("[]")
    result = invoke("retrieval", str(dataset), "--baseline", str(tmp_path / "x.json"))
    assert result.exit_code == 2 and "not a report.json" in result.stderr
