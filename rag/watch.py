"""Watched folders: keep an index in step with files and folders as they change.

`watch_and_ingest` watches the paths (with watchfiles) and, once they have been quiet for
`ingest.watch_debounce_ms`, runs the usual incremental ingest over all of them for the
burst of changes, so additions, edits, deletions and renames all follow with the ingest's
crash safety. Changes that cannot change the index start no batch: unsupported and hidden
files (the rules of `rag.discover`), the index's own directory, and deletions of paths
nothing indexed lies under.

The writer lock is taken per batch (by `Index.ingest`), not for the whole watch: between
batches other writers (`rag serve`'s delete, `rag eval probes`, a one-off `rag ingest`) can
still write. A batch that finds the index locked is retried with a back-off.

>>> stop = threading.Event()  # set it (from a signal handler, another thread) to stop
>>> watch_and_ingest(Index("idx"), ["docs/"], on_batch=print, stop_event=stop)  # doctest: +SKIP
"""

from __future__ import annotations

import bisect
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from rag.discover import absolute, discover
from rag.errors import ConfigError, IndexLockedError, RagError, WatchError
from rag.ingest import FailedFile, IngestReport
from rag.loaders import kind_of

if TYPE_CHECKING:
    from watchfiles import Change

    from rag.index import Index

log = logging.getLogger(__name__)

STEP_MS = 50  # watchfiles hands raw events over once they pause this long…
GROUP_MS = 200  # …or after this long at most
READY_MS = 200  # its first (empty) yield after this long says the watch is live
TICK_S = 0.1  # how often the batch loop looks at the stop event while nothing happens
MAX_WAIT_FACTOR = 10  # changes that never pause are ingested after this many quiet periods
LOCKED_RETRY_S = (1.0, 30.0)  # first and longest wait when another writer holds the index
SAMPLE = 5  # changed paths kept on a batch, for showing

Runner = Callable[[list[str]], IngestReport]


class WatchStopped(Exception):
    """Raise from a batch runner to end watching (e.g. the server is closing)."""


@dataclass
class WatchBatch:
    """One debounced batch: the changes that started it and what re-ingesting did.

    `initial` is the sync of the whole paths when watching starts. `error` says why the
    batch did not run (`report` is None; with `retrying`, the index was locked by another
    writer and the batch runs again after a back-off). Every batch ingests the whole paths,
    so `report.failed` repeats files that still fail; `new_failures` are those not failing
    the same way in the batch before, or changed in this one.
    """

    number: int  # 0 for the first sync, then 1, 2, … (a locked retry counts as one)
    started: float  # time.time()
    initial: bool = False
    changes: int = 0  # paths changed
    paths: list[str] = field(default_factory=list)  # up to SAMPLE of them
    report: IngestReport | None = None
    error: str | None = None
    seconds: float = 0.0
    retrying: bool = False
    new_failures: list[FailedFile] = field(default_factory=list)

    def describe(self) -> str:
        """One line: "added 1 · updated 0 · removed 2 · failed 0 (0.4 s)", or the error."""
        if self.report is None:
            return f"not indexed: {self.error}"
        r = self.report
        line = (f"added {r.added} · updated {r.updated} · removed {r.removed} · "
                f"failed {len(r.failed)} ({self.seconds:.1f} s)")  # fmt: skip
        return line + (f"; stopped: {r.error}" if r.error else "")

    def to_dict(self) -> dict:
        r = self.report
        return {
            "number": self.number, "initial": self.initial, "started": self.started,
            "seconds": self.seconds, "changes": self.changes, "paths": self.paths,
            "added": r.added if r else 0, "updated": r.updated if r else 0,
            "removed": r.removed if r else 0, "unchanged": r.unchanged if r else 0,
            "failed": [{"path": f.path, "error": f.error} for f in r.failed] if r else [],
            "new_failures": [f.path for f in self.new_failures],
            "error": self.error or (r.error if r else None),
        }  # fmt: skip


@dataclass
class WatchSummary:
    """How watching ended: the roots, batches run, and changes seen but not ingested."""

    roots: list[str]
    batches: int = 0
    pending: int = 0


@dataclass(frozen=True)
class WatchRoots:
    """The paths to keep in step: folders (watched recursively) and single files."""

    dirs: tuple[str, ...]
    files: tuple[str, ...]

    @classmethod
    def of(cls, paths: Iterable[str | Path]) -> WatchRoots:
        """Check every path exists; ConfigError naming the first that does not."""
        dirs: list[str] = []
        files: list[str] = []
        for given in paths:
            root = absolute(given)
            if os.path.isdir(root):
                found = dirs
            elif os.path.lexists(root):
                found = files
            else:
                raise ConfigError(f"{root}: no such file or directory; only existing files "
                                  "and folders can be watched")  # fmt: skip
            if root not in found:
                found.append(root)
        if not dirs and not files:
            raise ConfigError("give at least one file or folder to watch")
        return cls(tuple(dirs), tuple(files))

    @property
    def all(self) -> list[str]:
        return [*self.dirs, *self.files]

    def targets(self) -> tuple[list[str], list[str]]:
        """(folders to watch recursively, folders to watch without their subfolders).

        A single file is watched through its folder: editors save by writing a new file
        over the old one, and a watch on the file itself would end with the old one.
        """
        recursive = [d for d in self.dirs if not any(_inside(d, o) for o in self.dirs if o != d)]
        flat: list[str] = []
        for file in self.files:
            parent = os.path.dirname(file)
            if parent not in flat and not any(_inside(parent, d) for d in recursive):
                flat.append(parent)
        return recursive, flat


