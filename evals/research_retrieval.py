"""Retrieval research: chunk sizes × fusion × embedder-only reranking on three datasets.

Builds one index per (dataset, chunk size, overlap) once, under --work, with the real ingest
pipeline, then scores every fusion / rerank variant on it offline from the stored vectors and
BM25 index (no re-encoding of the corpus), and prints one table of nDCG@10 / Recall@100:

    HF_HUB_OFFLINE=1 .venv/bin/python evals/research_retrieval.py \\
        --datasets scifact pubmedqa-pqal-dev squad2-dev-a --chunks 254:0.15 192:0.15 128:0.15

Runs are chunk rankings cut at the top 100 chunks and turned into document rankings by each
document's best chunk (the protocol used for the peers in shared/REFERENCE.md). Every variant
sees the same candidate pools as `Retriever` (top 100 of BM25 and top 100 of dense).
`--check` also runs the real `Retriever` with its default settings on each index, to confirm
the offline figures of the default match the shipped code path.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"
POOL = 100  # candidates per retriever, as in Retriever(candidates=100)
CUT = 100  # chunks kept per query before aggregating to documents

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@dataclass
class Built:
    """One index loaded into memory: chunk arrays in chunk-id order."""

    ids: np.ndarray
    doc: np.ndarray  # document number per chunk
    doc_names: list[str]
    vectors: np.ndarray
    bm25_csc: object  # scipy sparse (chunks × terms) of precomputed BM25 term scores
    vocab: dict[str, int]
    tokenize: Callable[[str], list[str]]
    tokens: list[list[str]]
    headings: list[str]
    texts: list[str]
    build: dict


def build_index(dataset: str, chunk: str, work: Path) -> Path:
    """Ingest the dataset's corpus with one chunk setting, once; return the index folder."""
    from rag import Index
    from rag.settings import Settings

    size, overlap = chunk.split(":")
    out = work / f"{dataset}-{size}-{overlap}"
    if (out / "build.json").exists():
        return out
    settings = Settings().replace(**{"chunk.max_tokens": int(size), "chunk.overlap": float(overlap)})
    index = Index(out, settings=settings)
    _ = index.embedder.model  # load the model before the clock starts
    started = time.perf_counter()
    index.ingest([DATASETS / dataset / "corpus.jsonl"])
    wall = time.perf_counter() - started
    db = sqlite3.connect(out / "index.sqlite")
    chunks, pieces = db.execute("SELECT COUNT(*), SUM(n_tokens) FROM chunks").fetchone()
    info = {"wall_s": round(wall, 1), "chunks": chunks, "word_pieces": pieces}
    (out / "build.json").write_text(json.dumps(info))
    return out


def load_built(folder: Path) -> Built:
    from rag.chunking import with_heading
    from rag.store import Store

    store = Store(folder)
    rows = store.db.execute(
        "SELECT c.id, d.key, c.heading, c.text, c.vector FROM chunks c "
        "JOIN documents d ON d.id = c.doc_id ORDER BY c.id"
    ).fetchall()
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    names: dict[str, int] = {}
    doc = np.array([names.setdefault(r[1].rsplit("#", 1)[1], len(names)) for r in rows])
    vectors = np.frombuffer(b"".join(r[4] for r in rows), dtype=np.float32).reshape(len(rows), -1)
    bm25 = store.keyword_index()
    assert bm25.ids == ids.tolist()
    import scipy.sparse as sp

    model = bm25.bm25s_model
    assert model is not None, f"{folder}: the BM25 index is empty"
    sc = model.scores
    # bm25s stores a CSC matrix (terms as columns): column t lists the chunks holding term t.
    csc = sp.csc_matrix(
        (sc["data"], sc["indices"], sc["indptr"]), shape=(sc["num_docs"], len(sc["indptr"]) - 1)
    )
    tokenize = bm25.settings.tokenizer()
    texts = [with_heading(h, t) for _, _, h, t, _ in rows]
    return Built(
        ids=ids,
        doc=doc,
        doc_names=list(names),
        vectors=vectors,
        bm25_csc=csc,
        vocab=model.vocab_dict,
        tokenize=tokenize,
        tokens=[tokenize(t) for t in texts],
        headings=[r[2] for r in rows],
        texts=[r[3] for r in rows],
        build=json.loads((folder / "build.json").read_text()),
    )


