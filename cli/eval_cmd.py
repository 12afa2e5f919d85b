"""`rag eval …`: measure retrieval and answers on a dataset, or an index with label-free probes."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import Progress, TaskID

from rag_cli.options import (
    DebugOption,
    IndexOption,
    JsonOption,
    LlmModelOption,
    LlmUrlOption,
    ModelOption,
)
from rag_cli.output import IngestBar, err, out, print_json, progress_bar, run_command
from rag_cli.settings_options import ConfigOption, PresetOption, SetOption, load_cli_settings

if TYPE_CHECKING:
    from rag.eval.probes import ProbeReport
    from rag.ingest import IngestProgress

DEFAULT_MODES = ("bm25", "dense", "hybrid", "hybrid+rerank")

EVAL_HELP = (
    "Measure retrieval quality and speed on a labelled dataset (retrieval, answers), or on "
    "your own index without labels (probes: questions the local model writes about your "
    "chunks, re-measured after every re-ingest)."
)

eval_app = typer.Typer(
    help=EVAL_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@eval_app.callback()
def _group() -> None:
    """Measure retrieval quality and speed on a labelled dataset, or on your index with probes."""


class EvalBar:
    """Progress for an eval run: the ingest bar while indexing, then a query bar with ETA."""

    def __init__(self) -> None:
        self._ingest: IngestBar | None = None
        self._queries: Progress | None = None
        self._task: TaskID | None = None

    def index_started(self, label: str) -> IngestProgress | None:
        self._ingest = IngestBar()
        self._ingest.__enter__()
        return self._ingest

    def index_finished(self) -> None:
        if self._ingest is not None:
            self._ingest.__exit__(None, None, None)
            self._ingest = None

    def search_started(self, label: str, total: int) -> None:
        self._queries = progress_bar(label)
        self._queries.start()
        self._task = self._queries.add_task(label, total=total)

    def search_done(self, count: int) -> None:
        if self._queries is not None and self._task is not None:
            self._queries.advance(self._task, count)

    def search_finished(self) -> None:
        if self._queries is not None:
            self._queries.stop()
            self._queries = None


@eval_app.command()
def retrieval(
    dataset_dir: Annotated[
        Path,
        typer.Argument(
            help="A BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv), a QA folder "
            "(corpus.jsonl, questions.jsonl) or a folder of documents with a labelled "
            "questions.jsonl ({question, file, answer, page} per line)."
        ),
    ],
    mode: Annotated[
        list[str] | None,
        typer.Option(
            "--mode",
            help="bm25, dense, hybrid or hybrid+rerank (any mode may take +rerank); "
            "repeatable. Default: all four.",
            show_default=False,
        ),
    ] = None,
    chunk_tokens: Annotated[
        list[int] | None,
        typer.Option(
            "--chunk-tokens",
            help="Chunk size in word pieces; repeatable to compare. Default: the embedder's limit.",
            show_default=False,
        ),
    ] = None,
    k: Annotated[
        list[int] | None,
        typer.Option(
            "--k", help="Metric cutoffs; repeatable. Default: 10 and 100.", show_default=False
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(help="Only the first N queries.", show_default=False)
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Output folder. Default: ./eval-out/<dataset name>.", show_default=False
        ),
    ] = None,
    baseline: Annotated[
        Path | None,
        typer.Option(
            help="An earlier report.json: show deltas, mark regressions and improvements.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where indexes are cached between runs. Default: $RAG_HOME/eval-cache.",
            show_default=False,
        ),
    ] = None,
    preset: PresetOption = None,
    config: ConfigOption = None,
    sets: SetOption = None,
    debug: DebugOption = False,
) -> None:
    """Score search modes and chunk sizes on a dataset: nDCG, Recall, MRR, MAP, P, latency.

    The corpus is indexed once per chunk size and cached (a re-run reuses it); every mode runs
    on that index. Writes report.json, report.md, metrics.png and latency.png to --out.

    Example:  rag eval retrieval ../shared/datasets/scifact --out evals/results/scifact
    """
    command = _command_line(dataset_dir, mode, chunk_tokens, k, limit, out_dir, baseline, cache_dir)

    def work() -> int:
        from rag.eval.report import headline_metrics, load_report, metric_label, write_report
        from rag.eval.runner import run_retrieval

        old = load_report(baseline) if baseline is not None else None
        loaded = load_cli_settings(preset, config, {}, sets)
        report = run_retrieval(
            dataset_dir,
            modes=tuple(mode or DEFAULT_MODES),
            chunk_sizes=tuple(chunk_tokens or (None,)),
            ks=tuple(k or (10, 100)),
            limit=limit,
            cache_dir=cache_dir,
            progress=EvalBar(),
            settings=loaded.settings,
        )
        report.command = command
        target = out_dir or Path("eval-out") / report.dataset
        files = write_report(report.to_dict(), target, baseline=old)
        for build in report.indexes:
            for failure in build.failed:
                err.print(f"[red]failed:[/] {failure}", markup=True, highlight=False)
        for warning in files.warnings:
            err.print(f"[yellow]warning:[/] {warning}", markup=True, highlight=False)
        written = [files.json, files.markdown, *files.charts]
        if as_json:
            import json

            data = json.loads(files.json.read_text(encoding="utf-8"))
            data["files"] = [str(p) for p in written]
            print_json(data)
            return 0
        names = headline_metrics(report.ks)
        out.print(f"{report.dataset}: {report.queries} queries · run took {report.seconds:.0f} s")
        width = max(len(c.name) for c in report.configs)
        out.print(
            " ".join([f"{'config':<{width}}", *(f"{metric_label(n):>10}" for n in names)])
            + "  p50 ms"
        )
        for row in report.configs:
            values = " ".join(f"{row.metrics[n]:>10.4f}" for n in names)
            p50 = row.latency_ms["total"]["p50"]
            out.print(f"{row.name:<{width}} {values}  {p50:6.1f}")
        for build in report.indexes:
            state = "reused" if build.reused else f"built in {build.build_seconds:.0f} s"
            out.print(
                f"index {state}: {build.documents:,} documents, {build.chunks:,} chunks, "
                f"{build.bytes / 2**20:.1f} MB"
            )
        for note in report.notes:
            out.print(f"note: {note}")
        out.print("wrote " + ", ".join(str(p) for p in written))
        return 0

    raise typer.Exit(run_command(work, debug))


@eval_app.command()
def answers(
    dataset_dir: Annotated[
        Path, typer.Argument(help="QA folder (corpus.jsonl + questions.jsonl) or labelled folder.")
    ],
    questions: Annotated[
        str | None,
        typer.Option("--questions", help="Questions file in the folder (default questions.jsonl)."),
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N questions.")] = None,
    preset: PresetOption = None,
    model: ModelOption = None,
    llm_url: LlmUrlOption = None,
    llm_model: LlmModelOption = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Output folder (default ./eval-out/<name>-answers)."),
    ] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="Where eval indexes are cached.")] = None,
    min_evidence: Annotated[
        float | None,
        typer.Option(
            help="Score as if answers with weaker evidence abstained. Default: rag ask's.",
            show_default=False,
        ),
    ] = None,
    min_support: Annotated[
        float,
        typer.Option(help="Also abstain when no answer sentence has this much support."),
    ] = 0.0,
    min_found: Annotated[
        float | None,
        typer.Option(
            help="Structured answers: score as if those with P(found) under this abstained. "
            "Default: rag ask's.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(help="Answer format, as rag ask --output: text or json. Default: the "
                     "preset's.", show_default=False),  # fmt: skip
    ] = None,
    config: ConfigOption = None,
    sets: SetOption = None,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Ask every question with open retrieval and score answers, abstention and citations.

    Resumable: answers are appended to OUT/answers.jsonl, so a run that dies picks up where it
    stopped, and re-scoring a finished run (say with another --min-evidence) costs seconds.
    Writes OUT/report.json, OUT/report.md (metrics and the abstention trade-off tables) and
    OUT/curve.png.

    Example:  rag eval answers ../shared/datasets/squad2-dev-a --questions sample_350.jsonl
    """
    from rag.eval.answers import run_answers
    from rag.eval.answers_report import write_answers_report

    def work() -> int:
        target = out_dir or Path("eval-out") / f"{dataset_dir.resolve().name}-answers"
        with progress_bar("answering") as bar:
            task = bar.add_task("answers", total=None)
            loaded = load_cli_settings(preset, config, {
                "generation.model": model, "answer.output": output,
                "answer.min_evidence": min_evidence, "answer.min_found": min_found,
                "llm.url": llm_url, "llm.model": llm_model,
            }, sets)  # fmt: skip
            settings = loaded.settings
            report = run_answers(
                dataset_dir, questions_file=questions, limit=limit,
                out_dir=target, cache_dir=cache_dir, settings=settings, min_support=min_support,
                on_question=lambda done, total: bar.update(task, completed=done, total=total),
            )  # fmt: skip
        data = report.to_dict()
        command = ["rag", "eval", "answers", str(dataset_dir)]
        for flag, value in (("--questions", questions), ("--limit", limit), ("--preset", preset),
                            ("--model", model), ("--out", out_dir), ("--cache-dir", cache_dir),
                            ("--min-evidence", min_evidence),
                            ("--min-support", min_support or None),
                            ("--min-found", min_found),
                            ("--output", output)):  # fmt: skip
            if value is not None:
                command += [flag, str(value)]
        written = write_answers_report(data, target, shlex.join(command))
        for warning in written.warnings:
            err.print(f"[yellow]warning:[/] {warning}", markup=True, highlight=False)
        if as_json:
            print_json(data)
            return 0
        for key in ("questions", "exact_match", "f1", "gold_contained", "abstain_precision",
                    "abstain_recall", "citation_precision", "citation_recall", "support_rate",
                    "seconds_mean"):  # fmt: skip
            out.print(f"{key:<20} {data[key]}")
        files = [written.json, written.markdown, *written.charts, target / "answers.jsonl"]
        out.print("wrote " + ", ".join(str(f) for f in files))
        return 0

    raise typer.Exit(run_command(work, debug))


