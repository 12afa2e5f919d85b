"""Retrieval metrics match trec_eval (via pytrec_eval) and answer metrics match SQuAD's script."""

from __future__ import annotations

import math
import random
import re

import numpy as np
import pytest

from rag.errors import ConfigError
from rag.eval.answer_metrics import exact_match, gold_contained, normalize_answer, token_f1
from rag.eval.metrics import MetricSpec, evaluate, evaluate_per_query, trec_order

pytrec_eval = pytest.importorskip("pytrec_eval", reason="pytrec-eval-terrier (dev extra) needed")

KS = (1, 3, 5, 10, 100)
METRICS = ["ndcg", "map", "recall"] + [
    f"{kind}@{k}" for kind in ("ndcg", "recall", "p", "mrr", "map") for k in KS
]


def _top_k(scores: dict[str, float], k: int) -> dict[str, float]:
    """Truncate a ranking the way trec_eval orders it: float32 score desc, doc id desc."""
    ranked = sorted(scores.items(), key=lambda kv: (np.float32(kv[1]), kv[0]), reverse=True)
    return dict(ranked[:k])


def _reference(run: dict, qrels: dict) -> dict[str, dict[str, float]]:
    """Per-query values from pytrec_eval, renamed to our metric names."""
    cuts = ",".join(map(str, KS))
    measures = {"ndcg", "map", "num_rel", "num_rel_ret"}
    measures |= {f"{m}.{cuts}" for m in ("ndcg_cut", "recall", "P", "map_cut")}
    full = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    out: dict[str, dict[str, float]] = {}
    for qid, values in full.items():
        row = {"ndcg": values["ndcg"], "map": values["map"]}
        row["recall"] = values["num_rel_ret"] / values["num_rel"] if values["num_rel"] else 0.0
        for k in KS:
            row[f"ndcg@{k}"] = values[f"ndcg_cut_{k}"]
            row[f"recall@{k}"] = values[f"recall_{k}"]
            row[f"p@{k}"] = values[f"P_{k}"]
            row[f"map@{k}"] = values[f"map_cut_{k}"]
        out[qid] = row
    for k in KS:
        cut = {qid: _top_k(scores, k) for qid, scores in run.items()}
        rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(cut)
        for qid, values in rr.items():
            out[qid][f"mrr@{k}"] = values["recip_rank"]
    return out


def _assert_matches_trec_eval(run: dict, qrels: dict) -> None:
    ours = evaluate_per_query(run, qrels, METRICS)
    reference = _reference(run, qrels)
    assert set(ours) == set(qrels)
    assert set(reference) == {q for q in qrels if q in run}, "pytrec_eval drops unrun queries"
    for qid, row in ours.items():
        expected = reference.get(qid, dict.fromkeys(METRICS, 0.0))
        for name in METRICS:
            assert row[name] == pytest.approx(expected[name], abs=1e-9), (qid, name)
    means = evaluate(run, qrels, METRICS)
    for name in METRICS:
        total = sum(reference.get(qid, {}).get(name, 0.0) for qid in qrels)
        assert means[name] == pytest.approx(total / len(qrels), abs=1e-9), name


HAND_QRELS = {
    "ties": {"a": 1, "c": 2, "b": 0, "z": -1},
    "graded": {"d1": 3, "d2": 2, "d3": 1, "d4": 0, "d9": 2},
    "none_retrieved": {"x1": 1, "x2": 1},
    "no_relevant_judged": {"a": 0},
    "missing_from_run": {"a": 1},
    "negative_first": {"bad": -2, "good": 1},
}
HAND_RUN = {
    "ties": {"a": 1.0, "b": 1.0, "c": 1.0, "z": 1.0, "y": 0.5},
    "graded": {"d4": 9.0, "d3": 8.0, "d1": 7.5, "d7": 7.0, "d2": 7.0, "d8": 1.0},
    "none_retrieved": {"y1": 3.0, "y2": 2.0},
    "no_relevant_judged": {"a": 1.0, "b": 0.5},
    "negative_first": {"bad": 2.0, "good": 1.0},
    "only_in_run": {"a": 1.0},
}


def test_hand_made_fixture_matches_trec_eval() -> None:
    _assert_matches_trec_eval(HAND_RUN, HAND_QRELS)


def test_randomized_fixture_of_200_queries_matches_trec_eval() -> None:
    rng = random.Random(20240601)
    pool = [f"d{i}" for i in range(160)] + ["D1", "d1x", "é1", "10", "9"]
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, dict[str, float]] = {}
    for i in range(200):
        qid = f"q{i}"
        judged = rng.sample(pool, rng.randint(1, 12))
        qrels[qid] = {doc: rng.choice([-1, 0, 0, 1, 1, 1, 2, 3]) for doc in judged}
        if rng.random() < 0.1:
            continue  # the run misses this query
        docs = rng.sample(pool, rng.randint(0, 150))
        mode = rng.choice(["ints", "rounded", "near_ties"])
        if mode == "ints":
            scores = {doc: float(rng.randint(0, 5)) for doc in docs}
        elif mode == "rounded":
            scores = {doc: round(rng.gauss(10, 2), 1) for doc in docs}
        else:  # equal as float32, different as float64
            scores = {doc: 1.0 + rng.choice([0.0, 1e-12, 1e-9, 0.5]) for doc in docs}
        if docs and rng.random() < 0.3:  # make sure judged docs get retrieved too
            scores.update({doc: rng.choice([1.0, 2.0]) for doc in judged[:3]})
        run[qid] = scores
    run["not_judged"] = {"d1": 1.0}
    _assert_matches_trec_eval(run, qrels)


