"""Read evaluation datasets: BEIR retrieval sets, QA sets and a user's labelled questions.

Three layouts are understood:

- BEIR (``load_beir``, ``iter_beir_corpus``): ``corpus.jsonl``, ``queries.jsonl`` and
  ``qrels/<split>.tsv``, as in /work/shared/datasets/scifact.
- QA (``load_qa``): a BEIR-style ``corpus.jsonl`` plus a questions file in the SQuAD 2.0
  layout (squad2-dev-a) or the PubMedQA layout (pubmedqa-pqal-dev).
- Labelled (``load_labelled``): one ``{"question", "file", "answer", "page"}`` object per line,
  for questions about the user's own documents.

Every malformed line raises DatasetError naming the file, the line number and the problem.

Example:
    >>> load_beir("datasets/scifact")  # doctest: +SKIP
    BeirDataset(path='datasets/scifact', corpus=5183 docs, queries=300, qrels=339 pairs)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.errors import DatasetError

BEIR_LAYOUT = (
    "a BEIR dataset directory holds corpus.jsonl (one {'_id', 'title', 'text'} object per line), "
    "queries.jsonl ({'_id', 'text'}) and qrels/<split>.tsv (tab-separated, header "
    "'query-id corpus-id score')"
)
QA_LAYOUT = (
    "a QA dataset directory holds corpus.jsonl (one {'_id', 'title', 'text'} object per line) "
    "and a questions file, questions.jsonl by default, with SQuAD 2.0 rows "
    "{'id', 'question', 'is_impossible', 'answers', 'gold_doc_id'} or PubMedQA rows "
    "{'id', 'question', 'final_decision', 'gold_doc_id'}"
)
LABELLED_LAYOUT = (
    "a labelled file holds one JSON object per line: {'question': str, 'file': str|null, "
    "'answer': str|null, 'page': int|null}, optionally 'id'; file null means unanswerable"
)

PUBMEDQA_DECISIONS = ("yes", "no", "maybe")
_QRELS_HEADER = ["query-id", "corpus-id", "score"]
_LABELLED_KEYS = frozenset({"id", "question", "file", "answer", "page"})


@dataclass(frozen=True)
class BeirDoc:
    """One corpus document."""

    id: str
    title: str
    text: str


@dataclass
class BeirDataset:
    """A retrieval test set: documents, queries and graded relevance judgments."""

    corpus: dict[str, BeirDoc]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    path: Path | None = None

    def __repr__(self) -> str:
        pairs = sum(len(docs) for docs in self.qrels.values())
        return (
            f"BeirDataset(path={_show(self.path)}, corpus={len(self.corpus)} docs, "
            f"queries={len(self.queries)}, qrels={pairs} pairs)"
        )


@dataclass
class QAQuestion:
    """One question with its gold answers and the documents that hold them.

    ``gold_doc_ids`` is empty for an unanswerable question. ``long_answer`` is a free-text
    reference answer (PubMedQA); ``page`` is the 1-based gold page (labelled files).
    """

    id: str
    question: str
    answers: list[str]
    is_impossible: bool
    gold_doc_ids: list[str]
    long_answer: str | None = None
    page: int | None = None


@dataclass
class QADataset:
    """A question-answering test set over its own corpus."""

    corpus: dict[str, BeirDoc]
    questions: list[QAQuestion]
    path: Path | None = None

    def __repr__(self) -> str:
        impossible = sum(q.is_impossible for q in self.questions)
        return (
            f"QADataset(path={_show(self.path)}, corpus={len(self.corpus)} docs, "
            f"questions={len(self.questions)} ({impossible} unanswerable))"
        )


def load_beir(directory: str | Path, split: str = "test") -> BeirDataset:
    """Load a BEIR dataset; only queries that appear in ``qrels/<split>.tsv`` are kept.

    Judged documents missing from the corpus are kept in the qrels (they cap recall below 1,
    as they do in BEIR).
    """
    root = Path(directory)
    corpus_path = _require(root / "corpus.jsonl", BEIR_LAYOUT)
    queries_path = _require(root / "queries.jsonl", BEIR_LAYOUT)
    qrels_path = _require(root / "qrels" / f"{split}.tsv", BEIR_LAYOUT)
    qrels, first_line = _read_qrels(qrels_path)
    if not qrels:
        raise DatasetError(str(qrels_path), "holds no judgments")
    queries: dict[str, str] = {}
    seen: dict[str, int] = {}
    for where, row in _jsonl_rows(queries_path):
        qid = _id_field(row, "_id", where)
        text = _str_field(row, "text", where)
        if qid in seen:
            raise where.error(f"duplicate query id {qid!r} (first on line {seen[qid]})")
        seen[qid] = where.line
        if qid in qrels:
            queries[qid] = text
    for qid, line in first_line.items():
        if qid not in queries:
            raise DatasetError(str(qrels_path), f"query id {qid!r} is not in {queries_path}", line)
    corpus = {doc.id: doc for doc in iter_beir_corpus(corpus_path)}
    return BeirDataset(corpus=corpus, queries=queries, qrels=qrels, path=root)


def iter_beir_corpus(path: str | Path) -> Iterator[BeirDoc]:
    """Yield the documents of a BEIR ``corpus.jsonl`` (or of a directory holding one) in order.

    A missing ``title`` reads as ""; a repeated ``_id`` is an error.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "corpus.jsonl"
    _require(path, BEIR_LAYOUT)
    seen: dict[str, int] = {}
    for where, row in _jsonl_rows(path):
        doc_id = _id_field(row, "_id", where)
        if doc_id in seen:
            raise where.error(f"duplicate document id {doc_id!r} (first on line {seen[doc_id]})")
        seen[doc_id] = where.line
        title = _opt_str_field(row, "title", where) or ""
        yield BeirDoc(id=doc_id, title=title, text=_str_field(row, "text", where))


