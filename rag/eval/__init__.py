"""Evaluation: dataset readers, retrieval and answer metrics, reports, label-free probes."""

from rag.eval.answer_metrics import exact_match, gold_contained, normalize_answer, token_f1
from rag.eval.datasets import (
    BeirDataset,
    BeirDoc,
    QADataset,
    QAQuestion,
    iter_beir_corpus,
    load_beir,
    load_labelled,
    load_qa,
)
from rag.eval.metrics import DEFAULT_METRICS, MetricSpec, evaluate, evaluate_per_query, trec_order

__all__ = [
    "DEFAULT_METRICS",
    "BeirDataset",
    "BeirDoc",
    "MetricSpec",
    "QADataset",
    "QAQuestion",
    "evaluate",
    "evaluate_per_query",
    "exact_match",
    "gold_contained",
    "iter_beir_corpus",
    "load_beir",
    "load_labelled",
    "load_qa",
    "normalize_answer",
    "token_f1",
    "trec_order",
]
