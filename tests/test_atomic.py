"""One atomic-write policy: tmp, fsync, replace, fsync the folder; a failure keeps the old."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from rag import Index
from rag.atomic import atomic_replace_dir, atomic_write, atomic_write_text


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    atomic_write(target, lambda handle: handle.write(b"new"))
    assert target.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["data.bin"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # like any new file


def test_failed_atomic_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "probes.json"
    atomic_write_text(target, '{"v": 1}')

    def half_then_fail(handle) -> None:
        handle.write(b'{"v": 2, "hal')
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == '{"v": 1}' and os.listdir(tmp_path) == ["probes.json"]


def test_atomic_replace_dir_swaps_the_folder_and_a_failed_build_keeps_the_old_one(
    tmp_path: Path,
) -> None:
    target = tmp_path / "bm25-0001"
    atomic_replace_dir(target, lambda folder: (folder / "a.npy").write_bytes(b"one"))
    atomic_replace_dir(target, lambda folder: (folder / "b.npy").write_bytes(b"two"))
    assert os.listdir(target) == ["b.npy"]

    def fail(folder: Path) -> None:
        (folder / "c.npy").write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        atomic_replace_dir(target, fail)
    assert os.listdir(target) == ["b.npy"] and os.listdir(tmp_path) == ["bm25-0001"]


def test_every_index_file_is_fsynced_and_so_is_its_folder(tmp_path, embedder, monkeypatch):
    from rag.eval.probes import ProbeFile
    from rag.store import Store
    from rag.vectors import HnswBackend

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("The K9 battery lasts 41 months.")
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    index_dir = tmp_path / "idx"
    Index(index_dir, embedder=embedder).ingest([docs])  # the FAISS file and the BM25 folder
    Store(index_dir, vectors=HnswBackend()).vector_index()  # built, then saved for later
    ProbeFile(None, []).save(index_dir)
    files = [Path(p).name for p in synced if p != str(index_dir)]
    for name in ("vectors-", "hnsw-", "probes.json"):
        assert any(name in f for f in files), (name, files)
    assert any("params.index.json" in p for p in synced)  # a file inside the BM25 folder
    assert synced.count(str(index_dir)) >= 4  # after each rename: vectors, bm25, hnsw, probes