def load_qa(directory: str | Path, questions_file: str | Path | None = None) -> QADataset:
    """Load a QA dataset: ``corpus.jsonl`` plus SQuAD 2.0 or PubMedQA question rows.

    ``questions_file`` is a file name inside ``directory`` (e.g. ``sample_350.jsonl``) or a
    path; it defaults to ``questions.jsonl``. The layout is recognised per row:

    - SQuAD 2.0: ``answers`` are all annotator answers; ``is_impossible`` questions have none
      and no gold document (their ``gold_doc_id`` is the paragraph they were written against,
      not evidence, so it is dropped).
    - PubMedQA: the answer is ``final_decision`` (yes/no/maybe), ``long_answer`` is kept as a
      free-text reference; never unanswerable.
    """
    root = Path(directory)
    corpus_path = _require(root / "corpus.jsonl", QA_LAYOUT)
    questions_path = _require(root / (questions_file or "questions.jsonl"), QA_LAYOUT)
    corpus = {doc.id: doc for doc in iter_beir_corpus(corpus_path)}
    questions: list[QAQuestion] = []
    seen: dict[str, int] = {}
    for where, row in _jsonl_rows(questions_path):
        if "final_decision" in row:
            question = _pubmedqa_question(row, where)
        elif "answers" in row or "is_impossible" in row:
            question = _squad_question(row, where)
        else:
            raise where.error(
                "row is neither SQuAD 2.0 (needs 'answers' and 'is_impossible') "
                "nor PubMedQA (needs 'final_decision')"
            )
        if question.id in seen:
            raise where.error(
                f"duplicate question id {question.id!r} (first on line {seen[question.id]})"
            )
        seen[question.id] = where.line
        for doc_id in question.gold_doc_ids:
            if doc_id not in corpus:
                raise where.error(f"gold_doc_id {doc_id!r} is not in {corpus_path}")
        questions.append(question)
    if not questions:
        raise DatasetError(str(questions_path), f"holds no questions; {QA_LAYOUT}")
    return QADataset(corpus=corpus, questions=questions, path=root)


