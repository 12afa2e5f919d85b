import json
from pathlib import Path

import numpy as np
import pytest

from rag.bm25 import BM25Index, BM25Settings, Tokenizer
from rag.errors import ConfigError, IndexFormatError

SCIFACT = Path("/work/shared/datasets/scifact")

TEXTS = [
    "Insulin resistance is a hallmark of type 2 diabetes.",
    "Dogs bark at the mail carrier every morning.",
    "Cats purr when they are content.",
    "Diabetes treatment often starts with metformin.",
    "The mail arrives late on Mondays.",
]
IDS = [101, 205, 7, 42, 9000]


@pytest.fixture
def index() -> BM25Index:
    return BM25Index.build(IDS, TEXTS)


def _scifact(n_docs: int, n_queries: int) -> tuple[list[int], list[str], list[str]]:
    if not (SCIFACT / "corpus.jsonl").exists():
        pytest.skip("SciFact dataset not available")
    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as f:
        docs = [json.loads(line) for _, line in zip(range(n_docs), f, strict=False)]
    with open(SCIFACT / "queries.jsonl", encoding="utf-8") as f:
        queries = [json.loads(line)["text"] for _, line in zip(range(n_queries), f, strict=False)]
    ids = [int(d["_id"]) for d in docs]
    return ids, [f"{d['title']} {d['text']}" for d in docs], queries


def test_tokenizer_drops_stopwords_and_stems() -> None:
    assert Tokenizer()("The dogs were barking at the cats") == ["dog", "were", "bark", "cat"]
    assert Tokenizer(stopwords=None, stemmer=None)("The dogs") == ["the", "dogs"]


@pytest.mark.parametrize(("dtype", "tolerance"), [("float32", 1e-5), ("float64", 1e-9)])
def test_scores_match_rank_bm25_okapi(dtype: str, tolerance: float) -> None:
    rank_bm25 = pytest.importorskip("rank_bm25")
    ids, texts, queries = _scifact(200, 20)
    settings = BM25Settings(k1=1.5, b=0.75, method="atire", idf_method="robertson", dtype=dtype)
    index = BM25Index.build(ids, texts, settings)
    tokenize = settings.tokenizer()
    reference = rank_bm25.BM25Okapi(tokenize.many(texts), k1=1.5, b=0.75, epsilon=0.0)
    compared = 0
    for query in queries:
        ref_scores = reference.get_scores(tokenize(query))
        order = np.lexsort((np.arange(len(ids)), -ref_scores))[:10]
        expected = [(ids[i], ref_scores[i]) for i in order if ref_scores[i] > 0]
        got = index.search(query, k=10)
        assert [cid for cid, _ in got] == [cid for cid, _ in expected], query
        np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], atol=tolerance)
        compared += len(got)
    assert compared >= 150  # the queries really hit the corpus


def test_scores_are_lucene_bm25_by_default() -> None:
    index = BM25Index.build([1, 2, 3], ["apple banana", "banana cherry cherry", "date"])
    n, df, k1, b = 3, 1, 1.5, 0.75
    avg_len = (2 + 3 + 1) / 3
    idf = np.log(1 + (n - df + 0.5) / (df + 0.5))
    expected = idf * 2 / (2 + k1 * (1 - b + b * 3 / avg_len))  # lucene drops the (k1 + 1)
    [(cid, score)] = index.search("cherry", k=5)
    assert cid == 2
    assert score == pytest.approx(expected, rel=1e-6)


def test_search_returns_best_first_with_chunk_ids(index: BM25Index) -> None:
    hits = index.search("diabetes insulin", k=3)
    assert [cid for cid, _ in hits] == [101, 42]
    assert hits[0][1] > hits[1][1] > 0


def test_k_larger_than_corpus_returns_only_matches(index: BM25Index) -> None:
    assert [cid for cid, _ in index.search("mail", k=1000)] == [9000, 205]
    assert index.search("mail", k=0) == []


def test_stopword_only_and_unknown_queries_return_nothing(index: BM25Index) -> None:
    assert index.search("the of and to", k=5) == []
    assert index.search("zebra quantum", k=5) == []
    assert index.search("", k=5) == []