class ChangeFilter:
    """watchfiles' `watch_filter`: True for a change that can change the index."""

    def __init__(self, roots: WatchRoots, index_dir: str | Path, include_hidden: bool) -> None:
        self.roots = roots
        self.dirs = sorted(roots.dirs, key=len, reverse=True)  # the innermost root first
        self.index_dir = absolute(index_dir)
        self.include_hidden = include_hidden
        self.indexed: list[str] = []  # sorted keys of the indexed documents

    def __call__(self, change: Change, path: str) -> bool:
        try:
            return self._matters(int(change), os.path.normpath(path))
        except Exception:  # never let a filter bug end the watch: look, to be safe
            log.debug("watch filter failed on %s", path, exc_info=True)
            return True

    def _matters(self, change: int, path: str) -> bool:
        if _inside(path, self.index_dir):
            return False
        deleted = change == _DELETED
        if path in self.roots.files:  # named on its own: any supported kind, hidden or not
            return self.holds(path) if deleted else kind_of(Path(path)) is not None
        root = next((d for d in self.dirs if path != d and _inside(path, d)), None)
        if root is None:
            return False
        parts = os.path.relpath(path, root).split(os.sep)
        if not self.include_hidden and any(part.startswith(".") for part in parts):
            return False
        if deleted:
            return self.holds(path)
        if os.path.isdir(path):  # a folder moved in: its files bring no events of their own
            found = discover([path], include_hidden=self.include_hidden)
            return change == _ADDED and bool(found.files)
        kind = kind_of(Path(path))
        return kind is not None and kind != "jsonl"  # collections only when named

    def holds(self, path: str) -> bool:
        """Whether an indexed document is `path`, one of its parts, or lies under it."""
        keys = self.indexed
        i = bisect.bisect_left(keys, path)
        if i < len(keys) and keys[i] == path:
            return True
        for prefix in (path + "#", path + os.sep):
            i = bisect.bisect_left(keys, prefix)
            if i < len(keys) and keys[i].startswith(prefix):
                return True
        return False


_ADDED, _DELETED = 1, 3  # watchfiles.Change values


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def watch_and_ingest(
    index: Index,
    paths: Sequence[str | Path],
    *,
    on_batch: Callable[[WatchBatch], None] | None = None,
    stop_event: threading.Event | None = None,
    sync_first: bool = True,
    debounce_ms: int | None = None,
    run: Runner | None = None,
) -> WatchSummary:
    """Keep `index` in step with `paths` until `stop_event` is set; return how it ended.

    With `sync_first`, the whole paths are ingested once as soon as the watch is live (so
    nothing changed meanwhile is missed); then each debounced burst of changes runs one
    batch: `run(roots)` (default: `index.ingest(roots)`) over all the paths. `on_batch`
    gets every batch. Stopping takes effect between batches: a batch running when the event
    is set finishes first; changes not yet ingested are counted in `pending`.

    `debounce_ms` (default `ingest.watch_debounce_ms`) is the quiet time a burst needs;
    changes that never pause are ingested after ten such periods anyway. A batch's
    RagError is put on the batch and watching goes on (a locked index is retried); the
    first sync's is raised, except a locked index.
    """
    stop = stop_event or threading.Event()
    settings = index.settings.ingest
    debounce = (settings.watch_debounce_ms if debounce_ms is None else debounce_ms) / 1000
    roots = WatchRoots.of(paths)
    accept = ChangeFilter(roots, index.path, settings.include_hidden)
    accept.indexed = _indexed_keys(index, [])
    ingest: Runner = run or (lambda given: index.ingest(given))
    summary = WatchSummary(roots.all)
    pending: set[tuple[int, str]] = set()
    failing: set[FailedFile] = set()  # what the last batch that ran found failing
    first: float | None = None  # when the oldest pending change was seen
    due: float | None = 0.0 if sync_first else None  # when the next batch runs
    initial, backoff = sync_first, LOCKED_RETRY_S[0]
    with _Watchers(roots, accept) as watchers:
        watchers.wait_ready(stop)
        while not stop.is_set():
            now = time.monotonic()
            wait = TICK_S if due is None else min(TICK_S, max(0.0, due - now))
            found = watchers.get(wait)
            now = time.monotonic()
            if found:
                pending |= found
                first = now if first is None else first
                quiet = min(now + debounce, first + debounce * MAX_WAIT_FACTOR)
                due = max(quiet, due or 0.0)  # never before a locked retry is due
            if due is None or now < due or stop.is_set():
                continue
            try:
                number = summary.batches + (0 if sync_first else 1)  # the first sync is 0
                batch = _run_batch(ingest, roots, pending, number, initial, failing)
            except WatchStopped:
                break
            summary.batches += 1
            failing = set(batch.report.failed) if batch.report else failing
            if not batch.retrying:
                accept.indexed = _indexed_keys(index, accept.indexed)
            if on_batch is not None:
                on_batch(batch)
            if batch.retrying:
                due = time.monotonic() + backoff
                backoff = min(backoff * 2, LOCKED_RETRY_S[1])
            else:
                pending, first, due, initial = set(), None, None, False
                backoff = LOCKED_RETRY_S[0]
    summary.pending = len({path for _, path in pending})
    return summary


