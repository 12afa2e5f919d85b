"""Background ingest jobs: one at a time, in order, each with progress a client can poll."""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import RagError

log = logging.getLogger("rag.serve")

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
KEEP_JOBS = 200  # finished jobs remembered for GET /jobs


@dataclass
class Job:
    """One ingest, as `GET /jobs/{id}` shows it: of uploaded files (`source` "upload") or of
    watched folders after a batch of changes ("watch"). `ended` is set once it has ended."""

    id: str
    paths: list[Path]
    source: str = "upload"
    state: str = QUEUED
    total: int = 0
    done: int = 0
    current: str | None = None
    chunks: int = 0
    report: dict | None = None
    error: str | None = None
    created: float = field(default_factory=time.time)
    finished: float | None = None
    exception: RagError | None = field(default=None, repr=False)  # why it failed, to re-raise
    ended: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {
            "id": self.id, "state": self.state, "source": self.source,
            "files": [p.name for p in self.paths],
            "total": self.total, "done": self.done, "current": self.current,
            "chunks": self.chunks, "report": self.report, "error": self.error,
            "created": self.created, "finished": self.finished,
        }  # fmt: skip


class JobProgress:
    """An `IngestProgress` that writes into its job."""

    def __init__(self, job: Job) -> None:
        self.job = job

    def start(self, total_files: int) -> None:
        self.job.total = total_files

    def file_done(self, path: str) -> None:
        self.job.done += 1
        self.job.current = Path(path).name

    def ocr_page(self, path: str, done: int, total: int) -> None:
        name = Path(path).name
        self.job.current = f"{name} (OCR page {done}/{total})" if done < total else name

    def chunks_embedded(self, count: int) -> None:
        self.job.chunks += count


class IngestJobs:
    """Runs `work(job)` for each submitted job on one background thread."""

    def __init__(self, work: Callable[[Job], dict]) -> None:
        self._work = work
        self._jobs: dict[str, Job] = {}
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="rag-ingest", daemon=True)
        self._thread.start()

    def submit(self, paths: list[Path], source: str = "upload") -> Job:
        with self._lock:
            job = Job(f"job-{next(self._ids)}", paths, source, total=len(paths))
            self._jobs[job.id] = job
            finished = [j for j in self._jobs.values() if j.finished is not None]
            for old in finished[: max(0, len(self._jobs) - KEEP_JOBS)]:
                del self._jobs[old.id]
        self._queue.put(job)
        return job

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def all(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    @property
    def active(self) -> int:
        return sum(1 for j in self.all() if j.state in (QUEUED, RUNNING))

    def close(self, timeout: float = 5.0) -> None:
        """Stop after the running job (queued ones are not started)."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            job.state = RUNNING
            try:
                job.report = self._work(job)
                job.state = FAILED if job.report.get("error") else DONE
                job.error = job.report.get("error")
            except RagError as exc:
                job.state, job.error, job.exception = FAILED, str(exc), exc
            except Exception as exc:  # a bug must not kill the worker: the job says what broke
                log.exception("ingest %s failed", job.id)
                job.state, job.error = FAILED, f"{type(exc).__name__}: {exc}"
            job.current = None
            job.finished = time.time()
            job.ended.set()
