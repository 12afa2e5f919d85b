"""Retriever on a tiny real index: fusion, filters, deletions and the rerank stage."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from rag import Index
from rag.errors import ConfigError
from rag.fusion import reciprocal_rank_fusion, score_fusion
from rag.retrieve import Filters, Hit, Retriever
from rag.store import Store

DOCS = {
    "cats.md": "# Cats\n\nCats purr when they are content. A purring cat is usually relaxed.",
    "dogs.md": "# Dogs\n\nDogs bark at strangers. Barking is how a dog warns its pack.",
    "volcano.txt": "Volcanoes erupt when magma rises through the crust and pressure builds.",
    "battery.txt": "The battery lasts ten hours. Charge it overnight with the supplied adapter.",
    "oven.md": "# Oven\n\nPreheat the oven to 200 degrees before baking bread loaves.",
}


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text)
    return folder


@pytest.fixture
def index(tmp_path: Path, corpus: Path, embedder) -> Index:
    index = Index(tmp_path / "index", embedder=embedder)
    index.ingest([corpus])
    return index


def names(hits: Sequence[Hit]) -> list[str]:
    return [Path(h.path).name for h in hits]


def test_hybrid_search_finds_the_relevant_document_first(index: Index) -> None:
    hits = index.search("why does my cat purr", k=3)
    assert names(hits)[0] == "cats.md"
    assert [h.rank for h in hits] == [1, 2, 3]
    first = hits[0].stages
    assert first.bm25_rank == 1 and first.dense_rank == 1 and first.fused_rank == 1


def test_zscore_fusion_is_the_default(index: Index, embedder) -> None:
    retriever = Retriever(index.retriever.store, embedder)
    assert retriever.fusion == "zscore" and retriever.dense_weight == 0.5
    assert index.retriever.fusion == "zscore"


def test_zscore_fusion_scores_one_sided_hits_with_their_exact_score(index: Index, embedder):
    store = index.retriever.store
    query = "magma pressure under the crust"
    hits = Retriever(store, embedder, candidates=2).search(query, k=2)
    bm25 = store.keyword_index().search(query, 2)
    vector = embedder.encode([query])
    dense_all = dict(store.vector_index().search(vector, store.chunk_count()))
    dense = sorted(dense_all.items(), key=lambda kv: -kv[1])[:2]
    bm25_all = dict(store.keyword_index().search(query, 100))
    extra_bm25 = {cid: bm25_all.get(cid, 0.0) for cid, _ in dense if cid not in dict(bm25)}
    extra_dense = {cid: dense_all[cid] for cid, _ in bm25 if cid not in dict(dense)}
    expected = score_fusion([bm25, dense], weights=[0.5, 0.5], normalize="zscore",
                            extra=[extra_bm25, extra_dense])  # fmt: skip
    assert [h.chunk_id for h in hits] == [cid for cid, _ in expected]
    assert [h.score for h in hits] == pytest.approx([score for _, score in expected])
    assert names(hits)[0] == "volcano.txt"
    assert any(h.stages.bm25_rank is None for h in hits)  # a dense-only hit was scored


def test_rrf_and_minmax_fusion_stay_available(index: Index, embedder) -> None:
    store = index.retriever.store
    query = "charging the battery"
    hits = Retriever(store, embedder, fusion="rrf", rrf_k=10).search(query, k=5)
    bm25 = [cid for cid, _ in store.keyword_index().search(query, 100)]
    dense = Retriever(store, embedder).search(query, k=5, mode="dense")
    expected = reciprocal_rank_fusion([bm25, [h.chunk_id for h in dense]], k=10)
    assert [h.chunk_id for h in hits] == [cid for cid, _ in expected][:5]
    assert [h.score for h in hits] == pytest.approx([score for _, score in expected][:5])
    minmax = Retriever(store, embedder, fusion="minmax").search(query, k=5)
    assert names(minmax)[0] == "battery.txt"
    assert max(h.score for h in minmax) <= 1.0 + 1e-9


def test_bad_retriever_settings_raise_config_error(index: Index, embedder) -> None:
    store = index.retriever.store
    with pytest.raises(ConfigError, match="fusion='sum'"):
        Retriever(store, embedder, fusion="sum")
    with pytest.raises(ConfigError, match="dense_weight=1.5"):
        Retriever(store, embedder, dense_weight=1.5)
    with pytest.raises(ConfigError, match="mode='fuzzy'"):
        Retriever(store, embedder).search("cats", mode="fuzzy")


def test_path_glob_and_kinds_filter_every_mode(index: Index) -> None:
    for mode in ("bm25", "dense", "hybrid"):
        hits = index.search("cats dogs battery oven volcano", k=10, mode=mode, kinds=["txt"])
        assert set(names(hits)) <= {"volcano.txt", "battery.txt"}, mode
        assert hits, mode
        hits = index.search("purring cats and dogs", k=10, mode=mode, path_glob="*/dogs.md")
        assert set(names(hits)) == {"dogs.md"}, mode
    assert index.search("purring cats", path_glob="*/nothing-here.md") == []


def test_deleted_file_leaves_bm25_and_faiss_after_reingest(
    tmp_path: Path, corpus: Path, embedder
) -> None:
    index = Index(tmp_path / "index", embedder=embedder)
    index.ingest([corpus])
    assert "volcano.txt" in names(index.search("magma eruption", k=5, mode="bm25"))
    (corpus / "volcano.txt").unlink()
    report = index.ingest([corpus])
    assert report.removed == 1
    for mode in ("bm25", "dense", "hybrid"):
        assert "volcano.txt" not in names(index.search("magma eruption", k=10, mode=mode))
    store = Store(tmp_path / "index")
    assert store.keyword_index().search("magma eruption", 10) == []
    assert len(store.vector_index()) == store.chunk_count() == len(DOCS) - 1
    assert store.consistency_problems() == []
    fresh = Index(tmp_path / "index", embedder=embedder)  # a new process sees the same
    assert "volcano.txt" not in names(fresh.search("magma eruption", k=10))


class Reverse:
    """A reranker that prefers whatever fusion ranked last."""

    name = "reverse"

    def __init__(self) -> None:
        self.seen: list[int] = []

    def score(self, query: str, hits: Sequence[Hit]) -> list[float]:
        self.seen.append(len(hits))
        return [float(i) for i in range(len(hits))]


def test_reranker_reorders_only_the_top_rerank_top(index: Index, embedder) -> None:
    store = index.retriever.store
    plain = Retriever(store, embedder).search("cats purr", k=5)
    reverse = Reverse()
    retriever = Retriever(store, embedder, reranker=reverse, rerank_top=3)
    retrieval = retriever.retrieve("cats purr", k=5)
    hits = retrieval.hits
    assert reverse.seen == [3]
    assert [h.chunk_id for h in hits] == [h.chunk_id for h in plain[2::-1] + plain[3:]]
    assert [h.stages.rerank_score for h in hits] == [2.0, 1.0, 0.0, None, None]
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    assert "rerank" in retrieval.timings
    unranked = retriever.search("cats purr", k=5, rerank=False)
    assert [h.chunk_id for h in unranked] == [h.chunk_id for h in plain]


def test_filters_inactive_by_default() -> None:
    assert not Filters().active
    assert Filters(kinds=("md",)).active
