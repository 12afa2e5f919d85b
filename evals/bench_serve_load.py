"""Load on a live `rag serve`: N concurrent clients × M questions each, half of them streamed.

Starts the real server (`rag serve`, its own process, 127.0.0.1, a free port) on an index of
the demo corpus, then every client asks its questions one after another. Each request ends
in exactly one outcome: answered (200 with the final answer chunk / body), refused (429 with
Retry-After), an error (any other status, a broken connection) or lost (a 200 stream that
ended without its final chunk and [DONE]). Reports counts, latency p50 / p95 of answered
requests, time to the first streamed token, and the queue depth sampled from /status.

    .venv/bin/python evals/bench_serve_load.py --preset tiny --clients 20 --questions 5 \
        --out evals/results/serve-load.md

`--queue Q` sets serve.queue (default: the server's default, 8); `--retry` makes a refused
client wait Retry-After seconds and ask again (then every question should be answered).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx2 as httpx

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "corpora" / "demo"
QUESTIONS = [  # about the demo corpus (corpora/demo), plus two it cannot answer
    "When was the Kestrel K2 launched?",
    "What does error E4 mean?",
    "How long is the warranty?",
    "Who is the managing director of Aldermoor?",
    "How often are the reference instruments checked?",
    "Which sensors does the K2 Plus add?",
    "How do I reset the console to factory settings?",
    "What changed in firmware version 1.0.4?",
    "Who won the 1998 football world cup?",
    "What is the boiling point of mercury?",
]


@dataclass
class Outcome:
    kind: str  # answered, refused, error, lost
    seconds: float
    ttft_s: float | None = None
    retry_after: int | None = None
    detail: str = ""


@dataclass
class Samples:
    depth: list[int] = field(default_factory=list)
    running: list[int] = field(default_factory=list)


def ask(url: str, question: str, stream: bool) -> Outcome:
    body = {"messages": [{"role": "user", "content": question}], "stream": stream}
    started = time.perf_counter()
    try:
        if not stream:
            r = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=600)
            elapsed = time.perf_counter() - started
            if r.status_code == 429:
                return Outcome("refused", elapsed, retry_after=int(r.headers["retry-after"]))
            if r.status_code != 200:
                return Outcome("error", elapsed, detail=f"{r.status_code} {r.text[:200]}")
            data = r.json()
            ok = data["choices"][0]["message"]["content"] and "abstained" in data
            return Outcome("answered" if ok else "lost", elapsed)
        ttft = None
        final = done = False
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=600) as r:
            if r.status_code == 429:
                r.read()
                return Outcome("refused", time.perf_counter() - started,
                               retry_after=int(r.headers["retry-after"]))  # fmt: skip
            if r.status_code != 200:
                r.read()
                return Outcome("error", time.perf_counter() - started,
                               detail=f"{r.status_code} {r.text[:200]}")  # fmt: skip
            for line in r.iter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[6:]
                if data == "[DONE]":
                    done = True
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    return Outcome("error", time.perf_counter() - started, detail=data[:200])
                if "answer" in chunk and "sources" in chunk:
                    final = True
                elif chunk.get("choices") and chunk["choices"][0]["delta"].get("content"):
                    ttft = ttft or time.perf_counter() - started
        elapsed = time.perf_counter() - started
        return Outcome("answered" if final and done else "lost", elapsed, ttft)
    except httpx.HTTPError as exc:
        return Outcome("error", time.perf_counter() - started, detail=repr(exc))


def client(url: str, number: int, questions: int, retry: bool, out: list[Outcome]) -> None:
    for i in range(questions):
        question = QUESTIONS[(number * questions + i) % len(QUESTIONS)]
        stream = (number + i) % 2 == 0
        while True:
            outcome = ask(url, question, stream)
            out.append(outcome)
            if outcome.kind != "refused" or not retry:
                break
            time.sleep(outcome.retry_after or 1)


def sample(url: str, samples: Samples, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            queue = httpx.get(f"{url}/status", timeout=10).json()["queue"]
            samples.depth.append(queue["waiting"])
            samples.running.append(queue["running"])
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        stop.wait(0.25)


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def start_server(index: Path, preset: str, queue: int | None, sets: list[str]) -> tuple:
    from rag.llm.llama_server import free_port

    port = free_port()
    cmd = [sys.executable, "-m", "rag_cli.main", "serve", "--index", str(index), "--preset",
           preset, "--port", str(port)]  # fmt: skip
    if queue is not None:
        cmd += ["--set", f"serve.queue={queue}"]
    for item in sets:
        cmd += ["--set", item]
    log = open(index.parent / "serve.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"rag serve exited: {(index.parent / 'serve.log').read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("rag serve did not start in 300 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--questions", type=int, default=5, help="per client")
    parser.add_argument("--queue", type=int, default=None, help="serve.queue")
    parser.add_argument("--retry", action="store_true", help="retry a 429 after Retry-After")
    parser.add_argument("--index", type=Path, help="an index to serve (default: the demo)")
    parser.add_argument("--set", dest="sets", action="append", default=[])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="rag-load-"))
    index = args.index
    if index is None:
        from rag import Index

        index = work / "index"
        print(f"indexing {DEMO} into {index} …", file=sys.stderr)
        Index(index, preset=args.preset).ingest([DEMO])
    proc, url = start_server(index, args.preset, args.queue, args.sets)
    outcomes: list[Outcome] = []
    samples = Samples()
    stop = threading.Event()
    sampler = threading.Thread(target=sample, args=(url, samples, stop), daemon=True)
    try:
        queue = httpx.get(f"{url}/status", timeout=10).json()["queue"]["queue"]
        sampler.start()
        started = time.perf_counter()
        threads = [threading.Thread(target=client, args=(url, n, args.questions, args.retry,
                                                         outcomes)) for n in range(args.clients)]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - started
    finally:
        stop.set()
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
    kinds = {k: sum(1 for o in outcomes if o.kind == k)
             for k in ("answered", "refused", "error", "lost")}  # fmt: skip
    answered = [o.seconds for o in outcomes if o.kind == "answered"]
    ttfts = [o.ttft_s for o in outcomes if o.ttft_s is not None]
    refused = [o.seconds for o in outcomes if o.kind == "refused"]
    rows = [
        ("requests sent", len(outcomes)),
        ("answered (200, final chunk or body)", kinds["answered"]),
        ("refused (429 + Retry-After)", kinds["refused"]),
        ("errors", kinds["error"]),
        ("lost responses", kinds["lost"]),
        ("answered latency p50 / p95 (s)", f"{pct(answered, 50):.2f} / {pct(answered, 95):.2f}"),
        ("first streamed token p50 / p95 (s)", f"{pct(ttfts, 50):.2f} / {pct(ttfts, 95):.2f}"),
        ("429 latency p50 (ms)", f"{pct(refused, 50) * 1000:.1f}" if refused else "-"),
        ("queue depth mean / max (sampled 4/s)",
         f"{statistics.fmean(samples.depth):.1f} / {max(samples.depth)}" if samples.depth else "-"),
        ("generating at once, max", max(samples.running) if samples.running else "-"),
        ("wall time (s)", f"{wall:.1f}"),
        ("answers per minute", f"{kinds['answered'] / wall * 60:.1f}"),
    ]  # fmt: skip
    command = " ".join(["python", "evals/bench_serve_load.py", *sys.argv[1:]])
    lines = [
        f"# rag serve under load: {args.clients} clients × {args.questions} questions",
        "",
        f"Preset `{args.preset}`, serve.queue={queue}, "
        f"{'retrying refused requests after Retry-After' if args.retry else 'no retries'}; "
        f"half the requests streamed. Machine: {os.cpu_count()} cores.",
        "",
        "| measure | value |",
        "| --- | --- |",
        *[f"| {name} | {value} |" for name, value in rows],
        "",
        f"Command: `{command}`",
    ]
    errors = [o.detail for o in outcomes if o.kind in ("error", "lost")]
    if errors:
        lines += ["", "Errors:", *[f"- {e}" for e in errors[:10]]]
    text = "\n".join(lines)
    print(text)
    if args.out:
        existing = args.out.read_text() + "\n\n" if args.out.exists() else ""
        args.out.write_text(existing + text + "\n")


if __name__ == "__main__":
    main()