# --- fusion primitives over full score arrays -------------------------------------------------


def top(scores: np.ndarray, n: int, positive: bool = False) -> np.ndarray:
    """Positions of the n best scores, best first."""
    n = min(n, len(scores))
    part = np.argpartition(-scores, n - 1)[:n]
    order = part[np.argsort(-scores[part], kind="stable")]
    return order[scores[order] > 0] if positive else order


def rrf(pools: list[np.ndarray], k: float, weights: list[float]) -> dict[int, float]:
    out: dict[int, float] = {}
    for pool, w in zip(pools, weights, strict=True):
        for rank, p in enumerate(pool.tolist(), start=1):
            out[p] = out.get(p, 0.0) + w / (k + rank)
    return out


def norm_stats(scores: np.ndarray, pool: np.ndarray, how: str) -> tuple[float, float]:
    vals = scores[pool] if len(pool) else np.zeros(1)
    if how == "minmax":
        return float(vals.min()), float(max(vals.max() - vals.min(), 1e-9))
    return float(vals.mean()), float(max(vals.std(), 1e-9))


def convex(
    bm25: np.ndarray, dense: np.ndarray, pb: np.ndarray, pd: np.ndarray, how: str, w: float,
    fill: str = "exact",
) -> dict[int, float]:  # fmt: skip
    """w·norm(dense) + (1-w)·norm(bm25) over the union of both pools.

    fill="exact" uses each candidate's real score from the other retriever; fill="zero" gives a
    candidate missing from a pool the normalised value 0, fill="min" the pool's lowest one.
    """
    lb, sb = norm_stats(bm25, pb, how)
    ld, sd = norm_stats(dense, pd, how)
    union = np.union1d(pb, pd)
    nb = (bm25[union] - lb) / sb
    nd = (dense[union] - ld) / sd
    if fill in ("zero", "min"):
        missing_b = 0.0 if fill == "zero" else float(nb[np.isin(union, pb)].min(initial=0.0))
        missing_d = 0.0 if fill == "zero" else float(nd[np.isin(union, pd)].min(initial=0.0))
        nb = np.where(np.isin(union, pb), nb, missing_b)
        nd = np.where(np.isin(union, pd), nd, missing_d)
    return dict(zip(union.tolist(), (w * nd + (1 - w) * nb).tolist(), strict=True))


def to_docs(built: Built, fused: dict[int, float]) -> dict[str, float]:
    """Keep the top CUT chunks; each document scores as its best chunk."""
    items = sorted(fused.items(), key=lambda kv: -kv[1])[:CUT]
    out: dict[str, float] = {}
    for pos, score in items:
        name = built.doc_names[built.doc[pos]]
        if name not in out or score > out[name]:
            out[name] = score
    return out


def doc_max(built: Built, scores: np.ndarray) -> np.ndarray:
    out = np.full(len(built.doc_names), -np.inf, dtype=np.float64)
    np.maximum.at(out, built.doc, scores)
    return out


def rm3_scores(
    built: Built, query: str, feedback: np.ndarray, terms: int, lam: float
) -> np.ndarray:
    """BM25 of an RM3-style expanded query: original terms mixed with feedback terms."""
    q = [built.vocab[t] for t in built.tokenize(query) if t in built.vocab]
    weights: Counter[int] = Counter()
    for t in q:
        weights[t] += lam / max(len(q), 1)
    rel: Counter[int] = Counter()
    for p in feedback.tolist():
        toks = [built.vocab[t] for t in built.tokens[p] if t in built.vocab]
        for t, c in Counter(toks).items():
            rel[t] += c / max(len(toks), 1) / len(feedback)
    best = rel.most_common(terms)
    total = sum(v for _, v in best) or 1.0
    for t, v in best:
        weights[t] += (1 - lam) * v / total
    if not weights:
        return np.zeros(len(built.ids))
    cols = np.array(list(weights))
    w = np.array([weights[c] for c in cols])
    return np.asarray(built.bm25_csc[:, cols] @ w).ravel() * max(len(q), 1)


# --- the variants -----------------------------------------------------------------------------


