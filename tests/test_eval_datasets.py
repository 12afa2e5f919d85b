"""Dataset readers load the shared datasets exactly and name file and line on bad input."""

from __future__ import annotations

import inspect
import json
from collections import Counter
from pathlib import Path

import pytest

from rag.errors import DatasetError, RagError
from rag.eval.datasets import (
    BeirDoc,
    iter_beir_corpus,
    load_beir,
    load_labelled,
    load_qa,
)

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
SCIFACT = DATASETS / "scifact"
SQUAD = DATASETS / "squad2-dev-a"
PUBMEDQA = DATASETS / "pubmedqa-pqal-dev"


def _needs(path: Path) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not path.is_dir(), reason=f"shared dataset {path} not present")


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _jsonl(path: Path, rows: list[dict]) -> Path:
    return _write_lines(path, [json.dumps(row) for row in rows])


def _beir_dir(root: Path) -> Path:
    _jsonl(
        root / "corpus.jsonl",
        [
            {"_id": "d1", "title": "One", "text": "first doc", "metadata": {}},
            {"_id": "d2", "text": "no title"},
        ],
    )
    _jsonl(
        root / "queries.jsonl",
        [{"_id": "q1", "text": "judged"}, {"_id": "q2", "text": "never judged"}],
    )
    _write_lines(root / "qrels" / "test.tsv", ["query-id\tcorpus-id\tscore", "q1\td1\t2"])
    return root


# Real datasets


@_needs(SCIFACT)
def test_scifact_loads_with_published_counts() -> None:
    data = load_beir(SCIFACT)
    assert len(data.corpus) == 5183
    assert len(data.queries) == 300
    assert len(data.qrels) == 300
    assert sum(len(docs) for docs in data.qrels.values()) == 339
    assert len(data.qrels["133"]) == 5 and len(data.qrels["1245"]) == 1
    assert data.corpus["4983"].title.startswith("Microstructural development")
    assert "339 pairs" in repr(data) and len(repr(data)) < 200


@_needs(SCIFACT)
def test_iter_beir_corpus_streams_scifact_documents_in_file_order() -> None:
    docs = iter_beir_corpus(SCIFACT / "corpus.jsonl")
    assert inspect.isgenerator(docs)
    first = next(docs)
    assert isinstance(first, BeirDoc) and first.id == "4983"
    assert 1 + sum(1 for _ in docs) == 5183
    assert next(iter_beir_corpus(SCIFACT)) == first  # a directory works too


@_needs(SQUAD)
def test_squad_sample_has_300_answerable_and_50_unanswerable() -> None:
    data = load_qa(SQUAD, "sample_350.jsonl")
    assert len(data.questions) == 350
    impossible = [q for q in data.questions if q.is_impossible]
    assert len(impossible) == 50
    assert all(not q.answers and not q.gold_doc_ids for q in impossible)
    answerable = [q for q in data.questions if not q.is_impossible]
    assert all(q.answers and len(q.gold_doc_ids) == 1 for q in answerable)
    assert all(q.gold_doc_ids[0] in data.corpus for q in answerable)
    assert len(data.corpus) == 294


@_needs(SQUAD)
def test_squad_full_questions_file_is_the_default() -> None:
    data = load_qa(SQUAD)
    assert len(data.questions) == 2805
    assert sum(q.is_impossible for q in data.questions) == 1527
    first = data.questions[0]
    assert first.question == "In what country is Normandy located?"
    assert first.answers == ["France"] * 4 and first.gold_doc_ids == ["Normans_p000"]


@_needs(PUBMEDQA)
def test_pubmedqa_answers_are_final_decisions() -> None:
    data = load_qa(PUBMEDQA)
    assert len(data.questions) == 500
    assert Counter(q.answers[0] for q in data.questions) == {"yes": 276, "no": 169, "maybe": 55}
    assert not any(q.is_impossible for q in data.questions)
    assert all(q.gold_doc_ids == [q.id] and q.long_answer for q in data.questions)
    assert len(data.corpus) == 500


# Behaviour on small fixtures


