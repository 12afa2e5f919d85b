"""BM25 (bm25s through `rag.bm25`) at N synthetic chunks: build time, memory, disk, latency.

    .venv/bin/python evals/bench_bm25_scale.py                   # 1,000,000 chunks
    .venv/bin/python evals/bench_bm25_scale.py --n 5000 --queries 50   # a quick check

Each chunk is `--words` words drawn from a 50,000-word Zipf vocabulary (the recipe of
evals/bench_search.py; synthetic words are neither stopwords nor changed by the stemmer, so
tokenizing costs what it costs on text of that length). Queries are 6 words from the 5,000
most frequent. Prints the build time (tokenize + index), the memory the texts and the index
add (RSS growth, /proc/self/statm: freed memory may be reused, so it can under-count), the
saved folder's size, load time read and memory-mapped, and p50 / p95 of a top-100 search,
unfiltered and restricted to 1 % of the chunks, on the loaded index. The last line scales
the measured per-chunk numbers to 10 M chunks by arithmetic.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rag.bm25 import BM25Index

TEN_M = 10_000_000


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000


def texts(n: int, words: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """`n` chunk texts (made 10,000 at a time) and the vocabulary, most frequent first."""
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(50_000)]
    ranks = np.arange(1, len(vocab) + 1)
    probs = (1 / ranks) / (1 / ranks).sum()
    out: list[str] = []
    for start in range(0, n, 10_000):
        rows = rng.choice(len(vocab), size=(min(10_000, n - start), words), p=probs)
        out.extend(" ".join(vocab[w] for w in row) for row in rows.tolist())
    return out, vocab


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def timed_queries(index: BM25Index, queries: list[str], allowed: set[int] | None) -> list[float]:
    latencies = []
    for query in queries:
        started = time.perf_counter()
        index.search(query, 100, allowed)
        latencies.append(time.perf_counter() - started)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="chunks")
    parser.add_argument("--words", type=int, default=120, help="words a chunk")
    parser.add_argument("--queries", type=int, default=200)
    opts = parser.parse_args()
    n = opts.n
    rows: list[tuple[str, str]] = [("chunks, words a chunk", f"{n:,}, {opts.words}")]
    base = rss_mb()
    corpus, vocab = texts(n, opts.words)
    rows.append(("texts in memory", f"+{rss_mb() - base:.0f} MB RSS"))
    rng = np.random.default_rng(1)
    queries = [" ".join(rng.choice(vocab[:5000], size=6)) for _ in range(opts.queries)]
    allowed = {int(i) for i in rng.choice(n, max(1, n // 100), replace=False)}
    folder = Path(tempfile.mkdtemp(prefix="bench-bm25-")) / "bm25"
    try:
        base = rss_mb()
        started = time.perf_counter()
        built = BM25Index.build(list(range(n)), corpus)
        build_s = time.perf_counter() - started
        rows.append(("build (tokenize + index)", f"{build_s:.1f} s, +{rss_mb() - base:.0f} MB RSS"))
        started = time.perf_counter()
        built.save(folder)
        disk_mb = folder_mb(folder)
        rows.append(("save", f"{time.perf_counter() - started:.1f} s, {disk_mb:.0f} MB on disk"))
        del built, corpus
        for mmap in (False, True):
            base = rss_mb()
            started = time.perf_counter()
            index = BM25Index.load(folder, mmap=mmap)
            how = "memory-mapped" if mmap else "read"
            rows.append((f"load ({how})",
                         f"{time.perf_counter() - started:.2f} s, +{rss_mb() - base:.0f} MB RSS"))  # fmt: skip
            for label, only in (("", None), (", 1 % allowed", allowed)):
                lat = timed_queries(index, queries, only)
                rows.append((f"top-100 p50 / p95 ({how}{label})",
                             f"{pct(lat, 50):.1f} / {pct(lat, 95):.1f} ms"))  # fmt: skip
            del index
    finally:
        shutil.rmtree(folder.parent, ignore_errors=True)

    width = max(len(name) for name, _ in rows)
    print(f"\nBM25 at {n:,} synthetic chunks, {opts.queries} queries")
    for name, value in rows:
        print(f"{name:<{width}} | {value}")
    scale = TEN_M / n
    print(
        f"\nAt 10 M chunks (arithmetic, not measured): the saved index scales with the postings, "
        f"about {disk_mb * scale / 1024:.1f} GB ({disk_mb * 2**20 / n:.0f} bytes a chunk here); "
        f"building it needs every text in memory at once (rag's store reads them all), and each "
        f"query scores every chunk into a {TEN_M * 4 / 2**20:.0f} MB float32 array before the "
        f"top 100 are taken, and reads postings that grow with the corpus too, so latency "
        f"grows about linearly with chunks (compare two --n values for the slope)."
    )
    print(
        f"\ncommand: .venv/bin/python evals/bench_bm25_scale.py {' '.join(sys.argv[1:])}".rstrip()
    )


if __name__ == "__main__":
    main()
