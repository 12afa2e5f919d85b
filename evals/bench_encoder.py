"""The ingest encoder side by side: sentence-transformers' own batches (bf16 and fp32) against
rag's length-sorted token-budget batches in torch and in ONNX Runtime, on the same SciFact
chunks in one process.

    HF_HUB_OFFLINE=1 .venv/bin/python evals/bench_encoder.py --docs 300
    HF_HUB_OFFLINE=1 .venv/bin/python evals/bench_encoder.py --docs 300 --compile  # + inductor

Paths: sentence-transformers' 64-text batches (fp32, bf16); rag's token-budget batches in torch
(fp32, bf16), and in ONNX Runtime (the `onnx` extra) on the same batches: the plain
torch.onnx export, the graph after onnxruntime's BERT fusions (ingest.encoder=onnx), and that
fused graph quantised to int8 (dynamic, per channel); with --compile also torch.compile
(inductor, dynamic shapes) on the token-budget path, its compile time shown apart.

Prints wall time (model load, export and one warm-up batch excluded), speed-up over the bf16
path the index used before and over today's token-budget fp32, and the cosine of each path's
vectors to fp32 sentence-transformers (the reference).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from rag.embed import SentenceTransformerEmbedder

Encode = Callable[[list[str]], np.ndarray]

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "datasets" / "scifact" / "corpus.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=600, help="SciFact abstracts to chunk")
    parser.add_argument("--compile", action="store_true",
                        help="also torch.compile (inductor) on the token-budget path")  # fmt: skip
    parser.add_argument("--no-onnx", action="store_true", help="leave out the ONNX paths")
    parser.add_argument("--repeat", type=int, default=1,
                        help="time each path this many times and keep the fastest")  # fmt: skip
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

    def st(embedder: SentenceTransformerEmbedder, some: list[str]) -> np.ndarray:
        return embedder.model.encode(some, batch_size=64, convert_to_numpy=True,
                                     show_progress_bar=False)  # fmt: skip

    runs: list[tuple[str, Encode]] = [
        ("sentence-transformers fp32, 64 texts", lambda t: st(fp32, t)),
        ("sentence-transformers bf16, 64 texts (before)", lambda t: st(bf16, t)),
        ("rag token-budget fp32 (now)", fp32.encode),
        ("rag token-budget bf16", bf16.encode),
    ]
    notes = [f"torch {torch.__version__}, {torch.get_num_threads()} threads"]
    if opts.compile:
        runs.append(("torch.compile inductor, token-budget fp32", compiled_path(fp32, notes)))
    if not opts.no_onnx:
        runs += onnx_paths(notes)
    reference: np.ndarray | None = None
    before = now = 0.0
    print(f"{len(texts)} chunks, {tokens:,} word pieces; {'; '.join(notes)}")
    print(f"{'path':48s} | {'wall':>7s} | {'vs before':>9s} | {'vs now':>7s} | cos min | cos mean")
    for name, run in runs:
        run(texts[:8])  # warm-up: first-call set-up, a compile, a session's first run
        wall = float("inf")
        for _ in range(max(1, opts.repeat)):
            started = time.perf_counter()
            vectors = np.asarray(run(texts), dtype=np.float32)
            wall = min(wall, time.perf_counter() - started)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        reference = vectors if reference is None else reference
        before = wall if "before" in name else before
        now = wall if "(now)" in name else now
        cos = (vectors * reference).sum(axis=1)
        speed = f"{before / wall:8.2f}x" if before else "        -"
        gain = f"{now / wall:6.2f}x" if now else "      -"
        print(f"{name:48s} | {wall:6.1f}s | {speed} | {gain} | {cos.min():.5f} | {cos.mean():.5f}")
    flags = (" --compile" if opts.compile else "") + (f" --repeat {opts.repeat}"
                                                       if opts.repeat > 1 else "")  # fmt: skip
    print(f"\ncommand: HF_HUB_OFFLINE=1 .venv/bin/python evals/bench_encoder.py "
          f"--docs {opts.docs}{flags}")  # fmt: skip


def compiled_path(fp32: SentenceTransformerEmbedder, notes: list[str]) -> Encode:
    """torch.compile (inductor, dynamic shapes) of a copy of the fp32 model, on the token-budget
    batches; compiled on a first call here, whose time goes to `notes`."""
    import torch

    from rag.embed import SentenceTransformerEmbedder

    compiled = SentenceTransformerEmbedder(dtype="fp32")
    model = copy.deepcopy(fp32.model)
    transformer = model[0].auto_model  # the Hugging Face model inside sentence-transformers'
    transformer.forward = torch.compile(transformer.forward, dynamic=True)
    compiled.__dict__["model"] = model
    started = time.perf_counter()
    compiled.encode(["a first call compiles the graph"] * 8)
    notes.append(f"torch.compile took {time.perf_counter() - started:.0f}s")
    return compiled.encode


def onnx_paths(notes: list[str]) -> list[tuple[str, Encode]]:
    """ONNX Runtime on the token-budget batches: plain export, fused graph, fused int8."""
    try:
        import onnx
        import onnxruntime
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        notes.append("ONNX paths left out: pip install 'rag[onnx]'")
        return []
    from rag.embed.onnx_export import ExportSettings
    from rag.embed.onnx_runtime import OnnxEmbedder

    plain = OnnxEmbedder(export=ExportSettings(fuse=False))
    fused = OnnxEmbedder()
    started = time.perf_counter()
    for embedder in (plain, fused):
        embedder.session  # noqa: B018 (export, or reuse the cached export, and load)
    notes.append(f"onnxruntime {onnxruntime.__version__}, {fused.threads} threads "
                 f"(export and load {time.perf_counter() - started:.0f}s)")  # fmt: skip
    int8 = OnnxEmbedder()
    path = fused.model_path.with_name("model.int8.onnx")
    if not path.is_file():
        quantize_dynamic(
            fused.model_path,
            path,
            per_channel=True,
            weight_type=QuantType.QInt8,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    int8.__dict__["model_path"] = path
    return [
        ("onnxruntime fp32, plain export, token-budget", plain.encode),
        ("onnxruntime fp32, fused graph (encoder=onnx)", fused.encode),
        ("onnxruntime int8 dynamic per-channel, fused", int8.encode),
    ]


if __name__ == "__main__":
    main()
