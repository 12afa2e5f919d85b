"""The writer lock: one process at a time writes an index directory."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rag.errors import IndexLockedError
from rag.store.write_errors import write_error


@contextmanager
def write_lock(directory: Path, command: str = "rag ingest") -> Iterator[None]:
    """Hold the index's writer lock; raise IndexLockedError naming the holder if taken."""
    import fcntl
    import socket

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip()
            try:
                info = json.loads(holder)
                started = time.strftime("%H:%M:%S", time.localtime(info["started"]))
                who = f"pid {info['pid']} on {info['host']} ({info['command']}, started {started})"
            except (ValueError, KeyError, TypeError):
                who = "another process"
            raise IndexLockedError(
                f"index at {directory} is being written by {who}; wait for it to finish "
                "or stop that process"
            ) from None
        holder = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "command": command, "started": time.time()})  # fmt: skip
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, holder.encode(), 0)
        except OSError as exc:
            error = write_error(directory, "the lock file", exc)
            if error is None:
                raise
            raise error from exc
        yield
    finally:
        os.close(fd)
