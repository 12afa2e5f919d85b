"""Watched folders: real watches on temp folders (rag.watch), `rag ingest --watch` as a real
process stopped by SIGINT, and `rag serve --watch` over HTTP. Waits poll with a deadline."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from rag import Index
from rag.store import Store, write_lock
from rag.watch import ChangeFilter, WatchBatch, WatchRoots, WatchSummary, watch_and_ingest

ROOT = Path(__file__).resolve().parents[1]
DEBOUNCE_MS = 300
DEADLINE_S = 90.0  # a deadline, not a sleep: generous for a loaded CI machine
FIRST_S = 120.0  # the first sync of a session loads the embedder
ADDED, MODIFIED, DELETED = 1, 2, 3  # watchfiles.Change


def wait_for(check: Callable[[], object], what: str, timeout: float = DEADLINE_S) -> object:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Watching:
    """A library-level watch on a thread, its batches, and its summary once stopped."""

    def __init__(self, index: Index, paths: list[Path]) -> None:
        self.index = index
        self.batches: list[WatchBatch] = []
        self.stop = threading.Event()
        self.summary: WatchSummary | None = None
        self.thread = threading.Thread(target=self._run, args=(paths,), daemon=True)

    def _run(self, paths: list[Path]) -> None:
        self.summary = watch_and_ingest(self.index, paths, on_batch=self.batches.append,
                                        stop_event=self.stop, debounce_ms=DEBOUNCE_MS)  # fmt: skip

    def changes(self) -> list[WatchBatch]:
        """The batches after the first sync."""
        return [b for b in self.batches if not b.initial]

    def next_batch(self, seen: int, timeout: float = DEADLINE_S) -> WatchBatch:
        """Wait for a batch after the first `seen` ones (counting the first sync)."""
        wait_for(lambda: len(self.batches) > seen, f"batch {seen}", timeout)
        return self.batches[seen]


@contextmanager
def watching(index: Index, *paths: Path) -> Iterator[Watching]:
    """Watch `paths` until the block ends; the first sync is done on entry."""
    watch = Watching(index, list(paths))
    watch.thread.start()
    try:
        watch.next_batch(0, timeout=FIRST_S)
        yield watch
    finally:
        watch.stop.set()
        watch.thread.join(10)
    assert not watch.thread.is_alive(), "the watch did not end after stop_event was set"


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "kestrel.md").write_text("# Kestrel\n\nThe Kestrel K2 station logs wind speed.\n")
    return folder


@pytest.fixture
def index(tmp_path: Path, embedder) -> Index:
    return Index(tmp_path / "idx", preset="tiny", embedder=embedder)


def indexed(index: Index) -> set[str]:
    """The indexed keys, read over a connection of its own (the watch may be writing)."""
    with closing(Store(index.path)) as store:
        return set(store.manifest())


def texts(index: Index, query: str) -> str:
    return " ".join(hit.text for hit in index.search(query, k=5, mode="bm25"))


# ---- the filter, without a model ------------------------------------------------------------


def test_filter_keeps_only_changes_that_can_change_the_index(tmp_path: Path):
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    named = tmp_path / "people.jsonl"
    named.write_text('{"id": "1", "text": "x"}\n')
    moved_in = docs / "moved"
    moved_in.mkdir()
    (moved_in / "note.txt").write_text("a note")
    (docs / "empty").mkdir()
    accept = ChangeFilter(WatchRoots.of([docs, named]), docs / "idx", include_hidden=False)
    accept.indexed = sorted([str(docs / "old.md"), str(docs / "sub" / "a.txt"), f"{named}#1"])

    assert accept(ADDED, str(docs / "new.md")) and accept(MODIFIED, str(docs / "sub" / "b.pdf"))
    assert not accept(ADDED, str(docs / "notes.xyz")), "unsupported kind"
    assert not accept(MODIFIED, str(docs / ".draft.md")), "hidden file"
    assert not accept(ADDED, str(docs / ".git" / "x.txt")), "inside a hidden folder"
    assert not accept(MODIFIED, str(docs / "idx" / "rag.sqlite")), "the index's own directory"
    assert not accept(ADDED, str(docs / "idx" / "uploads" / "up.txt"))
    assert not accept(ADDED, str(docs / "c.jsonl")), "collections only when named"
    assert accept(MODIFIED, str(named)), "a named collection"
    assert not accept(ADDED, str(tmp_path / "elsewhere.txt")), "outside every root"
    assert accept(DELETED, str(docs / "old.md")) and accept(DELETED, str(docs / "sub"))
    assert accept(DELETED, str(named)), "its records are indexed"
    assert not accept(DELETED, str(docs / "never-indexed.md")), "nothing indexed there"
    assert not accept(DELETED, str(docs / "ol")), "a prefix of an indexed path is not it"
    assert accept(ADDED, str(moved_in)), "a folder moved in with files"
    assert not accept(ADDED, str(docs / "empty")) and not accept(MODIFIED, str(moved_in))


def test_watching_a_missing_path_is_refused(tmp_path: Path):
    from rag.errors import ConfigError

    with pytest.raises(ConfigError, match="no such file or directory"):
        WatchRoots.of([tmp_path / "nope"])


# ---- real watches ---------------------------------------------------------------------------


def test_added_edited_renamed_and_deleted_files_follow(docs: Path, index: Index):
    with watching(index, docs) as watch:
        assert watch.batches[0].report is not None and watch.batches[0].report.added == 1
        osprey = docs / "osprey.txt"
        osprey.write_text("The osprey nest camera records at dawn, code OSP-4417.")
        batch = watch.next_batch(1)
        assert batch.report is not None and batch.report.added == 1, batch
        assert str(osprey) in batch.paths
        assert "OSP-4417" in texts(index, "osprey nest camera OSP-4417")

        osprey.write_text("The osprey nest camera now records at dusk, code OSP-9902.")
        batch = watch.next_batch(2)
        assert batch.report is not None and batch.report.updated == 1, batch
        found = texts(index, "osprey nest camera code")
        assert "OSP-9902" in found and "OSP-4417" not in found

        renamed = docs / "birds" / "osprey.txt"
        renamed.parent.mkdir()
        osprey.rename(renamed)
        wait_for(lambda: str(renamed) in indexed(index) and str(osprey) not in indexed(index),
                 "the rename to reach the index")  # fmt: skip

        renamed.unlink()
        wait_for(lambda: str(renamed) not in indexed(index), "the deletion to reach the index")
        assert indexed(index) == {str(docs / "kestrel.md")}
        assert "OSP-9902" not in texts(index, "osprey nest camera code")
    assert watch.summary is not None and watch.summary.pending == 0


def test_a_burst_of_writes_is_one_batch(docs: Path, index: Index):
    with watching(index, docs) as watch:
        for n in range(5):
            (docs / f"burst{n}.txt").write_text(f"Burst note {n} about the heron colony.")
            time.sleep(0.05)
        wait_for(lambda: len(watch.changes()) >= 1, "the burst's batch")
        time.sleep(DEBOUNCE_MS * 3 / 1000)  # a second batch would have started by now
        added = [b.report.added for b in watch.changes() if b.report is not None]
        assert 1 <= len(watch.changes()) <= 2 and sum(added) == 5, watch.changes()


def test_unsupported_hidden_and_index_files_start_no_batch(tmp_path: Path, docs: Path, embedder):
    index = Index(docs / "idx", preset="tiny", embedder=embedder)  # inside the watched folder
    with watching(index, docs) as watch:
        (docs / "data.xyz").write_text("not a supported kind")
        (docs / ".draft.md").write_text("# hidden\n\nA hidden draft.")
        (docs / "stray.jsonl").write_text('{"id": "1", "text": "a collection not named"}\n')
        (docs / "idx" / "uploads").mkdir()
        (docs / "idx" / "uploads" / "notes.txt").write_text("inside the index directory")
        time.sleep(DEBOUNCE_MS * 4 / 1000)
        assert watch.changes() == []
        (docs / "real.md").write_text("# Real\n\nThe real note about grebes.")  # still watching
        batch = watch.next_batch(1)
        assert batch.report is not None and batch.report.error is None
        assert (batch.changes, batch.paths) == (1, [str(docs / "real.md")])
        assert str(docs / "real.md") in indexed(index)


def test_a_locked_index_is_retried_and_stop_releases_the_lock(docs: Path, index: Index, embedder):
    with watching(index, docs) as watch:
        with write_lock(index.path, "another writer"):  # as another process would hold it
            (docs / "wren.txt").write_text("The wren survey counts 31 nests.")
            batch = watch.next_batch(1)
            assert batch.retrying and batch.report is None and "another writer" in batch.error
        retried = watch.next_batch(2)  # the back-off starts at 1 s
        assert retried.report is not None and retried.report.added == 1, retried
        assert str(docs / "wren.txt") in indexed(index)
    assert not watch.thread.is_alive()
    other = Index(index.path, preset="tiny", embedder=embedder)  # the lock is free again
    (docs / "wren.txt").unlink()
    assert other.ingest([docs]).removed == 1


# ---- rag ingest --watch, as a real process ----------------------------------------------------


class Lines:
    """A child process's output lines (stdout and stderr together), read on a thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert proc.stdout is not None
        self._thread = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def wait(self, needle: str, timeout: float) -> str:
        """The first line holding `needle`; fail showing the output so far after `timeout`."""
        try:
            found = wait_for(lambda: next((x for x in self.lines if needle in x), None),
                             repr(needle), timeout)  # fmt: skip
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the output:\n" + "\n".join(self.lines)) from None
        return str(found)

    def text(self) -> str:
        self._thread.join(5)
        return "\n".join(self.lines)


