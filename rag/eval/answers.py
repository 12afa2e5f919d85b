"""Answer evaluation: ask every question the way a user would (open retrieval over the whole
corpus), score the answers, and sweep the abstention threshold.

Runs are resumable: each answered question is appended to `answers.jsonl` in the output folder
(keyed by a hash of the settings), so a run that dies picks up where it stopped.

Every question is answered with the evidence gate off (`min_evidence=0`) and the evidence score
recorded, so one pass yields the whole abstention trade-off curve: for a threshold t, a question
is abstained on when its evidence < t or the pipeline abstained for another reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from rag.ask import Answer
from rag.cite import CITATION
from rag.errors import DatasetError
from rag.eval.answer_metrics import exact_match, gold_contained, token_f1
from rag.eval.cache import CachedIndex, Corpus, open_cached_index
from rag.eval.datasets import QAQuestion, load_labelled, load_qa
from rag.llm.base import ChatModel
from rag.settings import Settings, load_settings

YES_NO = {"yes", "no", "maybe"}


@dataclass
class AnswerRecord:
    """One question, its gold labels, what the pipeline answered, and the signals behind it."""

    id: str
    question: str
    gold_answers: list[str]
    is_impossible: bool
    gold_doc_ids: list[str]
    answer: str
    abstained: bool
    abstain_reason: str | None
    evidence: float
    supported_sentences: int
    sentences: int
    cited_docs: list[str]
    source_docs: list[str]
    prompt_tokens: int
    completion_tokens: int
    ttft_s: float
    total_s: float
    support: float = 0.0  # best support of any answer sentence (0 when there is none)
    raw_answer: str = ""  # what the model wrote, also when the pipeline abstained
    found_p: float | None = None  # structured answers: the model's P(found=true)


@dataclass
class AnswersReport:
    """Answer-quality metrics for one dataset and configuration."""

    dataset: str
    questions: int
    answerable: int
    unanswerable: int
    threshold: float
    exact_match: float
    f1: float
    gold_contained: float
    answered_rate: float
    abstain_precision: float
    abstain_recall: float
    citation_precision: float
    citation_recall: float
    support_rate: float
    gold_in_sources: float
    completion_tokens_mean: float
    seconds_mean: float
    ttft_s_p50: float
    min_support: float = 0.0
    min_found: float = 0.0
    curve: list[dict[str, float]] = field(default_factory=list)
    support_curve: list[dict[str, float]] = field(default_factory=list)
    found_curve: list[dict[str, float]] = field(default_factory=list)
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def load_questions(path: Path, questions_file: str | None) -> tuple[str, Corpus, list[QAQuestion]]:
    """Read a QA folder (corpus.jsonl + questions) or a labelled folder/file."""
    path = path.expanduser()
    if path.is_dir() and (path / "corpus.jsonl").is_file():
        data = load_qa(path, questions_file)
        return path.resolve().name, Corpus(path / "corpus.jsonl"), data.questions
    labelled = path / (questions_file or "questions.jsonl") if path.is_dir() else path
    if not labelled.is_file():
        raise DatasetError(
            str(path),
            "not a QA dataset: expected corpus.jsonl + questions.jsonl (SQuAD/PubMedQA layout) "
            "or a folder of documents with questions.jsonl",
        )
    questions = load_labelled(labelled)
    return labelled.parent.resolve().name, Corpus(labelled.parent, exclude=(labelled,)), questions


def run_answers(
    dataset_dir: str | Path,
    *,
    questions_file: str | None = None,
    limit: int | None = None,
    settings: Settings | None = None,
    out_dir: str | Path,
    cache_dir: str | Path | None = None,
    min_support: float = 0.0,
    chat_model: ChatModel | None = None,
    on_question: Callable[[int, int], None] | None = None,
) -> AnswersReport:
    """Answer each question with open retrieval, resuming from `out_dir/answers.jsonl`.

    The model and every answer setting come from `settings` (default: the layered settings);
    the evidence and P(found) gates are applied when scoring, so one run gives the whole
    trade-off curve and `--min-evidence` / `--min-found` re-score without re-asking.
    """
    name, corpus, questions = load_questions(Path(dataset_dir), questions_file)
    if limit is not None:
        questions = questions[:limit]
    settings = settings or load_settings().settings
    answer_settings = settings.answer
    threshold, min_found = answer_settings.min_evidence, answer_settings.min_found
    run_settings = replace(answer_settings, min_evidence=0.0, min_found=0.0)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cached = open_cached_index(corpus, settings, cache_dir=cache_dir)
    model = chat_model or cached.index.chat_model()  # the cached index runs on `settings`
    config: dict[str, object] = {
        "model": model.name,
        "settings": asdict(run_settings),
        "pipeline": settings.hash("retrieval", "bm25", "generation"),
    }
    if settings.llm.url.strip():  # answered through a server: never mixed with local answers
        config["llm"] = {"url": settings.llm.url, "model": model.name,
                         "hash": settings.hash("llm")}  # fmt: skip
    key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
    log = out / "answers.jsonl"
    done = _read_done(log, key)
    from rag.ask import Asker

    asker = Asker(cached.index.retriever, model, run_settings)
    records = []
    try:
        with log.open("a", encoding="utf-8") as handle:
            for i, q in enumerate(questions, start=1):
                if q.id in done:
                    records.append(done[q.id])
                else:
                    record = _record(q, asker.ask(q.question), cached)
                    handle.write(json.dumps({"key": key, **asdict(record)}) + "\n")
                    handle.flush()
                    os.fsync(handle.fileno())
                    records.append(record)
                if on_question:
                    on_question(i, len(questions))
    finally:
        cached.close()  # frees the chat model too
    report = score(records, threshold, min_support, min_found)
    report.dataset = name
    report.settings = config
    return report


def _record(q: QAQuestion, answer: Answer, cached: CachedIndex) -> AnswerRecord:
    """What one answer is scored on, as logged in answers.jsonl."""
    sentences = answer.sentences
    return AnswerRecord(
        id=q.id,
        question=q.question,
        gold_answers=q.answers,
        is_impossible=q.is_impossible,
        gold_doc_ids=q.gold_doc_ids,
        answer="" if answer.abstained else answer.answer,
        abstained=answer.abstained,
        abstain_reason=answer.abstain_reason,
        evidence=answer.evidence,
        supported_sentences=sum(s.supported for s in sentences),
        sentences=len(sentences),
        cited_docs=sorted(
            {cached.doc_id(answer.sources[n - 1].path) for s in sentences for n in s.citations}
        ),
        source_docs=[cached.doc_id(s.path) for s in answer.sources or answer.nearest],
        prompt_tokens=answer.usage.prompt_tokens,
        completion_tokens=answer.usage.completion_tokens,
        ttft_s=answer.usage.ttft_s,
        total_s=answer.usage.total_s,
        support=max((s.support for s in sentences), default=0.0),
        raw_answer=answer.raw_answer,
        found_p=answer.found_p,
    )


def _read_done(log: Path, key: str) -> dict[str, AnswerRecord]:
    done: dict[str, AnswerRecord] = {}
    if not log.is_file():
        return done
    for line in log.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash
        if row.pop("key", None) == key:
            done[row["id"]] = AnswerRecord(**row)
    return done


def _prediction(record: AnswerRecord, abstained: bool) -> str:
    """The answer text scored against the gold answers: citation markers removed."""
    if abstained:
        return ""
    text = CITATION.sub("", record.answer).strip()
    if record.gold_answers and set(a.lower() for a in record.gold_answers) <= YES_NO:
        words = [w.strip(".,;:!").lower() for w in text.split()]
        return next((w for w in words if w in YES_NO), text)
    return text


def _decide(
    record: AnswerRecord, threshold: float, min_support: float = 0.0, min_found: float = 0.0
) -> bool:
    """Abstain when the pipeline did, the evidence is under `threshold`, no answer sentence
    has at least `min_support` (only stricter than the run's own support threshold) or the
    model's P(found) is under `min_found` (structured answers only)."""
    return (
        record.abstained
        or record.evidence < threshold
        or record.support < min_support
        or (record.found_p is not None and record.found_p < min_found)
    )


def _trade_off(
    records: list[AnswerRecord], threshold: float, min_support: float, min_found: float = 0.0
) -> dict:
    def decide(r: AnswerRecord) -> bool:
        return _decide(r, threshold, min_support, min_found)

    impossible = [r for r in records if r.is_impossible]
    answerable = [r for r in records if not r.is_impossible]
    abst = [r for r in records if decide(r)]
    correct = [r for r in answerable if not decide(r)
               and gold_contained(_prediction(r, False), r.gold_answers)]  # fmt: skip
    return {
        "threshold": threshold,
        "min_support": min_support,
        "min_found": min_found,
        "abstain_precision": _ratio(sum(r.is_impossible for r in abst), len(abst)),
        "abstain_recall": _ratio(sum(decide(r) for r in impossible), len(impossible)),
        "answerable_recall": _ratio(sum(not decide(r) for r in answerable), len(answerable)),
        "gold_contained": _ratio(len(correct), len(answerable)),
    }


def _ratio(a: float, b: float) -> float:
    return round(a / b, 4) if b else 0.0


def score(
    records: list[AnswerRecord],
    threshold: float,
    min_support: float = 0.0,
    min_found: float = 0.0,
) -> AnswersReport:
    """Compute the metrics at `threshold` (and `min_support`, `min_found`), plus the
    trade-off curves over each of the three."""

    def decide(r: AnswerRecord) -> bool:
        return _decide(r, threshold, min_support, min_found)

    answerable = [r for r in records if not r.is_impossible]
    impossible = [r for r in records if r.is_impossible]
    abstained = [r for r in records if decide(r)]
    answered = [r for r in answerable if not decide(r)]
    em = [exact_match(_prediction(r, decide(r)), r.gold_answers) for r in answerable]
    f1 = [token_f1(_prediction(r, decide(r)), r.gold_answers) for r in answerable]
    contained = [gold_contained(_prediction(r, decide(r)), r.gold_answers) for r in answerable]
    cited = [(r, d) for r in answered for d in r.cited_docs]
    sentences = sum(r.sentences for r in records if not decide(r))
    supported = sum(r.supported_sentences for r in records if not decide(r))
    curve = [_trade_off(records, i / 100, min_support, min_found) for i in range(0, 80, 2)]
    support_curve = [_trade_off(records, threshold, i / 100, min_found) for i in range(0, 100, 5)]
    found_curve = (
        [_trade_off(records, threshold, min_support, f) for f in _FOUND_STEPS]
        if any(r.found_p is not None for r in records)
        else []
    )
    return AnswersReport(
        dataset="",
        questions=len(records),
        answerable=len(answerable),
        unanswerable=len(impossible),
        threshold=threshold,
        exact_match=_ratio(sum(em), len(em)),
        f1=_ratio(sum(f1), len(f1)),
        gold_contained=_ratio(sum(contained), len(contained)),
        answered_rate=_ratio(len(answered), len(answerable)),
        abstain_precision=_ratio(sum(r.is_impossible for r in abstained), len(abstained)),
        abstain_recall=_ratio(sum(decide(r) for r in impossible), len(impossible)),
        citation_precision=_ratio(sum(d in r.gold_doc_ids for r, d in cited), len(cited)),
        citation_recall=_ratio(
            sum(any(d in r.gold_doc_ids for d in r.cited_docs) for r in answered), len(answered)
        ),  # fmt: skip
        support_rate=_ratio(supported, sentences),
        gold_in_sources=_ratio(
            sum(any(d in r.gold_doc_ids for d in r.source_docs) for r in answerable),
            len(answerable),
        ),  # fmt: skip
        completion_tokens_mean=round(statistics.fmean([r.completion_tokens for r in records]), 1)
        if records
        else 0.0,
        seconds_mean=round(statistics.fmean([r.total_s for r in records]), 2) if records else 0.0,
        ttft_s_p50=round(statistics.median([r.ttft_s for r in records]), 3) if records else 0.0,
        min_support=min_support,
        min_found=min_found,
        curve=curve,
        support_curve=support_curve,
        found_curve=found_curve,
    )


# P(found) piles up between 0.9 and 1 (measured on SQuAD 2.0): the sweep is fine there.
_FOUND_STEPS = [0.0, 0.5, 0.8] + [round(0.9 + i * 0.005, 3) for i in range(20)] + [0.999]
