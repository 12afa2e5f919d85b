"""Search latency benchmark: per-stage p50/p95 on SciFact, and BM25 / dense at 100k chunks.

    .venv/bin/python evals/bench_search.py                  # SciFact (index cached) + 100k
    .venv/bin/python evals/bench_search.py --skip-synthetic

Part 1 runs the 300 SciFact test queries through `Index.search` in each mode and prints p50 and
p95 per stage (query embedding shown separately). Part 2 builds a synthetic 100,000-chunk corpus
(Zipf-distributed words, clustered unit vectors; no encoding, so it takes seconds) and times BM25,
exact FAISS and HNSW search, with HNSW's recall@10 against exact search and the memory each
index adds.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "datasets" / "scifact"


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000 if values else float("nan")


def scifact_latency(limit: int | None) -> list[tuple[str, str, float, float]]:
    from rag.eval.cache import Corpus, open_cached_index
    from rag.eval.datasets import load_beir
    from rag.settings import Settings
    from rag.store import Store
    from rag.vectors import HnswBackend

    data = load_beir(SCIFACT)
    queries = list(data.queries.values())[:limit]
    cached = open_cached_index(Corpus(SCIFACT / "corpus.jsonl"), Settings())
    index = cached.index
    index.search("warm up", k=10)  # load the model, BM25 and FAISS once
    rows = []
    for label, mode, rerank in [("bm25", "bm25", False), ("dense", "dense", False),
                                ("hybrid", "hybrid", False), ("hybrid+rerank", "hybrid", True)]:  # fmt: skip
        stages: dict[str, list[float]] = {}
        totals = []
        for query in queries:
            started = time.perf_counter()
            retrieval = index.retriever.retrieve(query, k=10, mode=mode, rerank=rerank)
            totals.append(time.perf_counter() - started)
            for stage, seconds in retrieval.timings.items():
                stages.setdefault(stage, []).append(seconds)
        for stage, values in stages.items():
            rows.append((label, stage, pct(values, 50), pct(values, 95)))
        without_embed = [t - e for t, e in zip(totals, stages.get("embed_query", [0.0] * len(totals)), strict=True)]  # fmt: skip
        rows.append((label, "total", pct(totals, 50), pct(totals, 95)))
        rows.append(
            (label, "total − query embedding", pct(without_embed, 50), pct(without_embed, 95))
        )
    store = index.retriever.store
    vectors = index.embedder.encode(queries)
    exact = [[i for i, _ in store.vector_index().search(v[None], 10)] for v in vectors]
    for ef in (64, 128):
        hnsw = Store(store.directory, vectors=HnswBackend(ef_search=ef)).vector_index()
        approx = [[i for i, _ in hnsw.search(v[None], 10)] for v in vectors]
        recall = statistics.fmean(
            len(set(a) & set(b)) / 10 for a, b in zip(exact, approx, strict=True)
        )
        rows.append(("hnsw", f"recall@10 vs exact, ef={ef}", recall * 1000, float("nan")))
    return rows


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def synthetic(n: int, queries: int) -> list[tuple[str, str]]:
    import faiss

    from rag.bm25 import BM25Index

    rng = np.random.default_rng(0)
    vocab = np.array([f"w{i}" for i in range(50_000)])
    ranks = np.arange(1, len(vocab) + 1)
    probs = (1 / ranks) / (1 / ranks).sum()
    words = rng.choice(vocab, size=(n, 120), p=probs)
    texts = [" ".join(row) for row in words]
    base = rss_mb()
    started = time.perf_counter()
    bm25 = BM25Index.build(list(range(n)), texts)
    bm25_build = time.perf_counter() - started
    bm25_mem = rss_mb() - base
    qtexts = [" ".join(rng.choice(vocab[:5000], size=6)) for _ in range(queries)]
    lat = []
    for q in qtexts:
        started = time.perf_counter()
        bm25.search(q, 100)
        lat.append(time.perf_counter() - started)
    del texts, words
    centers = rng.normal(size=(200, 384)).astype("float32")
    vectors = centers[rng.integers(0, 200, n)] + rng.normal(scale=0.6, size=(n, 384)).astype(
        "float32"
    )
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    qv = vectors[rng.integers(0, n, queries)] + rng.normal(scale=0.3, size=(queries, 384)).astype(
        "float32"
    )
    qv /= np.linalg.norm(qv, axis=1, keepdims=True)
    base = rss_mb()
    flat = faiss.IndexIDMap2(faiss.IndexFlatIP(384))
    flat.add_with_ids(vectors, np.arange(n, dtype=np.int64))
    flat_mem = rss_mb() - base
    flat_lat, exact = [], []
    for v in qv:
        started = time.perf_counter()
        _, ids = flat.search(v[None], 100)
        flat_lat.append(time.perf_counter() - started)
        exact.append(set(ids[0][:10]))
    base = rss_mb()
    started = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(384, 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 80
    hnsw.add(vectors)
    hnsw_build = time.perf_counter() - started
    hnsw_mem = rss_mb() - base
    rows = [("chunks", f"{n:,}"),
            ("BM25 build", f"{bm25_build:.1f} s, +{bm25_mem:.0f} MB"),
            ("BM25 top-100 p50 / p95", f"{pct(lat, 50):.1f} / {pct(lat, 95):.1f} ms"),
            ("FAISS exact memory", f"+{flat_mem:.0f} MB"),
            ("FAISS exact top-100 p50 / p95", f"{pct(flat_lat, 50):.1f} / {pct(flat_lat, 95):.1f} ms"),
            ("HNSW (M=32) build", f"{hnsw_build:.1f} s, +{hnsw_mem:.0f} MB")]  # fmt: skip
    for ef in (64, 128, 256):
        hnsw.hnsw.efSearch = ef
        hl, recall = [], []
        for v, truth in zip(qv, exact, strict=True):
            started = time.perf_counter()
            _, ids = hnsw.search(v[None], 100)
            hl.append(time.perf_counter() - started)
            recall.append(len(set(ids[0][:10]) & truth) / 10)
        rows.append((f"HNSW efSearch={ef} p50 / p95, recall@10 (isotropic noise: worst case)",
                     f"{pct(hl, 50):.2f} / {pct(hl, 95):.2f} ms, {statistics.fmean(recall):.3f}"))  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="first N SciFact queries")
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--skip-scifact", action="store_true")
    parser.add_argument("--skip-synthetic", action="store_true")
    opts = parser.parse_args()
    if not opts.skip_scifact:
        rows = scifact_latency(opts.limit)
        print("\nSciFact test queries: per-stage latency (ms)")
        print(f"{'config':<14} | {'stage':<24} | {'p50':>7} | {'p95':>7}")
        print(f"{'-' * 14}-|-{'-' * 24}-|-{'-' * 7}-|-{'-' * 7}")
        for label, stage, p50, p95 in rows:
            if label == "hnsw":  # a recall, not a latency
                print(f"{label:<14} | {stage:<24} | {p50 / 1000:7.3f} |")
            else:
                print(f"{label:<14} | {stage:<24} | {p50:7.1f} | {p95:7.1f}")
    if not opts.skip_synthetic:
        rows2 = synthetic(opts.chunks, opts.queries)
        print(f"\nSynthetic corpus: {opts.chunks:,} chunks, {opts.queries} queries")
        width = max(len(r[0]) for r in rows2)
        for name, value in rows2:
            print(f"{name:<{width}} | {value}")
    print(f"\ncommand: .venv/bin/python evals/bench_search.py {' '.join(sys.argv[1:])}".rstrip())


if __name__ == "__main__":
    main()
