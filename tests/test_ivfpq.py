"""The IVF-PQ dense index: exact until trained, near-exact after re-scoring, memory-mapped from
disk yet still writable, filtered, re-laid out when outgrown, and chosen by settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag.chunking import Chunk
from rag.embed.base import EmbedderInfo
from rag.errors import ConfigError
from rag.pipeline import build_pipeline
from rag.settings import RetrievalSettings, Settings
from rag.store import DocumentRecord, Store
from rag.vectors import AUTO_AT, AutoBackend, IvfPqBackend, TrainedIndex, vector_backend
from rag.vectors.ivfpq import auto_m, auto_nlist, train_size
from rag.vectors.rescore import exact_top


@pytest.fixture(autouse=True, scope="module")
def one_faiss_thread():
    """Train on one thread: on a busy shared machine a second one mostly waits for a core."""
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(threads)


def clustered(n: int, dim: int, seed: int = 0, clusters: int = 50) -> np.ndarray:
    """Unit vectors around `clusters` random centres, like embeddings of many topics."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    noise = rng.normal(scale=0.5, size=(n, dim)).astype(np.float32)
    vectors = centres[rng.integers(0, clusters, n)] + noise
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def queries_near(vectors: np.ndarray, count: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picked = vectors[rng.integers(0, len(vectors), count)]
    q = picked + rng.normal(scale=0.1, size=picked.shape).astype(np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def exact_ids(vectors: np.ndarray, ids: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    return ids[np.argsort(-(vectors @ query), kind="stable")[:k]].tolist()


def test_automatic_sizes_follow_the_rules() -> None:
    assert [auto_nlist(n) for n in (3_000, 50_000, 1_000_000, 10_000_000)] == [
        64, 1024, 4096, 16384,
    ]  # fmt: skip
    assert auto_nlist(20_000) == 512 and auto_nlist(5_000) == 128  # at most n / 39
    assert auto_nlist(1_000) == 64  # at least 64
    assert (auto_m(384), auto_m(768), auto_m(1024), auto_m(64), auto_m(32)) == (96, 96, 64, 16, 8)
    assert train_size(1024, 50_000) == 39 * 1024
    assert train_size(64, 3_000) == 3_000 and train_size(16384, 10**7) == 100_000


# --- the index on its own -------------------------------------------------------------------

N, DIM = 20_000, 64


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    vectors = clustered(N, DIM)
    return np.arange(N, dtype=np.int64) * 3 + 7, vectors  # ids unlike row numbers


@pytest.fixture(scope="module")
def saved(data, tmp_path_factory) -> Path:
    """A trained 20,000-vector index, saved once; each test mutates its own mapped copy."""
    ids, vectors = data
    backend = IvfPqBackend(m=8, train_at=10_000)
    index = backend.create(DIM)
    rng = np.random.default_rng(0)
    index.train(N, lambda count: vectors[rng.choice(N, count, replace=False)])
    assert index.trained and index.nlist == auto_nlist(N) == 512
    for start in range(0, N, 4096):
        index.add(ids[start : start + 4096], vectors[start : start + 4096])
    path = tmp_path_factory.mktemp("ivf") / backend.file_name(1)
    index.save(path)
    return path


def load(path: Path):
    index = IvfPqBackend(m=8, train_at=10_000).load(path)
    assert index is not None and index.trained
    return index


def test_recall_at_10_against_exact_search_after_rescoring(data, saved) -> None:
    ids, vectors = data
    index = load(saved)
    assert isinstance(index, TrainedIndex) and index.rescore == 100
    rows = {int(i): r for r, i in enumerate(ids)}
    raw, rescored = [], []
    for query in queries_near(vectors, 100):
        want = set(exact_ids(vectors, ids, query, 10))
        found = index.search(query[None], 100)
        raw.append(len(want & {i for i, _ in found[:10]}) / 10)
        candidates = np.asarray([i for i, _ in found], dtype=np.int64)
        best = exact_top(query, candidates, vectors[[rows[int(i)] for i in candidates]], 10)
        rescored.append(len(want & {i for i, _ in best}) / 10)
        assert best[0][1] == pytest.approx(float(vectors[rows[best[0][0]]] @ query), abs=1e-5)
    assert np.mean(rescored) >= 0.9, (np.mean(raw), np.mean(rescored))
    print(f"recall@10 raw {np.mean(raw):.3f}, re-scored {np.mean(rescored):.3f}")
    assert np.mean(rescored) >= np.mean(raw)


def test_a_mapped_index_searches_like_the_saved_one_and_can_still_change(data, saved) -> None:
    ids, vectors = data
    index = load(saved)
    assert index._mapped, "opened memory-mapped"
    assert sorted(index.ids().tolist()) == ids.tolist() and len(index) == N
    query = vectors[:1]
    first = [i for i, _ in index.search(query, 10)]
    assert ids[0] in first  # raw PQ scores: near the top, not always first
    index.remove(np.asarray(first[:3], dtype=np.int64))
    assert not index._mapped and len(index) == N - 3
    assert not set(first[:3]) & {i for i, _ in index.search(query, 10)}
    index.add(np.asarray([1, 2], dtype=np.int64), vectors[:2])
    assert 1 in {i for i, _ in index.search(query, 10)} and len(index) == N - 1
    assert len(load(saved)) == N, "the file itself is untouched"
    index.save(saved.with_name("again.faiss"))
    assert len(load(saved.with_name("again.faiss"))) == N - 1


def test_filters_keep_to_the_allowed_ids_even_when_few(data, saved) -> None:
    ids, vectors = data
    index = load(saved)
    query = vectors[5:6]
    rng = np.random.default_rng(3)
    for size in (40, 2_000):
        allowed = {int(i) for i in rng.choice(ids, size, replace=False)}
        found = index.search(query, 10, allowed)
        assert len(found) == 10 and {i for i, _ in found} <= allowed
    assert index.search(query, 10, set()) == []


def test_it_asks_to_be_rebuilt_once_it_has_outgrown_its_lists(data, saved) -> None:
    ids, vectors = data
    index = load(saved)
    assert not index.wants_rebuild
    index.add(ids + 1, vectors)  # 40,000: the rule now wants 1,024 lists, twice 512
    assert auto_nlist(len(index)) == 1024 and index.wants_rebuild
    fixed = IvfPqBackend(nprobe=8, nlist=512, m=8, train_at=10_000).load(saved)
    assert fixed is not None
    fixed.add(ids + 1, vectors)
    assert not fixed.wants_rebuild, "a fixed nlist is never re-laid out"


def test_exact_until_train_at_then_it_trains_itself() -> None:
    vectors = clustered(4_000, 32, seed=5)
    ids = np.arange(4_000, dtype=np.int64)
    index = IvfPqBackend(train_at=3_000).create(32)
    index.add(ids[:2_500], vectors[:2_500])
    assert not index.trained and index.rescore == 0
    query = vectors[10]
    assert [i for i, _ in index.search(query[None], 5)] == exact_ids(
        vectors[:2_500], ids[:2_500], query, 5
    )
    index.add(ids[2_500:], vectors[2_500:])
    assert index.trained and index.nlist == 64 and len(index) == 4_000
    assert sorted(index.ids().tolist()) == ids.tolist()


def test_auto_is_exact_below_its_threshold_and_ivfpq_above() -> None:
    assert vector_backend("auto").kind == "auto" and AUTO_AT == 100_000
    assert vector_backend("auto").trains_at == AUTO_AT  # type: ignore[attr-defined]
    assert vector_backend("ivfpq", ivf_nprobe=8).nprobe == 8  # type: ignore[attr-defined]
    auto = AutoBackend(at=3_000)
    small = auto.create(32)
    small.train(2_999, lambda count: clustered(count, 32))
    assert not small.trained, "below the threshold: exact"
    big = auto.create(32)
    big.train(3_000, lambda count: clustered(count, 32))
    assert big.trained


# --- through the store ----------------------------------------------------------------------


def write(store: Store, first: int, vectors: np.ndarray) -> None:
    """One document per 100 vectors, keys doc-<first>, ..."""
    documents = []
    for start in range(0, len(vectors), 100):
        count = min(100, len(vectors) - start)
        chunks = [Chunk(j, f"chunk {j}", 0, 1, None, "", 2) for j in range(count)]
        key = f"doc-{first + start // 100}"
        documents.append((DocumentRecord(key, key, "md", key, "c", 1), chunks))
    store.write_documents(documents, vectors)


def test_store_trains_rescores_exactly_maps_reopens_and_relays_out(tmp_path) -> None:
    backend = IvfPqBackend(train_at=3_000)
    store = Store(tmp_path, create=True, vectors=backend)
    store.check_embedder(EmbedderInfo("synthetic", 32, 256, "x"))
    vectors = clustered(6_000, 32, seed=7)
    write(store, 0, vectors[:2_000])
    store.save_vectors()
    assert not store.vector_index().trained  # type: ignore[attr-defined]
    write(store, 20, vectors[2_000:4_000])  # crosses train_at: trained on its own vectors
    index = store.vector_index()
    assert isinstance(index, TrainedIndex) and index.nlist == 64  # type: ignore[attr-defined]
    stored = store.vectors_by_id(range(1, 4_001))
    assert np.array_equal(stored, vectors[:4_000]) and np.isnan(store.vectors_by_id([0])).all()
    ids = np.arange(1, 4_001)
    for query in queries_near(vectors[:4_000], 20):
        hits = store.dense_search(query[None], 10)
        assert [i for i, _ in hits] == exact_ids(stored, ids, query, 10)
        assert hits[0][1] == pytest.approx(float(stored[hits[0][0] - 1] @ query), abs=1e-5)
    older = tmp_path / f"vectors-{store.generation - 1:010d}.faiss"  # a flat file before
    current = tmp_path / f"hnsw-{store.generation:010d}-m32.faiss"  # still valid: kept
    older.write_bytes(b"x")
    current.write_bytes(b"x")
    store.save_vectors()
    files = sorted(p.name for p in tmp_path.glob("ivfpq-*"))
    assert files == [backend.file_name(store.generation)], "older generations removed"
    assert not older.exists() and current.exists()
    current.unlink()

    reopened = Store(tmp_path, vectors=IvfPqBackend(train_at=3_000))
    assert reopened.vector_index()._mapped  # type: ignore[attr-defined]
    query = vectors[150]
    top = reopened.dense_search(query[None], 5)
    assert top[0][0] == 151
    reopened.remove_documents(["doc-1"])  # chunk ids 101..200
    assert all(not 101 <= i <= 200 for i, _ in reopened.dense_search(query[None], 20))
    assert reopened.consistency_problems() == []
    only = set(range(300, 320))  # fewer than the re-scored candidates: scored exactly
    assert [i for i, _ in reopened.dense_search(query[None], 5, only)] == exact_ids(
        reopened.vectors_by_id(sorted(only)), np.asarray(sorted(only)), query, 5
    )

    write(reopened, 40, vectors[4_000:])  # 5,900 chunks: the rule wants 128 lists now
    assert reopened.vector_index().wants_rebuild  # type: ignore[attr-defined]
    reopened.save_vectors()
    relaid = reopened.vector_index()
    assert relaid.nlist == 128 and not relaid.wants_rebuild  # type: ignore[attr-defined]
    assert len(relaid) == reopened.chunk_count() == 5_900
    assert [p.name for p in tmp_path.glob("ivfpq-*")] == [backend.file_name(reopened.generation)]
    assert Store(tmp_path, vectors=backend).vector_index().nlist == 128  # type: ignore[attr-defined]


# --- settings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"ivf_nprobe": 0}, "retrieval.ivf_nprobe=0 must be at least 1"),
        ({"ivf_nlist": 8}, "retrieval.ivf_nlist=8 must be 0 (automatic) or at least 16"),
        ({"ivf_nlist": -1}, "retrieval.ivf_nlist=-1 must be 0 (automatic) or at least 16"),
        ({"ivf_nlist": 32, "ivf_nprobe": 64},
         "retrieval.ivf_nprobe=64 must not exceed retrieval.ivf_nlist=32"),
        ({"dense_index": "ivf"},
         "retrieval.dense_index='ivf' must be one of flat, hnsw, ivfpq, auto"),
    ],
)  # fmt: skip
def test_settings_refuse_bad_ivf_values(values: dict, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        RetrievalSettings(**values)
    assert str(exc.value).startswith(message)


def test_settings_pick_the_backend(tmp_path) -> None:
    settings = Settings().replace(**{"retrieval.dense_index": "ivfpq", "retrieval.ivf_nprobe": 16,
                                     "retrieval.ivf_nlist": 256})  # fmt: skip
    backend = build_pipeline(tmp_path, settings).vectors
    assert isinstance(backend, IvfPqBackend) and backend.kind == "ivfpq"
    assert (backend.nprobe, backend.nlist) == (16, 256)
    auto = build_pipeline(tmp_path, Settings().replace(**{"retrieval.dense_index": "auto"}))
    assert auto.vectors.kind == "auto"
    assert Settings().retrieval.dense_index == "flat"


def test_an_index_searches_end_to_end_with_dense_index_ivfpq(tmp_path, embedder) -> None:
    from rag import Index

    docs = tmp_path / "docs"
    docs.mkdir()
    for i, topic in enumerate(["battery", "radio", "rain gauge", "warranty"]):
        (docs / f"{i}.md").write_text(f"# {topic}\n\nThe {topic} of the K9 is covered here.\n")
    settings = Settings().replace(**{"retrieval.dense_index": "ivfpq"})
    index = Index(tmp_path / "idx", settings=settings, embedder=embedder)
    index.ingest([docs])
    hits = index.search("how long does the battery last", k=2, mode="dense")
    assert hits[0].path.endswith("0.md")
    assert list((tmp_path / "idx").glob("ivfpq-*.faiss")), "the backend's own file is saved"
