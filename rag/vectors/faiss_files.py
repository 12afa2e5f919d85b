"""Reading and writing FAISS files: a missing or unreadable file is rebuilt, never fatal."""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

from rag.atomic import atomic_write


def read_index(path: Path, *, mmap: bool = False) -> Any:
    """Read a FAISS file; None when it is missing or unreadable (it is rebuilt from SQLite).

    With `mmap`, an IVF index's inverted lists stay in the file, mapped read-only: pages are
    read when a query touches them.
    """
    import faiss

    if not path.exists():
        return None
    try:
        return faiss.read_index(str(path), faiss.IO_FLAG_MMAP if mmap else 0)
    except RuntimeError:
        return None


def write_index(index: Any, path: Path) -> None:
    """Write `index` to `path` atomically (temporary file, fsync, rename, fsync the folder).

    Through Python's file, not FAISS's own writer: that one ignores a failed fclose, so a full
    disk could leave a truncated file without any error.
    """
    import faiss

    def write(handle: BinaryIO) -> None:
        faiss.write_index(index, faiss.PyCallbackIOWriter(handle.write))  # type: ignore[attr-defined]

    atomic_write(path, write)
