"""Printing helpers shared by the commands: consoles, JSON, errors and progress bars."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    """Write one JSON document to stdout (nothing else goes to stdout with --json)."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def error(message: str) -> None:
    """Print a plain-text error line (brackets such as 'rag[ray]' are shown, not markup)."""
    from rich.markup import escape

    err.print(f"[bold red]error:[/] {escape(message)}", markup=True)


def progress_bar(label: str, *extra: ProgressColumn) -> Progress:
    """A transient progress bar on stderr, shown only on a terminal.

    Columns: the bold label, the bar, done/total, any `extra` columns, elapsed time and ETA.
    """
    return Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        *extra,
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


class IngestBar:
    """A rich progress bar over files, with chunks embedded and chunks/s."""

    def __init__(self) -> None:
        self.chunks = 0
        self._progress = progress_bar(
            "indexing",
            TextColumn(
                "files · {task.fields[chunks]} chunks · {task.fields[rate]}{task.fields[ocr]}"
            ),
        )
        self._task = self._progress.add_task("ingest", total=None, chunks=0, rate="", ocr="")

    def __enter__(self) -> IngestBar:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def start(self, total_files: int) -> None:
        self._progress.update(self._task, total=total_files)

    def file_done(self, path: str) -> None:
        self._progress.advance(self._task)

    def ocr_page(self, path: str, done: int, total: int) -> None:
        """Show OCR moving through a scanned document's pages; cleared when it is done."""
        ocr = f" · OCR {Path(path).name} page {done}/{total}" if done < total else ""
        self._progress.update(self._task, ocr=ocr)

    def chunks_embedded(self, count: int) -> None:
        self.chunks += count
        elapsed = self._progress.tasks[0].elapsed or 0.0
        rate = f"{self.chunks / elapsed:.0f} chunks/s" if elapsed > 0 else ""
        self._progress.update(self._task, chunks=self.chunks, rate=rate)


USAGE_EXIT = 2


def run_command(work: Callable[[], int], debug: bool) -> int:
    """Run a command body; turn user-facing errors into one line and an exit code.

    Usage errors (bad options, missing index or dataset) exit 2; other problems the user can
    act on exit 1; `--debug` re-raises them with their traceback.
    """
    from rag.errors import ConfigError, DatasetError, IndexNotFoundError, RagError

    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, stream=sys.stderr)
    try:
        return int(work())
    except (ConfigError, DatasetError, IndexNotFoundError) as exc:
        if debug:
            raise
        error(str(exc))
        return USAGE_EXIT
    except RagError as exc:
        if debug:
            raise
        error(str(exc))
        return 1
    except KeyboardInterrupt:
        error("interrupted; everything committed so far is kept — rerun to finish")
        return 130