def test_rag_ingest_watch_indexes_changes_and_stops_cleanly_on_sigint(
    tmp_path: Path, docs: Path, isolated_home: Path
):
    paths = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "RAG_HOME": str(isolated_home), "HF_HUB_OFFLINE": "1", "PYTHONPATH": paths}
    command = [sys.executable, "-m", "rag_cli", "ingest", str(docs), "--index",
               str(tmp_path / "idx"), "--preset", "tiny", "--watch",
               "--set", f"ingest.watch_debounce_ms={DEBOUNCE_MS}"]  # fmt: skip
    proc = subprocess.Popen(command, cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)  # fmt: skip
    try:
        out = Lines(proc)
        out.wait("watching", timeout=FIRST_S)  # the first ingest loads the embedder
        assert any(line.startswith("added 1 ·") for line in out.lines), out.lines
        (docs / "plover.txt").write_text("The plover count reached 58 this spring.")
        line = out.wait("batch 1:", timeout=DEADLINE_S)
        assert "added 1 · updated 0 · removed 0 · failed 0" in line, line
        broken = "failed: " + str(docs / "broken.pdf")
        (docs / "broken.pdf").write_bytes(b"%PDF-1.4 not really a pdf")
        out.wait("batch 2:", timeout=DEADLINE_S)
        out.wait(broken, timeout=5)
        (docs / "stint.txt").write_text("The stint passed through in May.")
        assert "added 1 · updated 0 · removed 0 · failed 1" in out.wait("batch 3:", DEADLINE_S)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, out.text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = out.text()
    assert "stopped watching (4 batches)" in text, text
    assert sum(broken in line for line in out.lines) == 1, "a file still failing is told once"
    lock = tmp_path / "idx" / "lock"
    with write_lock(lock.parent, "test"):  # released
        pass