def test_ties_rank_by_doc_id_descending() -> None:
    assert trec_order({"a": 1.0, "b": 1.0, "c": 2.0, "B": 1.0}) == ["c", "b", "a", "B"]


def test_scores_equal_in_float32_are_ties() -> None:
    assert trec_order({"b": 1.0, "a": 1.0 + 1e-12}) == ["b", "a"]
    assert trec_order({"b": 1.0, "a": 1.0 + 1e-6}) == ["a", "b"]


def test_graded_ndcg_matches_hand_computation() -> None:
    run = {"q": {"d1": 3.0, "d2": 2.0, "d3": 1.0}}
    qrels = {"q": {"d1": 1, "d2": 0, "d3": 3}}
    dcg = 1 + 3 / math.log2(4)
    ideal = 3 + 1 / math.log2(3)
    assert evaluate(run, qrels, ["ndcg@3"])["ndcg@3"] == pytest.approx(dcg / ideal)


def test_query_missing_from_run_scores_zero_and_lowers_the_mean() -> None:
    qrels = {"hit": {"a": 1}, "missed": {"a": 1}}
    result = evaluate({"hit": {"a": 1.0}}, qrels, ["mrr@10", "recall@100"])
    assert result == {"mrr@10": 0.5, "recall@100": 0.5}


def test_run_queries_without_qrels_are_ignored() -> None:
    run = {"q": {"a": 1.0}, "extra": {"b": 1.0}}
    assert set(evaluate_per_query(run, {"q": {"a": 1}})) == {"q"}
    assert evaluate(run, {"q": {"a": 1}}, ["map"]) == {"map": 1.0}


def test_precision_divides_by_k_even_when_fewer_are_retrieved() -> None:
    assert evaluate({"q": {"a": 1.0}}, {"q": {"a": 1}}, ["p@10"]) == {"p@10": 0.1}


def test_mrr_is_zero_when_first_relevant_is_past_the_cutoff() -> None:
    run = {"q": {f"d{i}": float(100 - i) for i in range(20)}}
    values = evaluate(run, {"q": {"d15": 1}}, ["mrr@10", "mrr"])
    assert values == {"mrr@10": 0.0, "mrr": pytest.approx(1 / 16)}


def test_metric_names_are_case_insensitive_and_canonical() -> None:
    values = evaluate({"q": {"a": 1.0}}, {"q": {"a": 1}}, ["nDCG@10", "P@1", "MAP"])
    assert list(values) == ["ndcg@10", "p@1", "map"]
    assert MetricSpec.parse("Recall @ 100") == MetricSpec("recall", 100)


@pytest.mark.parametrize("name", ["bleu@10", "ndcg@0", "p", "ndcg@ten", ""])
def test_bad_metric_name_raises_config_error_naming_it(name: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(repr(name))):
        evaluate({"q": {"a": 1.0}}, {"q": {"a": 1}}, [name])


def test_nan_score_is_rejected() -> None:
    with pytest.raises(ConfigError, match="NaN"):
        evaluate({"q": {"a": float("nan")}}, {"q": {"a": 1}})


def test_empty_qrels_cannot_be_averaged() -> None:
    with pytest.raises(ConfigError, match="qrels"):
        evaluate({"q": {"a": 1.0}}, {})


# Answer metrics: examples checked against the official SQuAD 2.0 evaluate script's rules.


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("The Normans", "normans"),
        ("  an   Apple, a pear!  ", "apple pear"),
        ("10th and 11th centuries.", "10th and 11th centuries"),
        ("Theatre", "theatre"),  # articles only as whole words
        ("Rollo's men", "rollos men"),  # punctuation removed, not replaced by a space
    ],
)
def test_normalize_answer_follows_squad_rules(text: str, normalised: str) -> None:
    assert normalize_answer(text) == normalised


def test_exact_match_takes_the_best_gold() -> None:
    golds = ["10th and 11th centuries", "in the 10th and 11th centuries"]
    assert exact_match("In the 10th and 11th centuries.", golds) == 1.0
    assert exact_match("10th century", golds) == 0.0


def test_token_f1_is_max_over_golds() -> None:
    # pred tokens: [10th, century]; gold [10th, and, 11th, centuries] share 1 -> P 1/2, R 1/4
    assert token_f1("the 10th century", ["10th and 11th centuries"]) == pytest.approx(1 / 3)
    assert token_f1("the 10th century", ["10th and 11th centuries", "10th"]) == pytest.approx(2 / 3)
    assert token_f1("France", ["France", "France"]) == 1.0
    assert token_f1("Germany", ["France"]) == 0.0


def test_unanswerable_question_rewards_only_the_empty_answer() -> None:
    assert exact_match("", []) == 1.0
    assert token_f1("", []) == 1.0
    assert exact_match("France", []) == 0.0
    assert token_f1("France", []) == 0.0
    assert exact_match("France", ["", "..."]) == 0.0  # golds normalising to "" are dropped


def test_gold_contained_matches_whole_tokens() -> None:
    assert gold_contained("They settled in Normandy, France.", ["france"])
    assert gold_contained("It began in the 10th and 11th centuries", ["10th and 11th centuries"])
    assert not gold_contained("in 19734", ["1973"])
    assert not gold_contained("Germany", ["France", "Paris"])
    assert not gold_contained("France", [])


def test_golds_must_be_a_list_not_a_string() -> None:
    with pytest.raises(TypeError):
        exact_match("France", "France")  # type: ignore[arg-type]
