"""The approximate (HNSW) dense index agrees with exact search and follows deletions."""

from __future__ import annotations

from rag import Index
from rag.retrieve import Filters, Retriever
from rag.store import Store
from rag.vectors import HnswBackend


def test_hnsw_matches_exact_search_and_respects_filters_and_deletions(tmp_path, embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    topics = ["battery", "radio", "mast", "rain gauge", "display", "warranty", "firmware"]
    for i, topic in enumerate(topics):
        (docs / f"{i}.md").write_text(f"# {topic}\n\nThe {topic} of the K9 is covered here.\n")
    index = Index(tmp_path / "idx", embedder=embedder)
    index.ingest([docs])
    exact = Retriever(Store(index.path), embedder)
    approx = Retriever(Store(index.path, vectors=HnswBackend()), embedder)
    for query in ["how long does the battery last", "which radio band", "rain measurement"]:
        want = [h.chunk_id for h in exact.search(query, k=3, mode="dense")]
        assert [h.chunk_id for h in approx.search(query, k=3, mode="dense")] == want
    only = Filters(path_glob="*/1.md")
    assert {h.path for h in approx.search("battery", k=5, mode="dense", filters=only)} == {
        str(docs / "1.md")
    }
    (docs / "0.md").unlink()
    index.ingest([docs])
    fresh = Retriever(Store(index.path, vectors=HnswBackend()), embedder)
    assert all(not h.path.endswith("/0.md") for h in fresh.search("battery", k=7, mode="dense"))
