"""`rag eval answers`: open-retrieval answers scored, resumable, with the abstention curve."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from rag.eval.answers import AnswerRecord, score
from rag_cli.main import app
from tests.conftest import DEMO

pytestmark = pytest.mark.llm


def _record(**overrides) -> AnswerRecord:
    base = dict(id="q", question="?", gold_answers=["38 microamps"], is_impossible=False,
                gold_doc_ids=["manual.pdf"], answer="It draws 38 microamps [1].", abstained=False,
                abstain_reason=None, evidence=0.6, supported_sentences=1, sentences=1,
                cited_docs=["manual.pdf"], source_docs=["manual.pdf"], prompt_tokens=10,
                completion_tokens=5, ttft_s=0.1, total_s=0.2)  # fmt: skip
    base.update(overrides)
    return AnswerRecord(**base)


def test_score_counts_abstention_and_citations_at_a_threshold():
    records = [
        _record(id="a"),
        _record(id="b", is_impossible=True, gold_answers=[], gold_doc_ids=[], evidence=0.2),
        _record(id="c", cited_docs=["other.md"]),
    ]
    report = score(records, threshold=0.3)
    assert report.abstain_recall == 1.0 and report.abstain_precision == 1.0
    assert report.citation_precision == 0.5 and report.exact_match == 0.0
    assert report.gold_contained == 1.0
    curve = {round(p["threshold"], 2): p for p in report.curve}
    assert curve[0.0]["abstain_recall"] == 0.0 and curve[0.7]["answerable_recall"] == 0.0


def test_cli_answers_runs_resumes_and_prints_json(tmp_path):
    from rag.models import resolve_model

    try:
        resolve_model("tiny")
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"tiny generator not installed: {exc}")
    out, cache = str(tmp_path / "out"), str(tmp_path / "cache")
    args = ["eval", "answers", str(DEMO), "--limit", "2", "--preset", "tiny",
            "--out", out, "--cache-dir", cache, "--json"]  # fmt: skip
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    data = json.loads(first.stdout)
    for key in ("dataset", "questions", "exact_match", "f1", "abstain_precision",
                "abstain_recall", "citation_precision"):  # fmt: skip
        assert key in data
    assert data["questions"] == 2
    log = tmp_path / "out" / "answers.jsonl"
    assert len(log.read_text().splitlines()) == 2
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and json.loads(again.stdout)["f1"] == data["f1"]
    assert len(log.read_text().splitlines()) == 2, "a re-run reuses the recorded answers"


def test_support_sweep_abstains_on_weakly_supported_answers_only():
    records = [_record(id="a", support=0.9), _record(id="b", support=0.65)]
    strict = score(records, threshold=0.0, min_support=0.7)
    assert strict.answered_rate == 0.5
    sweep = {round(p["min_support"], 2): p for p in strict.support_curve}
    assert sweep[0.6]["answerable_recall"] == 1.0 and sweep[0.95]["answerable_recall"] == 0.0


def test_answers_report_writes_tables_and_curve(tmp_path):
    from rag.eval.answers_report import write_answers_report

    records = [_record(id="a", answer="38 microamps [1]."),
               _record(id="b", is_impossible=True, gold_answers=[], gold_doc_ids=[],
                       evidence=0.1)]  # fmt: skip
    report = score(records, threshold=0.3)
    report.dataset = "demo"
    files = write_answers_report(report.to_dict(), tmp_path, "rag eval answers demo")
    text = files.markdown.read_text()
    assert "| exact match | 1.000 |" in text  # the [1] marker is not part of the answer
    assert "## Evidence threshold" in text and "rag eval answers demo" in text
    assert json.loads(files.json.read_text())["abstain_recall"] == 1.0
    assert all(p.stat().st_size > 0 for p in files.charts)


def test_found_sweep_abstains_on_answers_the_model_doubted():
    records = [
        _record(id="a", found_p=0.998),
        _record(id="b", found_p=0.6),
        _record(id="c", is_impossible=True, gold_answers=[], gold_doc_ids=[], found_p=0.7),
    ]
    report = score(records, threshold=0.0, min_found=0.8)
    assert report.answered_rate == 0.5 and report.abstain_recall == 1.0
    assert report.abstain_precision == 0.5
    sweep = {p["min_found"]: p for p in report.found_curve}
    assert sweep[0.0]["abstain_recall"] == 0.0 and sweep[0.0]["answerable_recall"] == 1.0
    assert sweep[0.999]["answerable_recall"] == 0.0


def test_text_answers_have_no_found_curve():
    assert score([_record(id="a")], threshold=0.0).found_curve == []
