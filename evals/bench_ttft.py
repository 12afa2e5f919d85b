"""Time to first token of rag's own answer prompt, by weight format and llama.cpp settings.

TTFT is the prefill of the packed sources, so it depends on how fast llama.cpp multiplies the
prompt through the weights. This measures, for one packaged preset, the GGUF as shipped and
re-quantized copies of it (`--quants`, made once with llama.cpp's own quantizer into the model
cache, never committed), with flash attention on and off, at each context budget:

- cold: an empty KV cache (the first question of a process);
- warm: the fixed system prompt already in the cache (every later question in one process:
  chat, serve, eval), which llama-cpp-python reuses as the longest common prefix.

The prompt is `answer-json-v1` with whole demo-corpus paragraphs packed up to the budget, as
`rag ask` packs them. Each figure is the best of `--reps` runs. The same greedy answer is
generated for every variant; "same" says whether its text matches the shipped file's.

    HF_HUB_OFFLINE=1 python evals/bench_ttft.py --preset default --quants Q8_0 Q4_0
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rag.llm.base import GenerationOptions
from rag.llm.llamacpp import LlamaCppChatModel as Generator
from rag.models import model_cache_dir, resolve_model
from rag.prompts import load_prompt

CORPUS = Path(__file__).resolve().parent.parent / "corpora" / "demo"
FILES = ("user-manual.md", "troubleshooting.md", "calibration.md", "faq.md", "specifications.md")
QUESTIONS = (
    "What does the CR2032 cell do?",
    "How often should the sensor be calibrated?",
    "What does error code E07 mean?",
)
FTYPES = {"Q8_0": 7, "Q4_0": 2, "Q5_0": 8, "Q6_K": 18}  # llama_ftype values (llama.h)


@dataclass(frozen=True)
class Row:
    variant: str
    flash: bool
    budget: int
    prompt_tokens: int
    cold_s: float
    warm_s: float
    prefill_tok_s: float
    decode_tok_s: float
    text: str


def requantized(source: Path, quant: str) -> Path:
    """A copy of `source` re-quantized to `quant` in the model cache (made once)."""
    import llama_cpp

    dest = model_cache_dir() / f"{source.stem}.requant-{quant}.gguf"
    if dest.exists():
        return dest
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FTYPES[quant]
    params.allow_requantize = True
    params.nthread = os.cpu_count() or 1
    tmp = dest.with_suffix(".tmp")
    started = time.perf_counter()
    code = llama_cpp.llama_model_quantize(str(source).encode(), str(tmp).encode(), params)
    if code != 0:
        sys.exit(f"llama_model_quantize to {quant} failed with code {code}")
    tmp.replace(dest)
    print(f"made {dest.name} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return dest


def paragraphs() -> list[str]:
    return [
        p.strip()
        for name in FILES
        for p in (CORPUS / name).read_text(encoding="utf-8").split("\n\n")
        if p.strip()
    ]


def build_messages(gen: Generator, budget: int, question: str, shift: int) -> list[dict]:
    """The answer prompt with whole paragraphs packed until the sources reach `budget` tokens;
    `shift` rotates which paragraphs come first, so warm runs differ after the system prompt."""
    template = load_prompt("answer-json-v1")
    paras = paragraphs()
    paras = paras[shift:] + paras[:shift]
    kept: list[str] = []
    for para in paras:
        trial = [*kept, para]
        text = "\n\n".join(f"[{i}] {p}" for i, p in enumerate(trial, 1))
        if gen.count_tokens(text) > budget:
            break
        kept = trial
    sources = "\n\n".join(f"[{i}] {p}" for i, p in enumerate(kept, 1))
    return template.messages(sources, question)


def measure(
    gen: Generator, budget: int, reps: int, max_tokens: int
) -> tuple[int, float, float, float, float, str]:
    """Best cold TTFT, best warm TTFT, prefill and decode rates, and the first answer."""
    cold: list[float] = []
    warm: list[float] = []
    prefill = decode = 0.0
    text = ""
    tokens = 0
    options = GenerationOptions(max_tokens)
    for rep in range(reps):
        messages = build_messages(gen, budget, QUESTIONS[0], 0)
        gen.reset()
        out = gen.generate(messages, options)
        cold.append(out.ttft_s)
        prefill = max(prefill, out.prefill_tok_s)
        decode = max(decode, out.decode_tok_s)
        tokens = out.prompt_tokens
        text = text or out.text
        # the same system prompt is now cached; another question over other paragraphs
        other = build_messages(gen, budget, QUESTIONS[1 + rep % 2], 3 + rep)
        warm.append(gen.generate(other, options).ttft_s)
    return tokens, min(cold), min(warm), prefill, decode, text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--quants", nargs="*", default=["Q8_0", "Q4_0"], choices=list(FTYPES))
    parser.add_argument("--budgets", nargs="+", type=int, default=[600, 1000])
    parser.add_argument("--flash", nargs="+", choices=["on", "off"], default=["on", "off"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()

    shipped = resolve_model(args.preset)
    variants = [("shipped " + shipped.stem.split(".")[0], shipped)]
    variants += [(f"requant {q}", requantized(shipped, q)) for q in args.quants]
    rows: list[Row] = []
    n_ctx = max(args.budgets) + 512
    for label, path in variants:
        for flash in args.flash:
            with Generator(
                path, n_ctx=n_ctx, n_threads=args.threads, flash_attn=flash == "on"
            ) as gen:
                gen.generate([{"role": "user", "content": "warm up"}], GenerationOptions(4))
                for budget in args.budgets:
                    tokens, cold, warm, pre, dec, text = measure(
                        gen, budget, args.reps, args.max_tokens
                    )
                    rows.append(
                        Row(label, flash == "on", budget, tokens, cold, warm, pre, dec, text)
                    )
                    print(f"  {rows[-1]}", file=sys.stderr, flush=True)

    base = {r.budget: r.text for r in rows if r.variant == variants[0][0] and r.flash}
    print(f"\n{args.preset}: {shipped.name}, {args.threads} threads, best of {args.reps}\n")
    print(
        "| weights | flash attn | sources tok | prompt tok | TTFT cold s | TTFT warm s "
        "| prefill tok/s | decode tok/s | same answer |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        same = "yes" if base.get(r.budget) == r.text else "NO"
        print(
            f"| {r.variant} | {'on' if r.flash else 'off'} | {r.budget} | {r.prompt_tokens} "
            f"| {r.cold_s:.2f} | {r.warm_s:.2f} | {r.prefill_tok_s:.0f} | {r.decode_tok_s:.1f} | {same} |"
        )
    print(
        f"\nload average {os.getloadavg()[0]:.1f}; command: python evals/bench_ttft.py "
        + shlex.join(sys.argv[1:])
    )


if __name__ == "__main__":
    main()
