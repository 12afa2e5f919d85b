"""Failed writes into an index directory, told apart and named: full disk, read-only, broken.

A write that fails raises `IndexWriteError` (or `DiskFullError`) naming the index, what did
not fit and what to do; everything indexed before stays, since each write is atomic.
"""

from __future__ import annotations

import errno
import shutil
import sqlite3
from pathlib import Path

from rag.errors import DiskFullError, IndexWriteError

_SQLITE_WRITE_FAILURES = {sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN}


def _is_disk_full(exc: BaseException) -> bool:
    """Tell whether `exc` means the filesystem (or the user's quota) has no room left."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return (code is not None and code & 0xFF == sqlite3.SQLITE_FULL) or (
            "database or disk is full" in str(exc)
        )
    return isinstance(exc, RuntimeError) and "No space left on device" in str(exc)  # FAISS


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 1024:.0f} KB"


def disk_full_error(directory: Path, what: str, needed: int = 0) -> DiskFullError:
    """A DiskFullError naming the index, what did not fit, the free space and the room needed."""
    try:
        free = f"{_size(shutil.disk_usage(directory).free)} free"
    except OSError:
        free = "free space unknown"
    need = f"; it needs about {_size(needed)}" if needed else ""
    return DiskFullError(
        f"the disk of the index at {directory} is full: {what} did not fit ({free}{need}); "
        "free some space or move the index to a larger disk (--index), then rerun — "
        "everything indexed before is kept"
    )


def write_error(
    directory: Path, what: str, exc: BaseException, needed: int = 0
) -> IndexWriteError | None:
    """Translate a failed write of `what` into the index (None: `exc` is not a write failure)."""
    if _is_disk_full(exc):
        return disk_full_error(directory, what, needed)
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
    elif isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is None or code & 0xFF not in _SQLITE_WRITE_FAILURES:
            return None
        reason = str(exc)
    elif isinstance(exc, RuntimeError) and "for writing" in str(exc):  # FAISS fopen failed
        reason = str(exc).splitlines()[0]
    else:
        return None
    return IndexWriteError(
        f"could not write {what} to the index at {directory}: {reason}; check that the "
        "directory is writable and the disk healthy, then rerun — everything indexed before "
        "is kept"
    )


def check_room(directory: Path, what: str, needed: int) -> None:
    """Raise DiskFullError before writing `needed` bytes that cannot fit."""
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        return
    if free < needed:
        raise disk_full_error(directory, what, needed)
