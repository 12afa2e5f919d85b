"""Benchmark BM25 query latency: rag.bm25 (bm25s) against rank-bm25 on SciFact.

Both sides see the same tokens (rag's tokenizer: English stopwords + Snowball stemming) and
return a sorted top 10; timings include tokenizing the query.

Run: .venv/bin/python evals/bench_bm25.py [--dataset DIR] [--queries 300] [--rank-bm25-queries 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag.bm25 import BM25Index, BM25Settings  # noqa: E402

DEFAULT_DATASET = Path("/work/shared/datasets/scifact")


def read_jsonl(path: Path) -> list[dict]:
    """Read one JSON object per line."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def time_queries(search: Callable[[str], object], queries: list[str]) -> list[float]:
    """Return the latency of each query in milliseconds."""
    latencies = []
    for query in queries:
        start = time.perf_counter()
        search(query)
        latencies.append((time.perf_counter() - start) * 1000)
    return latencies


def row(name: str, build_s: float, latencies: list[float]) -> str:
    """Format one result row of the table."""
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    mean = statistics.fmean(latencies)
    return (
        f"| {name} | {build_s:.2f} | {len(latencies)} | {statistics.median(latencies):.3f} "
        f"| {p95:.3f} | {mean:.3f} | {1000 / mean:,.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--rank-bm25-queries", type=int, default=30)
    args = parser.parse_args()

    try:
        import rank_bm25
    except ImportError:
        sys.exit("rank-bm25 is missing. Run 'pip install rank-bm25==0.2.2' (a dev dependency).")

    docs = read_jsonl(args.dataset / "corpus.jsonl")
    queries = [q["text"] for q in read_jsonl(args.dataset / "queries.jsonl")][: args.queries]
    ids = [int(d["_id"]) for d in docs]
    texts = [f"{d['title']} {d['text']}" for d in docs]
    settings = BM25Settings()
    tokenize = settings.tokenizer()

    start = time.perf_counter()
    index = BM25Index.build(ids, texts, settings)
    build_ours = time.perf_counter() - start
    index.search(queries[0], k=10)  # warm up
    ours = time_queries(lambda q: index.search(q, k=10), queries)

    start = time.perf_counter()
    reference = rank_bm25.BM25Okapi(tokenize.many(texts), k1=settings.k1, b=settings.b)
    build_ref = time.perf_counter() - start

    def search_ref(query: str) -> list[int]:
        scores = reference.get_scores(tokenize(query))
        return np.argsort(-scores, kind="stable")[:10].tolist()

    theirs = time_queries(search_ref, queries[: args.rank_bm25_queries])

    print(f"SciFact corpus: {len(docs):,} docs; top 10 per query; 1 thread")
    print()
    print("| library | build s | queries | p50 ms | p95 ms | mean ms | queries/s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(row(f"rag.bm25 (bm25s {settings.method})", build_ours, ours))
    print(row("rank-bm25 BM25Okapi", build_ref, theirs))
    speedup = statistics.fmean(theirs) / statistics.fmean(ours)
    print()
    print(f"mean latency speed-up: {speedup:,.0f}x")
    print(
        f"command: .venv/bin/python evals/bench_bm25.py --dataset {args.dataset} "
        f"--queries {args.queries} --rank-bm25-queries {args.rank_bm25_queries}"
    )


if __name__ == "__main__":
    main()