def load_labelled(path: str | Path) -> list[QAQuestion]:
    """Load a user's labelled questions (see LABELLED_LAYOUT).

    ``file`` becomes the single gold doc id, exactly as written (the caller matches it against
    ingested paths); a null ``file`` marks the question unanswerable, so it may carry neither
    an answer nor a page. A question without ``id`` is named ``<file stem>-<line>``. Unknown
    keys are errors, so a misspelt ``file`` cannot silently make a question unanswerable.
    """
    path = _require(Path(path), LABELLED_LAYOUT)
    questions: list[QAQuestion] = []
    seen: dict[str, int] = {}
    for where, row in _jsonl_rows(path):
        unknown = sorted(set(row) - _LABELLED_KEYS)
        if unknown:
            allowed = ", ".join(sorted(_LABELLED_KEYS))
            raise where.error(
                f"unknown field(s) {', '.join(map(repr, unknown))}; allowed: {allowed}"
            )
        qid = _id_field(row, "id", where, required=False) or f"{path.stem}-{where.line}"
        question = _str_field(row, "question", where)
        if not question.strip():
            raise where.error("field 'question' is empty")
        file = _opt_str_field(row, "file", where)
        answer = _opt_str_field(row, "answer", where)
        page = _page_field(row, where)
        if file is None and (answer is not None or page is not None):
            raise where.error("'file' is null (unanswerable) but an 'answer' or 'page' is given")
        if qid in seen:
            raise where.error(f"duplicate question id {qid!r} (first on line {seen[qid]})")
        seen[qid] = where.line
        questions.append(
            QAQuestion(
                id=qid,
                question=question,
                answers=[] if answer is None else [answer],
                is_impossible=file is None,
                gold_doc_ids=[] if file is None else [file],
                page=page,
            )
        )
    if not questions:
        raise DatasetError(str(path), f"holds no questions; {LABELLED_LAYOUT}")
    return questions


@dataclass(frozen=True)
class _Where:
    path: Path
    line: int

    def error(self, problem: str) -> DatasetError:
        return DatasetError(str(self.path), problem, self.line)


def _squad_question(row: dict[str, Any], where: _Where) -> QAQuestion:
    is_impossible = _bool_field(row, "is_impossible", where)
    answers = _str_list_field(row, "answers", where)
    if is_impossible and answers:
        raise where.error("'is_impossible' is true but 'answers' is not empty")
    if not is_impossible and not answers:
        raise where.error("'answers' is empty but 'is_impossible' is false")
    return QAQuestion(
        id=_id_field(row, "id", where),
        question=_str_field(row, "question", where),
        answers=answers,
        is_impossible=is_impossible,
        gold_doc_ids=[] if is_impossible else [_str_field(row, "gold_doc_id", where)],
    )


def _pubmedqa_question(row: dict[str, Any], where: _Where) -> QAQuestion:
    decision = _str_field(row, "final_decision", where)
    if decision not in PUBMEDQA_DECISIONS:
        raise where.error(f"'final_decision' must be yes, no or maybe, got {decision!r}")
    return QAQuestion(
        id=_id_field(row, "id", where),
        question=_str_field(row, "question", where),
        answers=[decision],
        is_impossible=False,
        gold_doc_ids=[_str_field(row, "gold_doc_id", where)],
        long_answer=_opt_str_field(row, "long_answer", where),
    )


