"""Ray ingest benchmark: a SciFact subset ingested locally, then on Ray with 1 and 2 nodes.

Each run is its own process into a fresh index; the Ray runs start a local cluster of that
many nodes with one CPU each (ray.cluster_utils.Cluster, one embed actor per node). The
local run embeds on `--threads` torch threads (default 1, one CPU like an actor), so the
1-node run shows what Ray itself costs:

    .venv/bin/python evals/bench_ray_ingest.py                # the first 2,000 abstracts
    .venv/bin/python evals/bench_ray_ingest.py --docs 30 --batch 8   # a quick check
    .venv/bin/python evals/bench_ray_ingest.py --files        # one .txt per abstract

Wall time counts from the ingest call to its return: for Ray, connecting, starting the
actors (each loads the model) and the driver's writes; not starting the cluster. The
per-actor rate is chunks over the seconds that actor spent encoding.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "datasets" / "scifact" / "corpus.jsonl"


def subset(corpus: Path, docs: int, work: Path, as_files: bool) -> Path:
    """The first `docs` records: a .jsonl collection, or a folder of one .txt each."""
    lines = []
    with corpus.open() as handle:
        for _, line in zip(range(docs), handle, strict=False):
            lines.append(line)
    if not as_files:
        path = work / "corpus.jsonl"
        path.write_text("".join(lines))
        return path
    folder = work / "corpus"
    folder.mkdir()
    for line in lines:
        record = json.loads(line)
        text = f"{record.get('title', '')}\n\n{record.get('text', '')}".strip()
        (folder / f"{record['_id']}.txt").write_text(text + "\n")
    return folder


def step(corpus: str, index_dir: str, nodes: int, threads: int, batch: int) -> dict:
    """One ingest: locally (nodes 0) or on a fresh cluster of `nodes` one-CPU nodes."""
    from rag import Index
    from rag.distributed import RayOptions, RayPreparer
    from rag.ingest import run_ingest

    index = Index(index_dir)
    store = index.pipeline.store(create=True)
    store.check_embedder(index.embedder.info, spec=index.pipeline.embedder_spec())
    if nodes == 0:
        import torch

        torch.set_num_threads(threads)
        started = time.perf_counter()
        report = run_ingest(store, index.embedder, index.settings, [corpus])
        return {"wall_s": time.perf_counter() - started, "documents": report.added,
                "chunks": report.chunks, "failed": len(report.failed), "actors": {}}  # fmt: skip
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 1, "include_dashboard": False})  # fmt: skip
    try:
        for _ in range(nodes - 1):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        options = RayOptions(address=cluster.address, actors=nodes, batch=batch)
        preparer = RayPreparer(options, index.embedder, index.settings)
        started = time.perf_counter()
        report = run_ingest(store, index.embedder, index.settings, [corpus], None, preparer)
        wall = time.perf_counter() - started
    finally:
        cluster.shutdown()
    return {"wall_s": wall, "documents": report.added, "chunks": report.chunks,
            "failed": len(report.failed), "error": report.error,
            "actors": {name: vars(stats) for name, stats in preparer.actors.items()}}  # fmt: skip


def run_step(corpus: Path, index_dir: Path, nodes: int, threads: int, batch: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--step", str(corpus), str(index_dir), str(nodes),
         str(threads), str(batch)],
        check=True, capture_output=True, text=True, stdin=subprocess.DEVNULL,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=SCIFACT)
    parser.add_argument("--docs", type=int, default=2000, help="the first N abstracts")
    parser.add_argument("--files", action="store_true", help="one .txt per abstract")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, local run")
    parser.add_argument("--batch", type=int, default=64, help="documents per actor batch")
    parser.add_argument("--step", nargs=5, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.step:
        corpus, index_dir, nodes, threads, batch = opts.step
        print(json.dumps(step(corpus, index_dir, int(nodes), int(threads), int(batch))))
        return

    work = Path(tempfile.mkdtemp(prefix="rag-bench-ray-"))
    corpus = subset(opts.corpus, opts.docs, work, opts.files)
    runs = {
        "local": run_step(corpus, work / "local", 0, opts.threads, opts.batch),
        "ray, 1 node": run_step(corpus, work / "ray1", 1, opts.threads, opts.batch),
        "ray, 2 nodes": run_step(corpus, work / "ray2", 2, opts.threads, opts.batch),
    }
    local = runs["local"]
    print(f"\nrag ingest --ray benchmark — {opts.corpus.name}, first {opts.docs} records"
          + (" as .txt files" if opts.files else " (.jsonl)"))  # fmt: skip
    print(
        f"{'run':<13} | docs | chunks | wall s | docs/s | chunks/s | vs local | per-actor "
        "chunks/s (encoding)"
    )
    print(f"{'-' * 13}-|------|--------|--------|--------|----------|----------|----------")
    for name, run in runs.items():
        wall = run["wall_s"]
        rates = ", ".join(f"{a['chunks'] / a['seconds']:.0f}" for a in run["actors"].values()
                          if a["seconds"] > 0) or "-"  # fmt: skip
        print(
            f"{name:<13} | {run['documents']:>4} | {run['chunks']:>6} | {wall:>6.1f} | "
            f"{run['documents'] / wall:>6.1f} | {run['chunks'] / wall:>8.1f} | "
            f"{wall / local['wall_s']:>7.2f}x | {rates}"
        )
        if run.get("error") or run["failed"]:
            print(f"  {name}: {run['failed']} failed, error: {run.get('error')}")
    one = runs["ray, 1 node"]["wall_s"]
    print(
        f"\nRay overhead at 1 node: {one - local['wall_s']:+.1f} s "
        f"({one / local['wall_s']:.2f}x the local wall time; local on {opts.threads} "
        "torch thread(s))"
    )
    two = runs["ray, 2 nodes"]["wall_s"]
    print(f"2 nodes vs 1 node: {one / two:.2f}x")
    print(
        f"\ncommand: .venv/bin/python evals/bench_ray_ingest.py {' '.join(sys.argv[1:])}".rstrip()
    )


if __name__ == "__main__":
    main()
