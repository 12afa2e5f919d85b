"""`rag ingest --watch`: the first ingest, then one line per batch of changes until stopped."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from rag_cli.output import IngestBar, err, error, out

if TYPE_CHECKING:
    from rag.index import Index
    from rag.ingest import IngestReport
    from rag.watch import WatchBatch

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def ingest_and_watch(
    idx: Index,
    paths: Sequence[Path],
    as_json: bool,
    print_report: Callable[[IngestReport, Path], None],
) -> int:
    """Ingest `paths`, then keep the index in step until SIGINT or SIGTERM; exit code 0.

    The first signal stops between batches (a batch running finishes); a second one stops
    at once (KeyboardInterrupt: what was committed is kept).
    """
    from rag.watch import watch_and_ingest

    stop = threading.Event()
    busy = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        if busy.is_set():  # os.write: safe wherever the signal lands
            os.write(2, b"stopping after this batch (press Ctrl-C again to stop now)\n")

    def run(roots: list[str]) -> IngestReport:
        busy.set()
        try:
            with IngestBar() as bar:
                return idx.ingest(roots, progress=bar)
        finally:
            busy.clear()

    def on_batch(batch: WatchBatch) -> None:
        if as_json:
            data = {**batch.to_dict(), "index": str(idx.path)}
            sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
            sys.stdout.flush()
        elif batch.initial and batch.report is not None:
            print_report(batch.report, idx.path)
        else:
            _print_batch(batch)
        if batch.initial and batch.report is not None:
            if batch.report.error:
                error(batch.report.error)
            folders = ", ".join(str(p) for p in paths)
            err.print(f"watching {folders} for changes (Ctrl-C to stop)", markup=False)

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    try:
        summary = watch_and_ingest(idx, paths, on_batch=on_batch, stop_event=stop, run=run)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    left = (f"; {summary.pending} changes not indexed yet — rerun rag ingest to pick them up"
            if summary.pending else "")  # fmt: skip
    err.print(f"stopped watching ({summary.batches} batches{left})", markup=False)
    return 0


def _print_batch(batch: WatchBatch) -> None:
    """`[12:03:04] batch 3: added 1 · updated 0 · removed 0 · failed 1 (0.4 s)`, then each
    failure on its own line."""
    from rich.markup import escape

    stamp = time.strftime("%H:%M:%S", time.localtime(batch.started))
    out.print(f"[{stamp}] batch {batch.number}: {batch.describe()}", markup=False)
    report = batch.report
    if report is None:
        return
    for warning in report.warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}", markup=True)
    for failure in batch.new_failures:  # a file still failing the same way is told once
        err.print(f"[red]failed:[/] {escape(failure.path)}: {escape(failure.error)}", markup=True)
    if report.error:
        error(report.error)