def variants(built: Built, query: str, qv: np.ndarray) -> dict[str, dict[str, float]]:
    """Every variant's document run for one query."""
    q = [built.vocab[t] for t in built.tokenize(query) if t in built.vocab]
    bm25 = np.asarray(built.bm25_csc[:, q].sum(axis=1)).ravel() if q else np.zeros(len(built.ids))
    dense = built.vectors @ qv
    pb, pd = top(bm25, POOL, positive=True), top(dense, POOL)
    runs: dict[str, dict[str, float]] = {}
    add = lambda name, fused: runs.__setitem__(name, to_docs(built, fused))  # noqa: E731
    add("bm25", {p: float(bm25[p]) for p in pb})
    add("dense", {p: float(dense[p]) for p in pd})
    base = rrf([pb, pd], 60, [1, 1])
    add("rrf k=60", base)
    add("rrf k=10", rrf([pb, pd], 10, [1, 1]))
    for wb in (0.4, 0.6):
        add(f"wrrf k=60 bm25={wb}", rrf([pb, pd], 60, [wb, 1 - wb]))
    for how in ("minmax", "zscore"):
        for w in (0.3, 0.4, 0.5, 0.6, 0.7):
            add(f"{how} dense={w}", convex(bm25, dense, pb, pd, how, w))
    add("minmax dense=0.5 fill=0", convex(bm25, dense, pb, pd, "minmax", 0.5, fill="zero"))
    add("zscore dense=0.5 fill=min", convex(bm25, dense, pb, pd, "zscore", 0.5, fill="min"))
    # document-level fusion: each retriever's scores become document scores (max) first
    db, dd = doc_max(built, bm25), doc_max(built, dense)
    dpb, dpd = top(db, POOL, positive=True), top(dd, POOL)
    name = built.doc_names
    runs["doc-level rrf k=60"] = {name[d]: s for d, s in rrf([dpb, dpd], 60, [1, 1]).items()}
    runs["doc-level zscore dense=0.5"] = {
        name[d]: s for d, s in convex(db, dd, dpb, dpd, "zscore", 0.5).items()
    }
    # dense pseudo-relevance feedback (Rocchio) from the top fused chunks, then re-fuse
    fused_order = np.array([p for p, _ in sorted(base.items(), key=lambda kv: -kv[1])])
    for m, alpha in ((3, 0.5), (5, 0.5), (5, 1.0), (10, 1.0)):
        qv2 = qv + alpha * built.vectors[fused_order[:m]].mean(axis=0)
        qv2 /= np.linalg.norm(qv2)
        dense2 = built.vectors @ qv2
        pd2 = top(dense2, POOL)
        add(f"prf m={m} a={alpha} rrf", rrf([pb, pd2], 60, [1, 1]))
        add(f"prf m={m} a={alpha} zscore", convex(bm25, dense2, pb, pd2, "zscore", 0.5))
        if (m, alpha) == (5, 0.5):
            add("prf-dense m=5 a=0.5 alone", {p: float(dense2[p]) for p in pd2})
    # BM25 RM3-style expansion from the top fused chunks, then re-fuse
    for m, terms in ((5, 10), (10, 20)):
        bm2 = rm3_scores(built, query, fused_order[:m], terms, 0.5)
        pb2 = top(bm2, POOL, positive=True)
        add(f"rm3 m={m} t={terms} rrf", rrf([pb2, pd], 60, [1, 1]))
        add(f"rm3 m={m} t={terms} zscore", convex(bm2, dense, pb2, pd, "zscore", 0.5))
    # both feedback signals together
    qv2 = qv + 0.5 * built.vectors[fused_order[:5]].mean(axis=0)
    qv2 /= np.linalg.norm(qv2)
    dense2 = built.vectors @ qv2
    bm2 = rm3_scores(built, query, fused_order[:5], 10, 0.5)
    pb2, pd2 = top(bm2, POOL, positive=True), top(dense2, POOL)
    add("prf+rm3 m=5 rrf", rrf([pb2, pd2], 60, [1, 1]))
    add("prf+rm3 m=5 zscore", convex(bm2, dense2, pb2, pd2, "zscore", 0.5))
    return runs


def zscore(values: np.ndarray) -> np.ndarray:
    return (values - values.mean()) / max(float(values.std()), 1e-9)


