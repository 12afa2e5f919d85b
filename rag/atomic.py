"""Atomic, durable writes: after a crash a file or folder holds its old version or its new one.

One policy for every file the index writes (FAISS files, BM25 folders, probes.json): write a
temporary sibling, flush and fsync it, `os.replace` it over the target, then fsync the folder
so the rename itself is on disk. On any error the temporary is removed and the target is
untouched.

>>> atomic_write_text(Path("probes.json"), "{}")  # doctest: +SKIP
>>> atomic_write(Path("vectors.faiss"), lambda handle: handle.write(data))  # doctest: +SKIP
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Replace the file `path` with what `write(handle)` writes to a binary file handle."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # one per writer process
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    """Replace the file `path` with `text`, encoded as UTF-8."""
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def atomic_replace_dir(target: Path, build: Callable[[Path], object]) -> None:
    """Replace the folder `target` with one `build(folder)` fills (a temporary beside it)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build(tmp)
        for path in tmp.iterdir():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
        fsync_dir(tmp)
        _swap_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(target.parent)


def fsync_dir(directory: Path) -> None:
    """Flush a folder's entries (renames, new files) to disk."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _swap_dir(new: Path, target: Path) -> None:
    """Move the complete folder `new` to `target`, replacing any previous version."""
    if not target.exists():
        os.replace(new, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
    os.replace(target, old / target.name)
    try:
        os.replace(new, target)
    except BaseException:
        os.replace(old / target.name, target)  # put the previous version back
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)
