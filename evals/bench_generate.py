"""Benchmark the packaged generators: TTFT, prefill and decode speed, prompt-lookup decoding.

For each installed preset and each context size, the model answers an extractive question
(the answer quotes a paragraph of the prompt) greedily, with and without prompt-lookup
speculative decoding. Each figure is the best of `--reps` runs, each from an empty prompt cache.
"same text" compares with the plain greedy answer: batched verification can flip near-ties.

    python evals/bench_generate.py --presets tiny fast --threads 2
"""

from __future__ import annotations

import argparse
import gc
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rag.llm.base import Generation, GenerationOptions
from rag.llm.llamacpp import LlamaCppChatModel as Generator
from rag.models import PRESETS, installed_presets, resolve_model

CORPUS = Path(__file__).resolve().parent.parent / "corpora" / "demo"
FILES = ("user-manual.md", "troubleshooting.md", "calibration.md", "faq.md", "specifications.md")
SYSTEM = "Answer from the context only. Quote the context word for word where you can."
QUESTION = (
    "What does the CR2032 cell do? Quote the paragraph of the manual that explains it, "
    "word for word."
)


@dataclass(frozen=True)
class Row:
    """One benchmark cell: the best run of a preset at a context size and decoding mode."""

    preset: str
    target: int
    lookup: int
    prompt_tokens: int
    completion_tokens: int
    ttft_s: float
    prefill_tok_s: float
    decode_tok_s: float
    same_text: bool


def build_messages(gen: Generator, target: int) -> list[dict[str, str]]:
    """Return a chat prompt of about `target` tokens (whole paragraphs, never over)."""
    paragraphs = [
        p.strip()
        for name in FILES
        for p in (CORPUS / name).read_text(encoding="utf-8").split("\n\n")
        if p.strip()
    ]
    kept: list[str] = []
    for para in paragraphs:
        trial = _messages("\n\n".join([*kept, para]))
        if gen.chat_prompt_tokens(trial) > target:
            break
        kept.append(para)
    return _messages("\n\n".join(kept))


def _messages(context: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Context:\n{context}\n\nQuestion: {QUESTION}"},
    ]


def timed(gen: Generator, messages: list[dict[str, str]], max_tokens: int) -> Generation:
    """Return one greedy run that starts from an empty prompt cache."""
    gen.reset()
    return gen.generate(messages, GenerationOptions(max_tokens))


def bench_preset(
    preset: str, targets: list[int], threads: int, reps: int, max_tokens: int, lookup: int
) -> list[Row]:
    """Measure one preset at every context size, plain and with prompt lookup.

    Both generators are loaded at once (they share the mmapped weights) and their runs are
    interleaved, so a change in machine load hits both modes alike.
    """
    path = resolve_model(preset)
    n_ctx = max(targets) + max_tokens + 64
    rows: list[Row] = []
    with (
        Generator(path, n_ctx=n_ctx, n_threads=threads) as plain,
        Generator(path, n_ctx=n_ctx, n_threads=threads, prompt_lookup=lookup) as spec,
    ):
        for gen in (plain, spec):
            gen.generate(_messages("warm up"), GenerationOptions(4))
        for target in targets:
            messages = build_messages(plain, target)
            runs: dict[int, list[Generation]] = {0: [], lookup: []}
            for _ in range(reps):
                runs[0].append(timed(plain, messages, max_tokens))
                runs[lookup].append(timed(spec, messages, max_tokens))
            for n_draft, outs in runs.items():
                best = min(outs, key=lambda g: g.total_s)
                rows.append(
                    Row(
                        preset=preset,
                        target=target,
                        lookup=n_draft,
                        prompt_tokens=best.prompt_tokens,
                        completion_tokens=best.completion_tokens,
                        ttft_s=min(o.ttft_s for o in outs),
                        prefill_tok_s=max(o.prefill_tok_s for o in outs),
                        decode_tok_s=max(o.decode_tok_s for o in outs),
                        same_text=best.text == runs[0][0].text,
                    )
                )
                print(f"  {rows[-1]}", file=sys.stderr, flush=True)
    gc.collect()
    return rows


def print_table(rows: list[Row]) -> None:
    """Print the results as a Markdown table."""
    print(
        "| preset | context | prompt tok | lookup | TTFT s | prefill tok/s "
        "| decode tok/s | speed-up | out tok | same text |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    plain = {(r.preset, r.target): r.decode_tok_s for r in rows if r.lookup == 0}
    for r in rows:
        base = plain.get((r.preset, r.target)) or 0.0
        speedup = f"{r.decode_tok_s / base:.2f}x" if base else "-"
        print(
            f"| {r.preset} | {r.target} | {r.prompt_tokens} | {r.lookup or 'off'} "
            f"| {r.ttft_s:.2f} | {r.prefill_tok_s:.0f} | {r.decode_tok_s:.1f} | {speedup} "
            f"| {r.completion_tokens} | {'yes' if r.same_text else 'NO'} |"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table and the command that made it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=None, choices=list(PRESETS))
    parser.add_argument("--contexts", nargs="+", type=int, default=[500, 1000, 1500])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--lookup", type=int, default=10, help="tokens drafted per step")
    args = parser.parse_args(argv)
    presets = args.presets or installed_presets()
    started = time.perf_counter()
    rows: list[Row] = []
    for preset in presets:
        print(f"{preset}: {PRESETS[preset].description}", file=sys.stderr, flush=True)
        rows += bench_preset(
            preset, args.contexts, args.threads, args.reps, args.max_tokens, args.lookup
        )
    print_table(rows)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"\n{time.perf_counter() - started:.0f} s on {os.cpu_count()} cores, "
        f"n_threads={args.threads}, load average at the end {load}; reproduce with:"
    )
    print("python " + shlex.join(["evals/bench_generate.py", *(argv or sys.argv[1:])]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