# ---- rag serve --watch -----------------------------------------------------------------------


def test_rag_serve_watch_makes_an_added_file_searchable(tmp_path: Path, docs: Path, embedder):
    import httpx2 as httpx

    from rag.serve import RagService, create_app
    from rag.settings import Settings
    from tests.live_app import get_json, running
    from tests.scripted_model import ScriptedChatModel

    settings = Settings().replace(**{"ingest.watch_debounce_ms": DEBOUNCE_MS,
                                     "serve.cache": False})  # fmt: skip
    service = RagService(tmp_path / "index", settings, preset="test",
                         chat_model=ScriptedChatModel(), embedder=embedder,
                         watch=[docs])  # fmt: skip
    service.start()
    with running(create_app(service)) as url:
        status = wait_for(lambda: (s := get_json(f"{url}/status"))["documents"] == 1 and s,
                          "the start-up sync")  # fmt: skip
        assert isinstance(status, dict) and status["watch"]["folders"] == [str(docs)]

        def search() -> list[dict]:
            body = {"query": "avocet wading bird ledger", "k": 3, "mode": "bm25"}
            response = httpx.post(f"{url}/search", json=body, timeout=30)
            return response.json()["hits"] if response.status_code == 200 else []

        assert all("AV-7781" not in h["text"] for h in search())
        avocet = docs / "avocet.md"
        avocet.write_text("# Avocet\n\nThe avocet wading bird ledger entry is AV-7781.\n")
        hits = wait_for(lambda: [h for h in search() if h["path"] == str(avocet)],
                        "the added file in /search")  # fmt: skip
        assert isinstance(hits, list) and "AV-7781" in hits[0]["text"]
        watch = get_json(f"{url}/status")["watch"]
        assert watch["running"] and watch["last_batch"]["added"] == 1, watch
        assert watch["last_batch"]["paths"] == [str(avocet)]
        jobs = get_json(f"{url}/jobs")
        assert [j["source"] for j in jobs["jobs"]] == ["watch", "watch"]
        assert jobs["watch"]["last_job"] == jobs["jobs"][-1]["id"]
    assert service.watched is not None and not service.watched.running