def maxsim_runs(
    built: Built, queries: list[str], qvs: np.ndarray, embedder: object, top_n: int = 30
) -> dict[str, list[dict[str, float]]]:
    """Rerank the top `top_n` z-score fused chunks with their best sentence's similarity."""
    from rag.chunking import with_heading
    from rag.text.sentences import sentences_or_whole

    pools = []
    for query, qv in zip(queries, qvs, strict=True):
        q = [built.vocab[t] for t in built.tokenize(query) if t in built.vocab]
        bm25 = np.asarray(built.bm25_csc[:, q].sum(axis=1)).ravel()
        dense = built.vectors @ qv
        fused = convex(bm25, dense, top(bm25, POOL, True), top(dense, POOL), "zscore", 0.5)
        pools.append(sorted(fused.items(), key=lambda kv: -kv[1]))
    needed = sorted({p for pool in pools for p, _ in pool[:top_n]})
    sentences: dict[int, list[str]] = {}
    for p in needed:
        text, head = built.texts[p], built.headings[p]
        sentences[p] = [with_heading(head, text[a:b]) for a, b in sentences_or_whole(text)]
    flat = [s for p in needed for s in sentences[p]]
    started = time.perf_counter()
    vecs = embedder.encode(flat)  # type: ignore[attr-defined]
    print(f"maxsim: {len(flat)} sentences of {len(needed)} chunks in "
          f"{time.perf_counter() - started:.0f} s", file=sys.stderr)  # fmt: skip
    where, offset = {}, 0
    for p in needed:
        where[p] = (offset, offset + len(sentences[p]))
        offset += len(sentences[p])
    runs: dict[str, list[dict[str, float]]] = {}
    for pool, qv in zip(pools, qvs, strict=True):
        head, tail = pool[:top_n], pool[top_n:]
        fused = np.array([s for _, s in head])
        best = np.array([float((vecs[slice(*where[p])] @ qv).max()) for p, _ in head])
        for beta in (0.2, 0.35, 0.5, 1.0):
            mixed = (1 - beta) * zscore(fused) + beta * zscore(best)
            floor = mixed.min() - 1.0  # keep the reranked head above the tail
            order = {p: float(m) for (p, _), m in zip(head, mixed, strict=True)}
            order.update({p: floor - i * 1e-6 for i, (p, _) in enumerate(tail)})
            runs.setdefault(f"zscore + maxsent beta={beta}", []).append(to_docs(built, order))
    return runs


def evaluate_dataset(
    dataset: str, folder: Path, embedder: object, maxsim: int = 0
) -> dict[str, dict]:
    from rag.eval import evaluate, evaluate_per_query, load_beir

    data = load_beir(DATASETS / dataset)
    built = load_built(folder)
    qids = list(data.queries)
    qvs = embedder.encode([data.queries[q] for q in qids])  # type: ignore[attr-defined]
    runs: dict[str, dict[str, dict[str, float]]] = {}
    for qid, qv in zip(qids, qvs, strict=True):
        for name, run in variants(built, data.queries[qid], qv).items():
            runs.setdefault(name, {})[qid] = run
    if maxsim:
        extra = maxsim_runs(built, [data.queries[q] for q in qids], qvs, embedder, maxsim)
        for name, per_query in extra.items():
            runs[name] = dict(zip(qids, per_query, strict=True))
    base = evaluate_per_query(runs["rrf k=60"], data.qrels, metrics=("ndcg@10",))
    results = {}
    for name, run in runs.items():
        scores = evaluate(run, data.qrels, metrics=("ndcg@10", "recall@100"))
        per = evaluate_per_query(run, data.qrels, metrics=("ndcg@10",))
        diffs = np.array([per[q]["ndcg@10"] - base[q]["ndcg@10"] for q in base])
        se = float(diffs.std(ddof=1) / math.sqrt(len(diffs))) if len(diffs) > 1 else 0.0
        results[name] = {**scores, "delta": float(diffs.mean()), "se": se}
    return {"build": built.build, "results": results}


