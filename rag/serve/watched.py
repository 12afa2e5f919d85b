"""`rag serve --watch DIR`: watched folders whose batches of changes become ingest jobs.

Each debounced batch (and one sync of the folders at start-up) is submitted to the same
job queue as an upload (`POST /ingest`), so questions are answered from the index as it was
until the job is done, and the readers swap to the new generation after it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.errors import RagError
from rag.ingest import IngestReport
from rag.serve.jobs import IngestJobs
from rag.watch import WatchBatch, WatchRoots, WatchStopped, watch_and_ingest

if TYPE_CHECKING:
    from rag.index import Index

log = logging.getLogger("rag.serve")
JOB_POLL_S = 0.1


class WatchedFolders:
    """Watch `folders` on a thread; each batch of changes is an ingest job in `jobs`.

    `index` is the served index (its path is not watched, its settings give the debounce and
    the hidden-file rule). `start()` checks the folders exist (ConfigError if not).
    """

    def __init__(self, index: Index, folders: Sequence[str | Path], jobs: IngestJobs) -> None:
        self.roots = WatchRoots.of(folders)
        self._index = index
        self._jobs = jobs
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.last_batch: WatchBatch | None = None
        self.last_job: str | None = None
        self.error: str | None = None  # why watching ended before the server stopped

    def start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="rag-serve-watch", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop watching: a batch's job that is running finishes in the job queue."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def to_dict(self) -> dict[str, Any]:
        """What /status and GET /jobs show under "watch"."""
        last = self.last_batch
        return {
            "folders": self.roots.all, "running": self.running, "batches": self.batches,
            "last_batch": last.to_dict() if last else None, "last_job": self.last_job,
            "error": self.error,
        }  # fmt: skip

    def _watch(self) -> None:
        try:
            watch_and_ingest(self._index, self.roots.all, on_batch=self._on_batch,
                             stop_event=self._stop, run=self._run_job)  # fmt: skip
        except RagError as exc:
            self.error = str(exc)
            log.warning(json.dumps({"event": "watch_stopped", "error": self.error}))
        except Exception as exc:  # a bug: say so in /status rather than die silently
            self.error = f"unexpected {type(exc).__name__}: {exc}"
            log.exception("watching %s failed", self.roots.all)
        finally:
            self._index.close()

    def _run_job(self, roots: list[str]) -> IngestReport:
        """Submit the batch as an ingest job and wait for it to end."""
        job = self._jobs.submit([Path(r) for r in roots], source="watch")
        self.last_job = job.id
        while not job.ended.wait(JOB_POLL_S):
            if self._stop.is_set():
                raise WatchStopped
        if job.exception is not None:
            raise job.exception
        if job.report is None:
            raise RagError(f"ingest {job.id} failed: {job.error}")
        return IngestReport.from_dict(job.report)

    def _on_batch(self, batch: WatchBatch) -> None:
        self.batches += 1
        self.last_batch = batch
        line = {"event": "watch_batch", "job": self.last_job, **batch.to_dict()}
        log.info(json.dumps(line, default=str))
