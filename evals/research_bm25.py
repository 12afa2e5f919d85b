"""BM25 parameters (k1, b) on chunk indexes of three datasets: does a setting help everywhere?

Rebuilds only the BM25 index (from the chunk texts stored in an existing index's SQLite, the
same "heading + text" the store indexes) for each (k1, b), runs every query, ranks documents
by their best chunk in the top 100, and prints nDCG@10 / Recall@100 per dataset:

    HF_HUB_OFFLINE=1 .venv/bin/python evals/research_bm25.py \\
        scifact=/tmp/rr/scifact-254-0.15 pubmedqa-pqal-dev=/tmp/rr/pubmedqa-pqal-dev-254-0.15 \\
        squad2-dev-a=$RAG_HOME/eval-cache/<squad index>/index

Index folders come from `rag eval retrieval` (its cache) or evals/research_retrieval.py.
"""

from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path

from rag.bm25 import BM25Index, BM25Settings
from rag.eval import evaluate, load_beir

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
GRID = [(1.5, 0.75), (1.2, 0.75), (0.9, 0.4), (1.2, 0.4), (1.5, 0.9), (2.0, 0.75)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("indexes", nargs="+", help="dataset=index-folder pairs")
    args = parser.parse_args()
    table: dict[str, dict[str, str]] = {}
    for pair in args.indexes:
        name, folder = pair.split("=", 1)
        data = load_beir(DATASETS / name)
        db = sqlite3.connect(Path(folder) / "index.sqlite")
        rows = db.execute("SELECT c.id, d.key, c.heading, c.text FROM chunks c "
                          "JOIN documents d ON d.id = c.doc_id ORDER BY c.id").fetchall()
        doc_of = {cid: key.rsplit("#", 1)[1] for cid, key, _, _ in rows}
        texts = [f"{h}\n{t}" if h else t for _, _, h, t in rows]
        for k1, b in GRID:
            index = BM25Index.build([r[0] for r in rows], texts, BM25Settings(k1=k1, b=b))
            run: dict[str, dict[str, float]] = {}
            for qid, query in data.queries.items():
                docs: dict[str, float] = {}
                for cid, s in index.search(query, 100):
                    doc = doc_of[cid]
                    docs[doc] = max(docs.get(doc, 0.0), s)
                run[qid] = docs
            m = evaluate(run, data.qrels, metrics=("ndcg@10", "recall@100"))
            table.setdefault(f"k1={k1} b={b}", {})[name] = (
                f"{m['ndcg@10']:.4f} / {m['recall@100']:.3f}")
            print(name, k1, b, table[f"k1={k1} b={b}"][name], flush=True)
    names = [p.split("=", 1)[0] for p in args.indexes]
    print("\n| BM25 | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for variant, cells in table.items():
        print(f"| {variant} | " + " | ".join(cells.get(n, "–") for n in names) + " |")


if __name__ == "__main__":
    main()
