"""A full disk (or a failing write) while ingesting: one clear error, nothing indexed lost."""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag import Index
from rag.errors import DiskFullError, IndexWriteError
from rag.settings import Settings
from rag.store import Store


def _corpus(folder: Path, start: int, stop: int) -> Path:
    folder.mkdir(exist_ok=True)
    for i in range(start, stop):
        (folder / f"doc{i:04d}.txt").write_text(f"Document {i} mentions the code word kw{i}x.")
    return folder


def _index(path: Path, embedder, **settings) -> Index:
    values = {f"ingest.{k}": v for k, v in settings.items()}
    return Index(path, embedder=embedder, settings=Settings().replace(**values))


def _keywords_found(index_dir: Path, numbers: range) -> bool:
    index = Index(index_dir)
    try:
        for i in numbers:
            hits = index.search(f"kw{i}x", k=1, mode="bm25", rerank=False)
            if not hits or not hits[0].path.endswith(f"doc{i:04d}.txt"):
                return False
        return True
    finally:
        index.close()


def _fail_nth_call(monkeypatch, owner, name: str, n: int, exc: BaseException) -> None:
    """Make the n-th call of owner.name raise exc (the others run as usual)."""
    real = getattr(owner, name)
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise exc
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)


def test_statement_sqlite_already_rolled_back_raises_one_typed_error(tmp_path):
    store = Store(tmp_path / "idx", create=True)
    with pytest.raises(DiskFullError, match="is full") as info, store.transaction():
        store.db.execute("ROLLBACK")  # what SQLite itself does after SQLITE_FULL
        raise sqlite3.OperationalError("database or disk is full")
    assert "cannot rollback" not in str(info.value.__context__)
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    assert not store.db.in_transaction
    with store.transaction():  # the connection is still usable
        store.db.execute("INSERT INTO meta(key, value) VALUES ('x', 'y')")


def test_disk_full_in_a_batch_stops_the_run_and_keeps_the_index(tmp_path, embedder, monkeypatch):
    docs = _corpus(tmp_path / "docs", 0, 3)
    index = _index(tmp_path / "idx", embedder, flush_chunks=1)
    index.ingest([docs])
    _corpus(docs, 3, 8)
    full = sqlite3.OperationalError("database or disk is full")
    _fail_nth_call(monkeypatch, Store, "_bump_generation", 2, full)  # inside the 2nd write
    report = index.ingest([docs])
    assert report.failed == [] and not report.ok
    assert report.error and f"the disk of the index at {index.path} is full" in report.error
    assert "free" in report.error and "needs about" in report.error
    assert (report.added, report.not_written, report.removed) == (1, 1, 0)
    store = Store(index.path)
    assert store.stats().documents == 4 and store.consistency_problems() == []
    assert _keywords_found(index.path, range(4))


@pytest.mark.parametrize(
    "where, exc, names",
    [
        ("faiss", OSError(errno.ENOSPC, "No space left on device"), "the vector index vectors-"),
        ("bm25", OSError(errno.ENOSPC, "No space left on device"), "the keyword index bm25-"),
    ],
)  # fmt: skip
def test_disk_full_saving_a_cache_is_reported_and_sqlite_keeps_everything(
    tmp_path, embedder, monkeypatch, where, exc, names
):
    import faiss

    from rag.bm25 import BM25Index

    docs = _corpus(tmp_path / "docs", 0, 3)
    index = _index(tmp_path / "idx", embedder)
    if where == "faiss":

        def write_index(idx, writer):  # what handle.write raises through FAISS
            raise exc

        monkeypatch.setattr(faiss, "write_index", write_index)
    else:
        _fail_nth_call(monkeypatch, BM25Index, "save", 1, exc)
    report = index.ingest([docs])
    assert report.added == 3 and report.error and names in report.error
    assert "is full" in report.error
    monkeypatch.undo()
    assert not list(index.path.glob("*.tmp")) and not list(index.path.glob(".bm25-*"))
    assert Store(index.path).consistency_problems() == []
    assert _keywords_found(index.path, range(3))


