"""Shared by the zip-based loaders (docx, pptx, epub): refusing files they cannot open, and
rendering table rows as one line each.

>>> table_rows([["Name", "Age"], ["Ada", "36"]], header=True)
['Name: Ada; Age: 36']
>>> table_rows([["Ada", None, "36"]], header=False)
['Ada | 36']
"""

from __future__ import annotations

import io
import os
import zipfile
import zlib
from collections.abc import Sequence

from rag.errors import LoaderError

OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # a Compound File (CFB): Office 97 binaries, encrypted OOXML
_ENCRYPTED_STREAM = "EncryptedPackage".encode("utf-16-le")
MAX_UNPACKED_BYTES = 2**30  # the parts are read into memory: refuse zip bombs
_LEGACY = {".docx": "Word 97–2003 (.doc)", ".pptx": "PowerPoint 97–2003 (.ppt)"}


def open_zip(key: str, data: bytes, suffix: str) -> zipfile.ZipFile:
    """Open the zip container of a `suffix` file (".docx"), or say why it cannot be read."""
    name = os.path.basename(key.split("#", 1)[0])
    if name.startswith("~$") and len(data) < 4096:
        raise LoaderError(key, (
            "is an Office lock file (left while the document is open), not a document; "
            "close the document or delete the lock file"))  # fmt: skip
    legacy = _LEGACY.get(suffix, "old binary Office")
    refuse_compound_file(key, data, f"is a {legacy} file or password-protected, not {suffix}; "
                                    f"save an unprotected copy as {suffix}")  # fmt: skip
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError):
        raise LoaderError(key, not_valid(suffix)) from None
    unpacked = sum(info.file_size for info in archive.infolist())
    if unpacked > MAX_UNPACKED_BYTES:
        archive.close()
        raise LoaderError(key, (
            f"unpacks to {unpacked / 2**20:,.0f} MB, over the "
            f"{MAX_UNPACKED_BYTES / 2**20:,.0f} MB limit for one document (a zip bomb?); "
            "split the document"))  # fmt: skip
    return archive


def refuse_compound_file(key: str, data: bytes, legacy: str) -> None:
    """Refuse an OLE Compound File under an OOXML name: an encrypted package (password-
    protected), else a pre-2007 binary, for which `legacy` is the problem line."""
    if data.startswith(OLE_MAGIC):
        if _ENCRYPTED_STREAM in data:
            raise LoaderError(key, "is password-protected (encrypted); save an unprotected copy")
        raise LoaderError(key, legacy)


def not_valid(suffix: str, detail: str = "corrupt or not a zip file") -> str:
    """The problem line for a container that does not open: what it is, and what to do."""
    return f"not a valid {suffix} ({detail}); re-save or re-export it and index it again"


# What a damaged package raises while it is read (lxml's XMLSyntaxError is a SyntaxError).
BROKEN_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, KeyError, ValueError, SyntaxError)


def broken(key: str, suffix: str, exc: Exception) -> LoaderError:
    """The error for a `suffix` file whose parts could not be read (`exc` says why)."""
    if isinstance(exc, zipfile.BadZipFile | zlib.error | EOFError):
        return LoaderError(key, not_valid(suffix, f"corrupt zip data: {exc}"))
    if isinstance(exc, KeyError):
        return LoaderError(key, not_valid(suffix, f"a part is missing: {exc}"))
    return LoaderError(key, not_valid(suffix, f"{type(exc).__name__}: {exc}"))


def table_rows(rows: Sequence[Sequence[str | None]], header: bool) -> list[str]:
    """Render each row of a table as one line; `None` marks a cell spanned from its left.

    With a header row, a row reads "Name: Ada; Age: 36" (the header row itself is not
    repeated); without one, its non-empty cells are joined with " | ".
    """
    if not rows:
        return []
    if not header:
        return [line for row in rows if (line := " | ".join(c for c in row if c))]
    names: list[str] = []
    for cell in rows[0]:
        names.append(cell if cell is not None else (names[-1] if names else ""))
    lines = []
    for row in rows[1:]:
        pairs = []
        for i, cell in enumerate(row):
            if not cell:
                continue
            name = names[i] if i < len(names) else ""
            pairs.append(f"{name}: {cell}" if name else cell)
        if pairs:
            lines.append("; ".join(pairs))
    return lines


def looks_like_header(first_row: Sequence[str | None]) -> bool:
    """Tell whether a table's first row can name its columns: every cell filled, no two
    alike, none a bare number."""
    cells = [c for c in first_row if c is not None]
    if not cells or any(not c for c in cells) or len(set(cells)) < len(cells):
        return False
    return not any(_is_number(c) for c in cells)


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", "").replace("%", "").strip())
    except ValueError:
        return False
    return True
