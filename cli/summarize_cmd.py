"""`rag summarize FILE` and `rag ask --document FILE`: read one whole document, not passages."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rag_cli.options import (
    DebugOption,
    IndexOption,
    JsonOption,
    LlmModelOption,
    LlmUrlOption,
    ModelOption,
    QuotesOption,
    StrictOption,
)
from rag_cli.output import out, print_json, progress_bar, run_command
from rag_cli.settings_options import ConfigOption, PresetOption, SetOption, load_cli_settings

if TYPE_CHECKING:
    from rag.index import Index

FileArgument = Annotated[
    Path,
    typer.Argument(
        help="An indexed file, as you ingested it (or a collection record: mail.mbox#<id>).",
        show_default=False,
    ),
]
StepTokensOption = Annotated[
    int | None,
    typer.Option(
        "--max-tokens",
        help="Longest text each map or reduce step may write. Default: 256 "
        "(answer.document_max_tokens); fewer when the context window is small.",
        show_default=False,
    ),
]


def summarize(
    file: FileArgument,
    index: IndexOption = None,
    preset: PresetOption = None,
    model: ModelOption = None,
    llm_url: LlmUrlOption = None,
    llm_model: LlmModelOption = None,
    max_tokens: StepTokensOption = None,
    strict: StrictOption = None,
    quotes: QuotesOption = False,
    config: ConfigOption = None,
    sets: SetOption = None,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Summarise one indexed document from all of its chunks, citing them as [n].

    The chunks are read in order, as many per step as fit the model's context window, and
    the partial summaries are combined until one is left; [n] is the document's n-th chunk.
    Each sentence is checked against the chunks it cites; one they do not support is marked
    [unsupported] (--strict leaves it out). A progress bar shows the steps on a terminal.
    Exit code 2 when the file is not in the index (`rag ingest` it first).

    Example:  rag summarize ~/docs/manual.md --quotes
    """

    def work() -> int:
        overrides = _overrides(model, llm_url, llm_model, max_tokens, strict)
        loaded = load_cli_settings(preset, config, overrides, sets)
        from rag.index import Index

        idx = Index(index, settings=loaded.settings)
        try:
            show_document(idx, file, None, as_json=as_json, quotes=quotes)
        finally:
            idx.close()
        return 0

    raise typer.Exit(run_command(work, debug))


def _overrides(
    model: str | None,
    llm_url: str | None,
    llm_model: str | None,
    max_tokens: int | None,
    strict: bool | None,
) -> dict[str, object]:
    return {"generation.model": model, "llm.url": llm_url, "llm.model": llm_model,
            "answer.document_max_tokens": max_tokens, "answer.strict": strict}  # fmt: skip


def show_document(
    idx: Index, file: Path | str, question: str | None, *, as_json: bool, quotes: bool
) -> None:
    """Read `file` whole with a progress bar (on a terminal), then print the result: the
    checked summary or answer with its cited chunks, or its --json shape."""
    from rag_cli.answer_display import render_summary

    label = "reading the document" if question else "summarising"
    with progress_bar(label) as bar:
        task = bar.add_task(label, total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        summary = idx.summarize(file, question=question, progress=progress)
    if as_json:
        print_json(summary.to_dict())
    else:
        out.print(render_summary(summary, quotes))