def _sqlite_error(message: str, code: int) -> sqlite3.Error:
    exc = sqlite3.OperationalError(message)
    exc.sqlite_errorcode = code  # type: ignore[attr-defined]
    return exc


@pytest.mark.parametrize(
    "exc, expected",
    [
        (OSError(errno.ENOSPC, "No space left on device"), DiskFullError),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), DiskFullError),
        (sqlite3.OperationalError("database or disk is full"), DiskFullError),
        (_sqlite_error("database or disk is full", sqlite3.SQLITE_FULL), DiskFullError),
        (RuntimeError("write error in x.faiss: 3 != 9 (No space left on device)"), DiskFullError),
        (OSError(errno.EROFS, "Read-only file system"), IndexWriteError),
        (_sqlite_error("attempt to write a readonly database", 8), IndexWriteError),
        (_sqlite_error("disk I/O error", 10 | 3 << 8), IndexWriteError),  # SQLITE_IOERR_WRITE
        (sqlite3.IntegrityError("UNIQUE constraint failed"), None),
        (RuntimeError("some other FAISS error"), None),
    ],
)
def test_write_failures_map_to_typed_errors(tmp_path, exc, expected):
    from rag.store import write_error

    error = write_error(tmp_path, "the thing", exc, needed=5 * 2**20)
    if expected is None:
        assert error is None
        return
    assert type(error) is expected
    assert f"index at {tmp_path}" in str(error) and "the thing" in str(error)
    if expected is DiskFullError:
        assert "free" in str(error) and "needs about 5.0 MB" in str(error)


def test_cli_disk_full_prints_one_line_and_the_json_report(tmp_path, monkeypatch):
    from rag_cli.main import app

    docs = _corpus(tmp_path / "docs", 0, 2)
    full = sqlite3.OperationalError("database or disk is full")
    _fail_nth_call(monkeypatch, Store, "_bump_generation", 1, full)
    result = CliRunner().invoke(
        app, ["ingest", str(docs), "--index", str(tmp_path / "idx"), "--json"]
    )
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert "is full" in report["error"] and report["added"] == 0 and report["failed"] == []
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(tmp_path / "idx") in lines[0]


@pytest.fixture
def tiny_filesystem():
    """A 512 KB tmpfs (needs root and mount rights; skipped otherwise), unmounted afterwards."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    mountpoint = Path(tempfile.mkdtemp(prefix="rag-tiny-fs-"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mountpoint)],
        capture_output=True,
    )
    if mounted.returncode != 0:
        mountpoint.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mountpoint
    finally:
        if subprocess.run(["umount", str(mountpoint)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mountpoint)], check=True)  # still open somewhere
        mountpoint.rmdir()


def test_real_full_disk_stops_cleanly_and_a_rerun_with_room_finishes(
    tmp_path, embedder, tiny_filesystem
):
    docs = _corpus(tmp_path / "docs", 0, 40)
    index_dir = tiny_filesystem / "idx"
    index = _index(index_dir, embedder, flush_chunks=64)
    try:
        assert index.ingest([docs]).error is None
        _corpus(docs, 40, 240)  # about 1 MB more than the 512 KB filesystem holds
        report = index.ingest([docs])
        assert report.error and f"the disk of the index at {index_dir} is full" in report.error
        assert report.failed == [] and report.removed == 0 and report.not_written > 0
        written = 40 + report.added
        store = Store(index_dir)
        assert store.stats().documents == written and store.consistency_problems() == []
        store.close()
        assert _keywords_found(index_dir, range(written))

        subprocess.run(["mount", "-o", "remount,size=8m", str(tiny_filesystem)], check=True)
        report = index.ingest([docs])
        assert (report.error, report.added, report.unchanged) == (None, 240 - written, written)
        assert _keywords_found(index_dir, range(240))
    finally:
        index.close()
