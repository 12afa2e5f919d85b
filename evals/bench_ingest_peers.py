"""Ingest wall time side by side: rag against LlamaIndex 0.14, same data, same MiniLM model.

LlamaIndex is not a dependency of rag: install it into its own virtualenv and point
`--peer-python` at it (torch first, so pip does not pull a CUDA build):

    python3 -m venv /tmp/li-venv
    /tmp/li-venv/bin/pip install torch==2.13.0
    /tmp/li-venv/bin/pip install llama-index-core==0.14.25 llama-index-embeddings-huggingface
    HF_HUB_OFFLINE=1 .venv/bin/python evals/bench_ingest_peers.py --peer-python /tmp/li-venv/bin/python

Both sides ingest the SciFact abstracts (title + text) with the model already loaded, in
separate processes, one after the other in the same run. LlamaIndex runs with its defaults
(SentenceSplitter 1024/200, fp32, in-memory vector store), as in ../shared/REFERENCE.md.
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


def llamaindex_step(corpus: str, model_dir: str, limit: int) -> dict:
    from llama_index.core import Document, Settings, VectorStoreIndex
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    with open(corpus) as handle:
        rows = [json.loads(line) for line in handle][: limit or None]
    docs = [Document(text=f"{r['title']}\n{r['text']}", doc_id=str(r["_id"])) for r in rows]
    Settings.embed_model = HuggingFaceEmbedding(model_name=model_dir, device="cpu")
    Settings.embed_model.get_text_embedding("warm up")
    started = time.perf_counter()
    index = VectorStoreIndex.from_documents(docs)
    wall = time.perf_counter() - started
    return {"wall_s": wall, "chunks": len(index.docstore.docs)}


def rag_step(corpus: str, limit: int) -> dict:
    from rag import Index
    from rag.embed import SentenceTransformerEmbedder

    if limit:
        subset = Path(tempfile.mkdtemp()) / "corpus.jsonl"
        with open(corpus) as src, open(subset, "w") as dst:
            for _, line in zip(range(limit), src, strict=False):
                dst.write(line)
        corpus = str(subset)
    embedder = SentenceTransformerEmbedder()
    embedder.encode(["warm up"] * 8)  # more than a query's worth: loads the torch model
    index = Index(Path(tempfile.mkdtemp()) / "index", embedder=embedder)
    started = time.perf_counter()
    report = index.ingest([corpus])
    return {"wall_s": time.perf_counter() - started, "chunks": report.chunks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-python", required=False, help="python of a LlamaIndex venv")
    parser.add_argument("--limit", type=int, default=0, help="first N abstracts only")
    parser.add_argument("--step", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if opts.step == "rag":
        print(json.dumps(rag_step(str(SCIFACT), opts.limit)))
        return
    from rag.embed import resolve_embedder

    model_dir = str(resolve_embedder())
    results = {}
    if opts.peer_python:
        here = str(Path(__file__).parent)
        code = (
            f"import json, sys; sys.path.insert(0, {here!r}); from bench_ingest_peers import "
            f"llamaindex_step; print(json.dumps(llamaindex_step({str(SCIFACT)!r}, "
            f"{model_dir!r}, {opts.limit})))"
        )
        out = subprocess.run([opts.peer_python, "-c", code], capture_output=True, text=True,
                             env=env, check=True)  # fmt: skip
        results["LlamaIndex 0.14 (defaults, fp32)"] = json.loads(
            out.stdout.strip().splitlines()[-1]
        )
    out = subprocess.run([sys.executable, __file__, "--step", "rag", "--limit", str(opts.limit)],
                         capture_output=True, text=True, env=env, check=True)  # fmt: skip
    results["rag (defaults)"] = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"\nIngest of SciFact abstracts{f' (first {opts.limit})' if opts.limit else ''}, model loaded"
    )
    print(f"{'system':<34} | {'wall':>8} | {'chunks':>7}")
    print(f"{'-' * 34}-|-{'-' * 8}-|-{'-' * 7}")
    for name, r in results.items():
        print(f"{name:<34} | {r['wall_s']:7.1f}s | {r['chunks']:7,}")
    if len(results) == 2:
        peer, ours = results.values()
        print(
            f"\nrag is {peer['wall_s'] / ours['wall_s']:.2f}x faster than LlamaIndex in wall time"
        )
    print(
        f"\ncommand: HF_HUB_OFFLINE=1 .venv/bin/python evals/bench_ingest_peers.py {' '.join(sys.argv[1:])}"
    )


if __name__ == "__main__":
    main()