def test_load_beir_keeps_only_queries_with_qrels(tmp_path: Path) -> None:
    data = load_beir(_beir_dir(tmp_path))
    assert data.queries == {"q1": "judged"}
    assert data.qrels == {"q1": {"d1": 2}}
    assert data.corpus["d2"] == BeirDoc(id="d2", title="", text="no title")


def test_labelled_file_reads_answerable_and_unanswerable_rows(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "labels.jsonl",
        [
            {"question": "Who?", "file": "docs/a.pdf", "answer": "Ann", "page": 3},
            {"question": "Why?", "file": None, "answer": None, "page": None},
            {"question": "What?", "file": "b.md", "id": "custom"},
        ],
    )
    first, second, third = load_labelled(path)
    assert (first.id, first.answers, first.gold_doc_ids, first.page) == (
        "labels-1",
        ["Ann"],
        ["docs/a.pdf"],
        3,
    )
    assert second.is_impossible and second.gold_doc_ids == [] and second.answers == []
    assert third.id == "custom" and not third.is_impossible and third.answers == []


# Malformed input names file and line


def _error(call, *args) -> DatasetError:
    with pytest.raises(DatasetError) as info:
        call(*args)
    assert isinstance(info.value, RagError)
    return info.value


def test_bad_json_names_file_and_line(tmp_path: Path) -> None:
    root = _beir_dir(tmp_path)
    lines = (root / "corpus.jsonl").read_text().splitlines()
    _write_lines(root / "corpus.jsonl", [*lines, "", '{"_id": "d3", "text": "oops"'])
    err = _error(load_beir, root)
    assert err.line == 4
    assert "corpus.jsonl, line 4: bad JSON" in str(err)


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ({"text": "no id"}, "missing field '_id'"),
        ({"_id": "d9"}, "missing field 'text'"),
        ({"_id": "d9", "text": ["a", "b"]}, "field 'text' must be a string, got array"),
        ({"_id": True, "text": "x"}, "field '_id' must be a non-empty string, got boolean"),
        ({"_id": "d1", "text": "again"}, "duplicate document id 'd1' (first on line 1)"),
    ],
)
def test_bad_corpus_row_names_line_and_problem(tmp_path: Path, row: dict, problem: str) -> None:
    path = _jsonl(tmp_path / "corpus.jsonl", [{"_id": "d1", "text": "ok"}, row])
    err = _error(lambda: list(iter_beir_corpus(path)))
    assert str(err) == f"{path}, line 2: {problem}"


def test_json_array_line_is_rejected(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "corpus.jsonl", ['["_id", "text"]'])
    assert "line 1: expected a JSON object, got array" in str(
        _error(lambda: list(iter_beir_corpus(path)))
    )


def test_non_utf8_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_bytes(b'{"_id": "d1", "text": "ok"}\n{"_id": "d2", "text": "caf\xe9"}\n')
    assert "line 2: not UTF-8" in str(_error(lambda: list(iter_beir_corpus(path))))


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("q1\td1", "expected 3 tab-separated fields"),
        ("q1\td1\thigh", "score 'high' is not an integer"),
        ("q1\td1\t1", "pair ('q1', 'd1') has score 1 here but 2 on line 2"),
        ("q3\td1\t1", "query id 'q3' is not in"),
    ],
)
def test_bad_qrels_line_is_named(tmp_path: Path, line: str, problem: str) -> None:
    root = _beir_dir(tmp_path)
    _write_lines(root / "qrels" / "test.tsv", ["query-id\tcorpus-id\tscore", "q1\td1\t2", line])
    err = _error(load_beir, root)
    assert err.line == 3 and problem in str(err) and "test.tsv, line 3" in str(err)


def test_qrels_without_header_are_read_as_data(tmp_path: Path) -> None:
    root = _beir_dir(tmp_path)
    _write_lines(root / "qrels" / "test.tsv", ["q1\td1\t1"])
    assert load_beir(root).qrels == {"q1": {"d1": 1}}