def _read_qrels(path: Path) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """Read a BEIR qrels TSV; return the qrels and the first line of each query."""
    qrels: dict[str, dict[str, int]] = {}
    first_line: dict[str, int] = {}
    pair_line: dict[tuple[str, str], int] = {}
    first_row = True
    for where, text in _text_lines(path):
        fields = [part.strip() for part in text.split("\t")]
        if first_row and fields == _QRELS_HEADER:
            first_row = False
            continue
        hint = f" (expected header {' '.join(_QRELS_HEADER)!r})" if first_row else ""
        first_row = False
        if len(fields) != 3:
            raise where.error(
                f"expected 3 tab-separated fields (query-id, corpus-id, score), "
                f"got {len(fields)}{hint}"
            )
        qid, doc_id, raw_score = fields
        if not qid or not doc_id:
            raise where.error("empty query-id or corpus-id")
        try:
            score = int(raw_score)
        except ValueError:
            raise where.error(f"score {raw_score!r} is not an integer{hint}") from None
        old = qrels.get(qid, {}).get(doc_id)
        if old is not None and old != score:
            first = pair_line[(qid, doc_id)]
            raise where.error(
                f"pair ({qid!r}, {doc_id!r}) has score {score} here but {old} on line {first}"
            )
        pair_line.setdefault((qid, doc_id), where.line)
        first_line.setdefault(qid, where.line)
        qrels.setdefault(qid, {})[doc_id] = score
    return qrels, first_line


def _require(path: Path, layout: str) -> Path:
    if not path.is_file():
        raise DatasetError(str(path), f"file not found; {layout}")
    return path


def _text_lines(path: Path) -> Iterator[tuple[_Where, str]]:
    """Yield the non-blank lines of a UTF-8 file with their 1-based line numbers."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            where = _Where(path, number)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise where.error(f"not UTF-8 text (byte {exc.start}: {exc.reason})") from None
            if number == 1:
                text = text.removeprefix("\ufeff")
            text = text.rstrip("\r\n")
            if text.strip():
                yield where, text


def _jsonl_rows(path: Path) -> Iterator[tuple[_Where, dict[str, Any]]]:
    """Yield each non-blank line of a JSON Lines file as an object."""
    for where, text in _text_lines(path):
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            raise where.error(f"bad JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(row, dict):
            raise where.error(f"expected a JSON object, got {_json_type(row)}")
        yield where, row


def _id_field(row: dict[str, Any], key: str, where: _Where, required: bool = True) -> str:
    """Read an id: a non-empty string, or an integer turned into one."""
    value = row.get(key)
    if value is None and not required:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value:
        return value
    if value == "":
        raise where.error(f"field {key!r} is empty")
    if key not in row:
        raise where.error(f"missing field {key!r}")
    raise where.error(f"field {key!r} must be a non-empty string, got {_json_type(value)}")


def _str_field(row: dict[str, Any], key: str, where: _Where) -> str:
    value = row.get(key)
    if isinstance(value, str):
        return value
    if key not in row:
        raise where.error(f"missing field {key!r}")
    raise where.error(f"field {key!r} must be a string, got {_json_type(value)}")


def _opt_str_field(row: dict[str, Any], key: str, where: _Where) -> str | None:
    value = row.get(key)
    if value is None or isinstance(value, str):
        return value
    raise where.error(f"field {key!r} must be a string or null, got {_json_type(value)}")


def _bool_field(row: dict[str, Any], key: str, where: _Where) -> bool:
    value = row.get(key)
    if isinstance(value, bool):
        return value
    if key not in row:
        raise where.error(f"missing field {key!r}")
    raise where.error(f"field {key!r} must be true or false, got {_json_type(value)}")


def _str_list_field(row: dict[str, Any], key: str, where: _Where) -> list[str]:
    value = row.get(key)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    if key not in row:
        raise where.error(f"missing field {key!r}")
    got = _json_type(value)
    if isinstance(value, list):
        got = "a list holding " + ", ".join(sorted({_json_type(item) for item in value}))
    raise where.error(f"field {key!r} must be a list of strings, got {got}")


def _page_field(row: dict[str, Any], where: _Where) -> int | None:
    value = row.get("page")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise where.error(f"field 'page' must be an integer or null, got {_json_type(value)}")
    if value < 1:
        raise where.error(f"field 'page' must be 1 or more (pages count from 1), got {value}")
    return value


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return f"number {value!r}"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _show(path: Path | None) -> str:
    return repr(None if path is None else str(path))