@eval_app.command()
def probes(
    index: IndexOption = None,
    n: Annotated[
        int | None,
        typer.Option(
            "--n", help="How many probes. Default: the cached set's, else 50.", show_default=False
        ),
    ] = None,
    k: Annotated[
        int | None,
        typer.Option("--k", help="Recall cutoff: found in the top k. Default: 5.",
                     show_default=False),  # fmt: skip
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            help="Picks the chunks (reproducible). Default: the cached set's, else 0.",
            show_default=False,
        ),
    ] = None,
    preset: PresetOption = None,
    model: ModelOption = None,
    config: ConfigOption = None,
    sets: SetOption = None,
    regenerate: Annotated[
        bool, typer.Option("--regenerate", help="Write new probes even if cached ones fit.")
    ] = False,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Measure retrieval on your own index, no labels needed: recall@1, recall@k and MRR.

    The local model writes one question about each of N chunks picked by --seed; each
    question is searched and counts as found when a top-k hit overlaps its source passage.
    Probes are cached in the index directory and reused without loading the model unless
    --n, --seed, --preset or --model ask for a different set (or --regenerate). Every
    `rag ingest` that changes the index re-measures them and warns when recall@k falls by
    more than 0.05.

    Example:  rag eval probes --n 20 --preset fast
    """
    from rag.index import Index

    def work() -> int:
        loaded = load_cli_settings(preset, config, {}, sets)
        idx = Index(index, settings=loaded.settings)
        with progress_bar("writing probes") as bar:
            task = bar.add_task("probes", total=None)
            report = idx.probe(
                n, k, seed, model=model or (preset and loaded.settings.generation.model),
                regenerate=regenerate,
                on_progress=lambda done, total: bar.update(task, completed=done, total=total),
            )  # fmt: skip
        if as_json:
            print_json(report.to_dict())
            return 0
        _print_probes(report)
        return 0

    raise typer.Exit(run_command(work, debug))


def _print_probes(report: ProbeReport) -> None:
    import time

    from rich.markup import escape

    r, s = report.result, report.probe_set
    how = "written" if report.generated else "cached"
    out.print(
        f"{len(s.probes)} probes ({how}; {s.model}, seed {s.seed}) · {r.stale} stale · "
        f"{report.seconds:.1f} s"
    )
    out.print(f"recall@1 {r.recall_at_1:.3f}  recall@{r.k} {r.recall_at_k:.3f}  MRR {r.mrr:.3f}"
              f"  (on {r.count} probes)")  # fmt: skip
    p = report.previous
    if p is not None:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(p.measured_at))
        out.print(f"previous ({when}): recall@1 {p.recall_at_1:.3f}  recall@{p.k} "
                  f"{p.recall_at_k:.3f}  MRR {p.mrr:.3f}")  # fmt: skip
    if report.warning:
        err.print(f"[yellow]warning:[/] {escape(report.warning)}", markup=True)
    if r.stale:
        out.print(f"{r.stale} probes are stale (their documents changed or were removed); "
                  "--regenerate writes a new set")  # fmt: skip
    for miss in r.missed[:10]:
        out.print(f"  missed: {escape(miss['question'])}  [dim]({escape(miss['path'])})[/]",
                  markup=True)  # fmt: skip
    if len(r.missed) > 10:
        out.print(f"  … and {len(r.missed) - 10} more (see --json)")


def _command_line(
    dataset_dir: Path,
    modes: list[str] | None,
    chunk_tokens: list[int] | None,
    ks: list[int] | None,
    limit: int | None,
    out_dir: Path | None,
    baseline: Path | None,
    cache_dir: Path | None,
) -> str:
    """Rebuild the command that reproduces this run (options at their defaults left out)."""
    args = ["rag", "eval", "retrieval", str(dataset_dir)]
    if modes and tuple(modes) != DEFAULT_MODES:
        args += [a for m in modes for a in ("--mode", m)]
    args += [a for n in chunk_tokens or () for a in ("--chunk-tokens", str(n))]
    if ks and sorted(set(ks)) != [10, 100]:
        args += [a for n in ks for a in ("--k", str(n))]
    if limit is not None:
        args += ["--limit", str(limit)]
    if out_dir is not None:
        args += ["--out", str(out_dir)]
    if baseline is not None:
        args += ["--baseline", str(baseline)]
    if cache_dir is not None:
        args += ["--cache-dir", str(cache_dir)]
    return shlex.join(args)