def _run_batch(
    ingest: Runner,
    roots: WatchRoots,
    pending: set[tuple[int, str]],
    number: int,
    initial: bool,
    failing: set[FailedFile],
) -> WatchBatch:
    changed = sorted({path for _, path in pending})
    batch = WatchBatch(number, time.time(), initial, len(changed), changed[:SAMPLE])
    started = time.perf_counter()
    try:
        batch.report = ingest(roots.all)
    except IndexLockedError as exc:
        batch.error, batch.retrying = f"{exc}; retrying", True
    except RagError as exc:
        if initial:
            raise
        batch.error = str(exc)
    batch.seconds = round(time.perf_counter() - started, 3)
    if batch.report is not None:
        batch.new_failures = [f for f in batch.report.failed
                              if f not in failing or _touched(f.path, changed)]  # fmt: skip
    return batch


def _touched(where: str, changed: list[str]) -> bool:
    """Whether a failure (a file, `file#id` or `file line 3`) lies at or under a changed path."""
    ends = (os.sep, "#", " line ")
    return any(where == p or where.startswith(tuple(p + e for e in ends)) for p in changed)


def _indexed_keys(index: Index, fallback: list[str]) -> list[str]:
    """The indexed document keys, sorted (what deletions are checked against)."""
    if not index.pipeline.exists():
        return []
    try:
        return sorted(index.pipeline.store().manifest())
    except RagError:
        log.debug("could not read the manifest of %s", index.path, exc_info=True)
        return fallback


class _Watchers:
    """watchfiles watches, each on its own thread, handing over filtered changes."""

    def __init__(self, roots: WatchRoots, accept: ChangeFilter) -> None:
        recursive, flat = roots.targets()
        self._out: queue.Queue[set[tuple[int, str]] | WatchError] = queue.Queue()
        self._stop = threading.Event()
        self._threads: list[tuple[threading.Thread, threading.Event]] = []
        for targets, deep in ((recursive, True), (flat, False)):
            if targets:
                ready = threading.Event()
                thread = threading.Thread(target=self._pump, args=(targets, deep, accept, ready),
                                          name="rag-watch", daemon=True)  # fmt: skip
                self._threads.append((thread, ready))

    def __enter__(self) -> _Watchers:
        for thread, _ in self._threads:
            thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()  # each watch sees it within STEP_MS
        for thread, _ in self._threads:
            thread.join(5)

    def wait_ready(self, stop: threading.Event) -> None:
        """Return once every watch is live (or `stop` is set); raise WatchError if one failed."""
        for _, ready in self._threads:
            while not ready.wait(TICK_S) and not stop.is_set():
                pass
        self._raise_failure()

    def get(self, timeout: float) -> set[tuple[int, str]]:
        """The changes handed over within `timeout` seconds (empty if none)."""
        try:
            found = self._out.get(timeout=timeout)
        except queue.Empty:
            return set()
        if isinstance(found, WatchError):
            raise found
        while True:  # take whatever else is already there
            try:
                more = self._out.get_nowait()
            except queue.Empty:
                return found
            if isinstance(more, WatchError):
                raise more
            found |= more

    def _raise_failure(self) -> None:
        try:
            found = self._out.get_nowait()
        except queue.Empty:
            return
        if isinstance(found, WatchError):
            raise found
        self._out.put(found)

    def _pump(
        self, targets: list[str], recursive: bool, accept: ChangeFilter, ready: threading.Event
    ) -> None:
        import watchfiles

        try:
            for found in watchfiles.watch(
                *targets, watch_filter=accept, debounce=GROUP_MS, step=STEP_MS,
                stop_event=self._stop, rust_timeout=READY_MS, yield_on_timeout=True,
                recursive=recursive, raise_interrupt=False, ignore_permission_denied=True,
            ):  # fmt: skip
                ready.set()
                if found:
                    self._out.put({(int(change), path) for change, path in found})
        except Exception as exc:  # the OS refused the watch (no such folder, too many watches)
            log.debug("watching %s failed", targets, exc_info=True)
            self._out.put(WatchError(
                f"watching {', '.join(targets)} failed: {exc}; on Linux, raise "
                "fs.inotify.max_user_watches (sysctl) or set WATCHFILES_FORCE_POLLING=1"
            ))  # fmt: skip
        finally:
            ready.set()
