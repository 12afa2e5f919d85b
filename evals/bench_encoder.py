"""The ingest encoder side by side: sentence-transformers' own batches (bf16 and fp32) against
rag's length-sorted token-budget batches, on the same SciFact chunks in one process.

    HF_HUB_OFFLINE=1 .venv/bin/python evals/bench_encoder.py --docs 600

Prints wall time, speed-up over the bf16 path the index used before, and the cosine of each
path's vectors to fp32 sentence-transformers (the reference).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "datasets" / "scifact" / "corpus.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=600, help="SciFact abstracts to chunk")
    opts = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from rag.embed import SentenceTransformerEmbedder

    with SCIFACT.open() as handle:
        rows = [json.loads(line) for _, line in zip(range(opts.docs), handle, strict=False)]
    fp32 = SentenceTransformerEmbedder(dtype="fp32")
    texts = []
    for row in rows:
        text = f"{row['title']}\n{row['text']}"
        texts += [text[a:b] for a, b in fp32.counter.split_to_fit(text, fp32.info.max_tokens)]
    tokens = sum(fp32.counter.count_many(texts))
    bf16 = SentenceTransformerEmbedder(dtype="bf16")
    bf16.__dict__["model"] = copy.deepcopy(fp32.model).to(torch.bfloat16)

    def st(embedder: SentenceTransformerEmbedder) -> np.ndarray:
        return embedder.model.encode(texts, batch_size=64, convert_to_numpy=True,
                                     show_progress_bar=False)  # fmt: skip

    runs: list[tuple[str, Callable[[], np.ndarray]]] = [
        ("sentence-transformers fp32, 64 texts", lambda: st(fp32)),
        ("sentence-transformers bf16, 64 texts (before)", lambda: st(bf16)),
        ("rag token-budget fp32 (now)", lambda: fp32.encode(texts)),
        ("rag token-budget bf16", lambda: bf16.encode(texts)),
    ]
    reference: np.ndarray | None = None
    before = 0.0
    print(f"{len(texts)} chunks, {tokens:,} word pieces, {torch.get_num_threads()} threads")
    print(f"{'path':48s} | {'wall':>7s} | {'speed-up':>8s} | cos min | cos mean")
    for name, run in runs:
        started = time.perf_counter()
        vectors = np.asarray(run(), dtype=np.float32)
        wall = time.perf_counter() - started
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        reference = vectors if reference is None else reference
        before = wall if "before" in name else before
        cos = (vectors * reference).sum(axis=1)
        speed = f"{before / wall:7.2f}x" if before else "       -"
        print(f"{name:48s} | {wall:6.1f}s | {speed} | {cos.min():.5f} | {cos.mean():.5f}")
    print(f"\ncommand: HF_HUB_OFFLINE=1 .venv/bin/python evals/bench_encoder.py --docs {opts.docs}")


if __name__ == "__main__":
    main()