def test_empty_corpus_searches_saves_and_loads(tmp_path: Path) -> None:
    empty = BM25Index.build([], [])
    assert len(empty) == 0
    assert empty.search("anything", k=3) == []
    empty.save(tmp_path / "bm25")
    loaded = BM25Index.load(tmp_path / "bm25")
    assert len(loaded) == 0
    assert loaded.search("anything", k=3) == []


def test_corpus_without_terms_returns_nothing() -> None:
    index = BM25Index.build([1, 2], ["the a of", "!!"])
    assert len(index) == 2
    assert index.search("the", k=3) == []


def test_filter_applies_before_top_k() -> None:
    texts = ["fox fox fox", "fox fox", "fox", "dog"]
    index = BM25Index.build([1, 2, 3, 4], texts)
    assert [cid for cid, _ in index.search("fox", k=1)] == [1]
    # the only allowed match ranks third overall, yet k=1 still finds it
    assert [cid for cid, _ in index.search("fox", k=1, allowed={3, 4})] == [3]
    assert index.search("fox", k=5, allowed=set()) == []
    assert index.search("fox", k=5, allowed={999}) == []


def test_ties_break_by_index_order() -> None:
    index = BM25Index.build([30, 10, 20], ["same words", "same words", "same words"])
    assert [cid for cid, _ in index.search("words", k=2)] == [30, 10]
    assert [cid for cid, _ in index.search("words", k=3)] == [30, 10, 20]


def test_search_many_matches_search(index: BM25Index) -> None:
    queries = ["mail", "cats", "the"]
    assert index.search_many(queries, k=2) == [index.search(q, k=2) for q in queries]


def test_save_load_round_trip(index: BM25Index, tmp_path: Path) -> None:
    target = tmp_path / "bm25"
    index.save(target)
    loaded = BM25Index.load(target)
    assert len(loaded) == len(index)
    assert loaded.ids == IDS
    assert loaded.settings == index.settings
    for query in ["mail", "diabetes insulin", "purring cats"]:
        assert loaded.search(query, k=5) == index.search(query, k=5)
    mapped = BM25Index.load(target, mmap=True)
    assert mapped.search("mail", k=5) == index.search("mail", k=5)


def test_save_keeps_custom_settings(tmp_path: Path) -> None:
    settings = BM25Settings(k1=0.9, b=0.4, stopwords=("mail",), stemmer=None)
    BM25Index.build(IDS, TEXTS, settings).save(tmp_path / "bm25")
    loaded = BM25Index.load(tmp_path / "bm25")
    assert loaded.settings == settings
    assert loaded.search("mail", k=5) == []


def test_save_replaces_previous_index_without_leftovers(index: BM25Index, tmp_path: Path) -> None:
    target = tmp_path / "bm25"
    BM25Index.build([1], ["zebra"]).save(target)
    index.save(target)
    assert BM25Index.load(target).ids == IDS
    assert [p.name for p in tmp_path.iterdir()] == ["bm25"]


def test_failed_save_leaves_previous_index_intact(
    index: BM25Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "bm25"
    BM25Index.build([1], ["zebra"]).save(target)

    def explode(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", explode)
    with pytest.raises(OSError, match="disk full"):
        index.save(target)
    monkeypatch.undo()
    assert BM25Index.load(target).search("zebra", k=1)[0][0] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["bm25"]


def test_load_of_missing_index_raises_index_format_error(tmp_path: Path) -> None:
    with pytest.raises(IndexFormatError, match="rebuild"):
        BM25Index.load(tmp_path)


def test_invalid_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="unique"):
        BM25Index.build([1, 1], ["a b", "c d"])
    with pytest.raises(ValueError, match="2 ids but 1 texts"):
        BM25Index.build([1, 2], ["a b"])
    with pytest.raises(ConfigError, match="method"):
        BM25Settings(method="okapi")
    with pytest.raises(ConfigError, match="stemmer"):
        BM25Settings(stemmer="klingon").tokenizer()