def check_retriever(folder: Path, dataset: str, rerank: bool) -> dict[str, float]:
    """nDCG@10 / Recall@100 of the shipped Retriever defaults (hybrid, k=100) on an index."""
    from rag.embed import SentenceTransformerEmbedder
    from rag.eval import evaluate, load_beir
    from rag.rerank import SentenceReranker
    from rag.retrieve import Retriever
    from rag.store import Store

    data = load_beir(DATASETS / dataset)
    embedder = SentenceTransformerEmbedder()
    reranker = SentenceReranker(embedder) if rerank else None
    retriever = Retriever(Store(folder), embedder, reranker=reranker)
    run: dict[str, dict[str, float]] = {}
    for qid, text in data.queries.items():
        docs: dict[str, float] = {}
        for hit in retriever.search(text, k=CUT):
            name = hit.path.rsplit("#", 1)[1]
            docs[name] = max(docs.get(name, -math.inf), -float(hit.rank))
        run[qid] = docs
    return evaluate(run, data.qrels, metrics=("ndcg@10", "recall@100"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["scifact", "pubmedqa-pqal-dev",
                                                          "squad2-dev-a"])  # fmt: skip
    parser.add_argument("--chunks", nargs="+", default=["254:0.15", "192:0.15", "128:0.15"],
                        help="max_tokens:overlap per index to build")  # fmt: skip
    parser.add_argument("--work", type=Path, default=Path("/tmp/rag-research"))
    parser.add_argument("--only", nargs="*", default=None, help="variant names to print")
    parser.add_argument("--json", type=Path, help="also write all results here")
    parser.add_argument("--maxsim", type=int, default=0, metavar="N",
                        help="also rerank the top N by best-sentence similarity")  # fmt: skip
    parser.add_argument("--check", action="store_true", help="also run the real Retriever")
    parser.add_argument("--check-rerank", action="store_true",
                        help="also run the real Retriever with SentenceReranker")  # fmt: skip
    args = parser.parse_args()
    from rag.embed import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    args.work.mkdir(parents=True, exist_ok=True)
    table: dict[tuple[str, str], dict] = {}
    for dataset in args.datasets:
        for chunk in args.chunks:
            folder = build_index(dataset, chunk, args.work)
            table[(dataset, chunk)] = evaluate_dataset(dataset, folder, embedder, args.maxsim)
            if args.check:
                table[(dataset, chunk)]["retriever"] = check_retriever(folder, dataset, False)
            if args.check_rerank:
                table[(dataset, chunk)]["reranked"] = check_retriever(folder, dataset, True)
            print(f"done {dataset} {chunk}", file=sys.stderr, flush=True)
    print("| dataset | chunks (max:overlap) | n chunks | word pieces | ingest s |")
    print("|---|---|---|---|---|")
    for (dataset, chunk), entry in table.items():
        b = entry["build"]
        print(f"| {dataset} | {chunk} | {b['chunks']} | {b['word_pieces']} | {b['wall_s']} |")
    print()
    names = list(next(iter(table.values()))["results"])
    if args.only:
        names = [n for n in names if n in args.only]
    header = " | ".join(f"{d[:8]} {c}" for d, c in table)
    print(f"| variant | {header} |")
    print("|---" * (len(table) + 1) + "|")
    for name in names:
        cells = []
        for entry in table.values():
            r = entry["results"][name]
            cells.append(f"{r['ndcg@10']:.3f} / {r['recall@100']:.3f} ({r['delta']:+.3f})")
        print(f"| {name} | " + " | ".join(cells) + " |")
    for key, label in (("retriever", "Retriever() (zscore)"),
                       ("reranked", "Retriever() + SentenceReranker")):  # fmt: skip
        if all(key in e for e in table.values()):
            cells = [f"{e[key]['ndcg@10']:.3f} / {e[key]['recall@100']:.3f}"
                     for e in table.values()]  # fmt: skip
            print(f"| {label} | " + " | ".join(cells) + " |")
    print("\ncells: nDCG@10 / Recall@100 (nDCG@10 change vs rrf k=60 on the same index)")
    print("command: HF_HUB_OFFLINE=1 .venv/bin/python evals/research_retrieval.py "
          + " ".join(a if " " not in a else repr(a) for a in sys.argv[1:]))  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({f"{d} {c}": e for (d, c), e in table.items()}, indent=1))


if __name__ == "__main__":
    main()