def test_missing_file_names_it_and_the_expected_layout(tmp_path: Path) -> None:
    root = _beir_dir(tmp_path)
    (root / "qrels" / "test.tsv").unlink()
    message = str(_error(load_beir, root))
    assert str(root / "qrels" / "test.tsv") in message
    assert "file not found" in message and "queries.jsonl" in message
    message = str(_error(load_qa, tmp_path / "nowhere"))
    assert "corpus.jsonl: file not found" in message and "questions.jsonl" in message


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ({"id": "x", "question": "q?"}, "neither SQuAD 2.0"),
        (
            {
                "id": "x",
                "question": "q?",
                "is_impossible": "no",
                "answers": [],
                "gold_doc_id": "d1",
            },
            "field 'is_impossible' must be true or false, got string",
        ),
        (
            {"id": "x", "question": "q?", "is_impossible": False, "answers": [1]},
            "field 'answers' must be a list of strings, got a list holding number 1",
        ),
        (
            {"id": "x", "question": "q?", "is_impossible": False, "answers": []},
            "'answers' is empty but 'is_impossible' is false",
        ),
        (
            {"id": "x", "question": "q?", "is_impossible": False, "answers": ["a"]},
            "missing field 'gold_doc_id'",
        ),
        (
            {
                "id": "x",
                "question": "q?",
                "is_impossible": False,
                "answers": ["a"],
                "gold_doc_id": "zz",
            },
            "gold_doc_id 'zz' is not in",
        ),
        (
            {"id": "x", "question": "q?", "final_decision": "perhaps", "gold_doc_id": "d1"},
            "'final_decision' must be yes, no or maybe, got 'perhaps'",
        ),
        (
            {"id": "ok", "question": "q?", "final_decision": "yes", "gold_doc_id": "d1"},
            "duplicate question id 'ok' (first on line 1)",
        ),
    ],
)
def test_bad_question_row_names_line_and_problem(tmp_path: Path, row: dict, problem: str) -> None:
    _jsonl(tmp_path / "corpus.jsonl", [{"_id": "d1", "text": "doc"}])
    good = {"id": "ok", "question": "q?", "final_decision": "yes", "gold_doc_id": "d1"}
    _jsonl(tmp_path / "questions.jsonl", [good, row])
    err = _error(load_qa, tmp_path)
    assert err.line == 2 and problem in str(err), str(err)


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ({"file": "a.pdf"}, "missing field 'question'"),
        ({"question": "q?", "fiel": "a.pdf"}, "unknown field(s) 'fiel'"),
        ({"question": "q?", "file": None, "answer": "x"}, "'file' is null (unanswerable)"),
        ({"question": "q?", "file": "a.pdf", "page": True}, "'page' must be an integer or null"),
        ({"question": "q?", "file": "a.pdf", "page": 0}, "'page' must be 1 or more"),
        ({"question": "q?", "file": 7}, "'file' must be a string or null, got number 7"),
        ({"question": "  ", "file": "a.pdf"}, "'question' is empty"),
    ],
)
def test_bad_labelled_row_names_line_and_problem(tmp_path: Path, row: dict, problem: str) -> None:
    path = _jsonl(tmp_path / "labels.jsonl", [{"question": "fine?", "file": None}, row])
    err = _error(load_labelled, path)
    assert str(err).startswith(f"{path}, line 2: ") and problem in str(err), str(err)


def test_empty_labelled_file_is_an_error(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "labels.jsonl", ["", "   "])
    assert "holds no questions" in str(_error(load_labelled, path))


DEMO_QUESTIONS = Path(__file__).resolve().parents[1] / "corpora" / "demo" / "questions.jsonl"


@pytest.mark.skipif(not DEMO_QUESTIONS.is_file(), reason="demo corpus questions not present")
def test_demo_corpus_questions_name_files_that_exist() -> None:
    questions = load_labelled(DEMO_QUESTIONS)
    assert len(questions) >= 10 and any(q.is_impossible for q in questions)
    for q in questions:
        for name in q.gold_doc_ids:
            assert (DEMO_QUESTIONS.parent / name).is_file(), name
