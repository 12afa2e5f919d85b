"""Side by side: ingest and search latency of this checkout against another one, one run.

Each step runs in a fresh process with `PYTHONPATH` set to one checkout, alternating between
the two checkouts rep by rep, so a change in machine load hits both alike. Both ingest the
same first N SciFact abstracts into fresh directories, then time hybrid search over the
first Q SciFact queries (after one warm-up query), and report nDCG@10 on those queries too.

    git worktree add /tmp/baseline <commit>   # the checkout to compare with
    .venv/bin/python evals/bench_compare.py /tmp/baseline --docs 2000 --queries 300 --reps 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "datasets" / "scifact"

DRIVER = r"""
import json, math, sys, time
from rag import Index
corpus, index_dir, queries_file, qrels_file = sys.argv[1:5]
started = time.perf_counter()
index = Index(index_dir)
report = index.ingest([corpus])
ingest_s = time.perf_counter() - started
queries = [json.loads(line) for line in open(queries_file)]
qrels = json.load(open(qrels_file))
index.search("warm up", k=10)
times, ndcg = [], []
for q in queries:
    t = time.perf_counter()
    hits = index.search(q["text"], k=100)
    times.append(time.perf_counter() - t)
    docs = list(dict.fromkeys(h.path.rsplit("#", 1)[1] for h in hits))[:10]
    rel = qrels[q["id"]]
    dcg = sum(rel.get(d, 0) / math.log2(i + 2) for i, d in enumerate(docs))
    ideal = sum(g / math.log2(i + 2) for i, g in enumerate(sorted(rel.values(), reverse=True)[:10]))
    ndcg.append(dcg / ideal if ideal else 0.0)
print(json.dumps({"ingest_s": ingest_s, "chunks": report.chunks, "search_s": times,
                  "ndcg10": sum(ndcg) / len(ndcg)}))
"""


def prepare(work: Path, docs: int, queries: int) -> tuple[Path, Path, Path]:
    """Write the first `docs` abstracts and the first `queries` test queries judged on them."""
    lines = (SCIFACT / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[:docs]
    corpus = work / "corpus.jsonl"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    kept = {json.loads(line)["_id"] for line in lines}
    qrels: dict[str, dict[str, int]] = {}
    for line in (SCIFACT / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        qid, doc, score = line.split("\t")
        if doc in kept and int(score) > 0:
            qrels.setdefault(qid, {})[doc] = int(score)
    chosen = []
    for line in (SCIFACT / "queries.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["_id"] in qrels and len(chosen) < queries:
            chosen.append({"id": row["_id"], "text": row["text"]})
    qfile, rfile = work / "queries.jsonl", work / "qrels.json"
    qfile.write_text("".join(json.dumps(q) + "\n" for q in chosen), encoding="utf-8")
    rfile.write_text(json.dumps({q["id"]: qrels[q["id"]] for q in chosen}), encoding="utf-8")
    return corpus, qfile, rfile


def run(tree: Path, files: tuple[Path, Path, Path], work: Path, home: Path) -> dict:
    """One ingest + search run of the checkout `tree` in its own process."""
    corpus, qfile, rfile = files
    index_dir = Path(tempfile.mkdtemp(prefix="idx-", dir=work))
    env = {**os.environ, "PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1", "RAG_HOME": str(home)}
    out = subprocess.run(
        [sys.executable, "-c", DRIVER, str(corpus), str(index_dir), str(qfile), str(rfile)],
        env=env, cwd=tree, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline", type=Path, help="the other checkout (e.g. a git worktree)")
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args()
    trees = {"baseline": args.baseline.resolve(), "this": ROOT}
    results: dict[str, list[dict]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        files = prepare(work, args.docs, args.queries)
        for rep in range(args.reps):
            for name, tree in trees.items():
                results[name].append(run(tree, files, work, work / f"home-{name}-{rep}"))
                print(f"rep {rep + 1} {name}: ingest {results[name][-1]['ingest_s']:.1f} s",
                      file=sys.stderr, flush=True)  # fmt: skip

    def summary(rows: list[dict]) -> dict[str, float]:
        searches = [s for r in rows for s in r["search_s"]]
        return {
            "ingest_s": min(r["ingest_s"] for r in rows),
            "search_p50_ms": statistics.median(searches) * 1000,
            "search_mean_ms": statistics.fmean(searches) * 1000,
            "chunks": rows[0]["chunks"],
            "ndcg10": rows[0]["ndcg10"],
        }

    base, this = summary(results["baseline"]), summary(results["this"])
    print(f"`{' '.join(sys.argv)}`: {args.docs} SciFact abstracts, {len(results['this'][0]['search_s'])} "
          f"queries, best ingest of {args.reps} reps, search over all reps\n")
    print("| measure | baseline | this checkout | this / baseline |")
    print("| --- | --- | --- | --- |")
    for key in ("ingest_s", "search_p50_ms", "search_mean_ms", "chunks", "ndcg10"):
        ratio = this[key] / base[key] if base[key] else float("nan")
        print(f"| {key} | {base[key]:.4g} | {this[key]:.4g} | {ratio:.3f} |")


if __name__ == "__main__":
    main()
