"""Ingest benchmark: the whole pipeline against a bare `model.encode` of the same chunk texts.

Runs each step in its own process (so peak RSS and model state are per step), on the same
machine in the same run, and prints one table:

    .venv/bin/python evals/bench_ingest.py                 # SciFact, 5,183 abstracts
    .venv/bin/python evals/bench_ingest.py --limit 500     # a quick look

Steps: (1) `Index.ingest` into a fresh directory (model load included), (2) a bare
sentence-transformers `encode` of exactly the texts the pipeline embedded (same model, dtype and
batch size; model load excluded), (3) re-ingest with nothing changed (API call and whole CLI
process), (4) a second bare encode, to show the machine's noise between two identical runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "datasets" / "scifact" / "corpus.jsonl"


def step_ingest(corpus: str, index_dir: str) -> dict:
    from rag import Index

    started = time.perf_counter()
    report = Index(index_dir).ingest([corpus])
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"wall_s": wall, "chunks": report.chunks, "documents": report.added,
            "failed": len(report.failed), "peak_rss_mb": peak}  # fmt: skip


def step_encode(index_dir: str, dtype: str, batch_size: int) -> dict:
    import sqlite3

    from rag.embed import SentenceTransformerEmbedder

    db = sqlite3.connect(Path(index_dir) / "index.sqlite")
    rows = db.execute("SELECT heading, text FROM chunks ORDER BY id").fetchall()
    texts = [f"{h}\n{t}" if h else t for h, t in rows]  # as Chunk.embed_text
    embedder = SentenceTransformerEmbedder(dtype=dtype, batch_size=batch_size)
    model = embedder.model
    tokens = sum(embedder.counter.count_many(texts))
    started = time.perf_counter()
    model.encode(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"wall_s": wall, "chunks": len(texts), "tokens": tokens, "peak_rss_mb": peak,
            "dtype": embedder.dtype}  # fmt: skip


def step_reingest(corpus: str, index_dir: str) -> dict:
    from rag import Index

    started = time.perf_counter()
    report = Index(index_dir).ingest([corpus])
    wall = time.perf_counter() - started
    loaded = "torch" in sys.modules
    return {"wall_s": wall, "unchanged": report.unchanged, "model_loaded": loaded}


def run_step(name: str, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--step", name, *args],
        check=True, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=str(SCIFACT))
    parser.add_argument("--limit", type=int, default=0, help="use only the first N documents")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.step:
        fn = {"ingest": step_ingest, "encode": step_encode, "reingest": step_reingest}[opts.step]
        extra = [opts.dtype, opts.batch_size] if opts.step == "encode" else []
        print(json.dumps(fn(*opts.args, *extra)))
        return

    work = Path(tempfile.mkdtemp(prefix="rag-bench-"))
    corpus = opts.corpus
    if opts.limit:
        corpus = str(work / "corpus.jsonl")
        with open(opts.corpus) as src, open(corpus, "w") as dst:
            for _, line in zip(range(opts.limit), src, strict=False):
                dst.write(line)
    index_dir = str(work / "index")
    common = ["--dtype", opts.dtype, "--batch-size", str(opts.batch_size)]
    ingest = run_step("ingest", corpus, index_dir)
    encode = run_step("encode", index_dir, *common)
    started = time.perf_counter()
    reingest = run_step("reingest", corpus, index_dir)
    reingest_process = time.perf_counter() - started
    cli = subprocess.run(
        [str(Path(sys.executable).parent / "rag"), "ingest", corpus, "--index", index_dir],
        capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    started = time.perf_counter()
    subprocess.run(
        [str(Path(sys.executable).parent / "rag"), "ingest", corpus, "--index", index_dir],
        capture_output=True, text=True, check=cli.returncode == 0,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    reingest_cli = time.perf_counter() - started
    encode2 = run_step("encode", index_dir, *common)

    floor = min(encode["wall_s"], encode2["wall_s"])
    rows = [
        ("documents", f"{ingest['documents']:,}"),
        ("chunks (none over the embedder's limit)", f"{ingest['chunks']:,}"),
        ("word pieces embedded", f"{encode['tokens']:,}"),
        ("embedder dtype", encode["dtype"]),
        ("pipeline wall (Index.ingest, model load included)", f"{ingest['wall_s']:.1f} s"),
        ("pipeline chunks/s", f"{ingest['chunks'] / ingest['wall_s']:.0f}"),
        ("pipeline peak RSS", f"{ingest['peak_rss_mb']:.0f} MB"),
        (
            "bare model.encode, same texts (run 1 / run 2)",
            f"{encode['wall_s']:.1f} s / {encode2['wall_s']:.1f} s",
        ),  # fmt: skip
        ("bare encode peak RSS", f"{encode['peak_rss_mb']:.0f} MB"),
        ("pipeline / bare encode (best of 2)", f"{ingest['wall_s'] / floor:.2f}x"),
        ("re-ingest unchanged: API call", f"{reingest['wall_s']:.2f} s"),
        ("re-ingest unchanged: whole process (python -c)", f"{reingest_process:.2f} s"),
        ("re-ingest unchanged: `rag ingest` CLI process", f"{reingest_cli:.2f} s"),
        ("re-ingest loaded torch/the model", str(reingest["model_loaded"])),
    ]
    width = max(len(r[0]) for r in rows)
    print(
        f"\nrag ingest benchmark — {opts.corpus}" + (f" (first {opts.limit})" if opts.limit else "")
    )
    print(f"{'measure':<{width}} | value")
    print(f"{'-' * width}-|------")
    for name, value in rows:
        print(f"{name:<{width}} | {value}")
    print(f"\ncommand: .venv/bin/python evals/bench_ingest.py {' '.join(sys.argv[1:])}".rstrip())


if __name__ == "__main__":
    main()
