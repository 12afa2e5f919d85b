"""Reading and writing FAISS files: a missing or unreadable file is rebuilt, never fatal."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def read_index(path: Path) -> Any:
    """Read a FAISS file; None when it is missing or unreadable (it is rebuilt from SQLite)."""
    import faiss

    if not path.exists():
        return None
    try:
        return faiss.read_index(str(path))
    except RuntimeError:
        return None


def write_index(index: Any, path: Path) -> None:
    """Write `index` to `path` atomically (temporary file, fsync, rename)."""
    import faiss

    tmp = path.with_suffix(".tmp")
    faiss.write_index(index, str(tmp))
    with tmp.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)
