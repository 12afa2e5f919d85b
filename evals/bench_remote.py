"""In process vs through a local OpenAI-compatible server: the same questions, the same model,
side by side in one run.

Starts llama-cpp-python's server (`python -m llama_cpp.server`) on the same GGUF with the same
llama.cpp settings as the in-process model (n_ctx, threads, batch, flash attention), then asks
every question both ways, alternating which goes first, over one retriever. Reports identical
answers, every answer metric both ways, seconds per question and their ratio.

With `--p-found`, a second server with `--logits_all true` (needed for logprobs; it slows
prefill, so it is kept out of the timing) answers again in JSON, and P(found) read from its
`top_logprobs` is compared with the in-process logits.

    .venv/bin/python evals/bench_remote.py ../shared/datasets/squad2-dev-a \
        --questions sample_350.jsonl --limit 50 --preset fast --p-found \
        --out evals/results/remote-parity.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

from rag.ask import Asker
from rag.eval.answers import _record, load_questions, score
from rag.eval.cache import open_cached_index
from rag.llm.llama_server import LlamaServer
from rag.llm.openai_server import OpenAIChatModel
from rag.pipeline import load_chat_model, model_path
from rag.settings import load_settings

METRICS = [
    ("exact_match", "exact match"), ("f1", "token F1"), ("gold_contained", "gold answer contained"),
    ("answered_rate", "answerable answered"), ("abstain_recall", "unanswerable abstained on"),
    ("citation_precision", "citation precision"), ("citation_recall", "citation recall"),
    ("gold_in_sources", "gold passage in sources"),
]  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--questions", default=None)
    ap.add_argument("--limit", type=int, default=50)
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--p-found", action="store_true", help="also compare P(found) (JSON answers)")
    ap.add_argument("--out", type=Path, default=None, help="write a markdown report here")
    args = ap.parse_args()

    name, corpus, questions = load_questions(args.dataset, args.questions)
    questions = questions[: args.limit]
    settings = load_settings(preset=args.preset).settings
    g = settings.generation
    gguf = model_path(settings)
    answer = replace(settings.answer, min_evidence=0.0, min_found=0.0)  # gates applied by score()
    cached = open_cached_index(corpus, settings)
    retriever = cached.index.retriever
    same_llama = ["--n_threads", str(g.n_threads or 2), "--n_threads_batch", str(g.n_threads or 2),
                  "--n_batch", str(g.n_batch), "--flash_attn", str(g.flash_attn).lower(),
                  "--seed", str(g.seed)]  # fmt: skip
    local = load_chat_model(settings)
    rows: dict[str, list] = {"local": [], "server": []}
    raw: dict[str, list[str]] = {"local": [], "server": []}
    seconds: dict[str, list[float]] = {"local": [], "server": []}
    found: dict[str, list[float | None]] = {"local": [], "server": []}
    print(f"{name}: {len(questions)} questions, model {gguf.name}", file=sys.stderr)
    with LlamaServer(gguf, n_ctx=g.n_ctx, logits_all=False, extra_args=same_llama) as server:
        remote = OpenAIChatModel(replace(settings.llm, url=server.url, n_ctx=g.n_ctx))
        askers = {"local": Asker(retriever, local, answer), "server": Asker(retriever, remote, answer)}
        askers["server"].ask("warm up")  # the first request pays the capability probes
        askers["local"].ask("warm up")
        for i, q in enumerate(questions):
            order = ["local", "server"] if i % 2 == 0 else ["server", "local"]
            for way in order:
                started = time.perf_counter()
                a = askers[way].ask(q.question)
                seconds[way].append(time.perf_counter() - started)
                rows[way].append(_record(q, a, cached))
                raw[way].append(a.raw_answer)
                found[way].append(a.found_p)
            same = raw["local"][-1] == raw["server"][-1]
            print(f"{i + 1}/{len(questions)} same={same} local {seconds['local'][-1]:.1f} s "
                  f"server {seconds['server'][-1]:.1f} s", file=sys.stderr)  # fmt: skip
        remote.close()
    p_found_rows = []
    if args.p_found:
        json_answer = replace(answer, output="json")
        with LlamaServer(gguf, n_ctx=g.n_ctx, logits_all=True, extra_args=same_llama) as server:
            remote = OpenAIChatModel(replace(settings.llm, url=server.url, n_ctx=g.n_ctx))
            asker = Asker(retriever, remote, json_answer)
            for i, q in enumerate(questions):
                a = asker.ask(q.question)
                p_found_rows.append((found["local"][i], a.found_p, a.abstention_signal))
            remote.close()
    local.close()
    cached.close()
    report = render(name, len(questions), gguf.name, rows, raw, seconds, p_found_rows, settings)
    print(report)
    if args.out:
        args.out.write_text(report, encoding="utf-8")
    return 0


def render(name, n, model, rows, raw, seconds, p_found_rows, settings) -> str:  # type: ignore[no-untyped-def]
    """The markdown report."""
    a = settings.answer
    scored = {way: score(rows[way], a.min_evidence, 0.0, a.min_found) for way in rows}
    identical = sum(x == y for x, y in zip(raw["local"], raw["server"], strict=True))
    mean = {way: statistics.fmean(seconds[way]) for way in seconds}
    lines = [
        f"# In process vs through llama-cpp-python's server: {name}, first {n} questions",
        "",
        f"Model {model} (preset {settings.generation.model}, greedy), output {a.output}, the "
        "same retriever for both; each question asked both ways, alternating which goes first.",
        "",
        f"- identical answers (raw model output, word for word): **{identical} / {n}**",
        f"- seconds per question: in process {mean['local']:.2f}, through the server "
        f"{mean['server']:.2f}: ratio **{mean['server'] / mean['local']:.3f}**",
        "",
        "| metric | in process | server | difference |",
        "| --- | --- | --- | --- |",
    ]
    for key, label in METRICS:
        x, y = getattr(scored["local"], key), getattr(scored["server"], key)
        lines.append(f"| {label} | {x:.3f} | {y:.3f} | {y - x:+.3f} |")
    if p_found_rows:
        pairs = [(x, y) for x, y, _ in p_found_rows if x is not None and y is not None]
        diffs = [abs(x - y) for x, y in pairs]
        signals = sorted({s for _, _, s in p_found_rows})
        close = sum(d <= 0.02 for d in diffs)
        lines += [
            "",
            "## P(found): in-process logits vs the server's top_logprobs",
            "",
            f"{len(pairs)} of {len(p_found_rows)} questions have both (server signal: "
            f"{', '.join(signals)}). |difference|: mean {statistics.fmean(diffs):.4f}, median "
            f"{statistics.median(diffs):.4f}, max {max(diffs):.4f}; within 0.02 on {close}.",
            "",
            "| question | in process | server |",
            "| --- | --- | --- |",
        ]
        lines += [f"| {i + 1} | {x:.4f} | {y:.4f} |" for i, (x, y) in enumerate(pairs)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
