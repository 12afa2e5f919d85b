"""The upload area: files sent to `POST /ingest` land in `<index>/uploads/`, nowhere else.

A name is refused, not repaired, when it could leave the area ("../x", "/etc/x", "a/b"),
is hidden or empty; a re-upload of a name replaces the file (and re-indexes it when its
content changed).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from rag.errors import ConfigError

UPLOAD_DIR = "uploads"
_CHUNK = 1 << 20


class UploadError(ConfigError):
    """An uploaded file's name or content cannot be accepted; the message names it."""


def upload_dir(index_dir: Path) -> Path:
    """Where uploads to the index in `index_dir` are kept."""
    return index_dir / UPLOAD_DIR


def safe_name(filename: str | None) -> str:
    """The upload's file name if it is a plain name that stays in the upload area."""
    name = (filename or "").strip()
    if not name:
        raise UploadError("an uploaded file has no file name")
    if "/" in name or "\\" in name or "\0" in name or name in (".", ".."):
        raise UploadError(
            f"file name {name!r} has a path in it; send the file's own name (no folders)"
        )
    if name.startswith("."):
        raise UploadError(f"file name {name!r} is hidden (starts with a dot); rename it")
    if len(name.encode()) > 255:
        raise UploadError(f"file name {name[:40]!r}… is longer than 255 bytes")
    return name


def save_upload(area: Path, filename: str | None, data: BinaryIO) -> Path:
    """Write `data` to `area/filename` atomically and return the path."""
    name = safe_name(filename)
    area.mkdir(parents=True, exist_ok=True)
    target = (area / name).resolve()
    if target.parent != area.resolve():
        raise UploadError(f"file name {name!r} would be written outside the upload area")
    fd, tmp = tempfile.mkstemp(prefix=".upload-", dir=area)
    try:
        with os.fdopen(fd, "wb") as out:
            while block := data.read(_CHUNK):
                out.write(block)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
