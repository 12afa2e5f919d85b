"""Named indexes (collections): what `--index VALUE` means, and which named indexes exist.

Rules for `--index VALUE` (`resolve_index`):
  - a bare name (letters, digits, '.', '_', '-', starting with a letter or digit; no path
    separator) is the named index `$RAG_HOME/indexes/NAME` (else the platform's user data
    dir); the name "default" is the default index, `$RAG_HOME/index`;
  - anything else with a separator, or starting with '~', or "." / "..", is a path;
  - back-compat: when `./NAME` is an index (it holds index.sqlite), `--index NAME` still
    means that folder, with a note saying to write `./NAME` (or rename the folder).

Example:
    >>> from rag.collections import resolve_index
    >>> resolve_index("./my-index")
    PosixPath('my-index')
    >>> resolve_index("mail").parts[-2:]  # doctest: +SKIP
    ('indexes', 'mail')
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from rag.config import default_index_dir, rag_home
from rag.errors import ConfigError
from rag.store import DB_NAME, FORMAT_VERSION

INDEXES_DIR = "indexes"
DEFAULT_NAME = "default"  # the default index, $RAG_HOME/index
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

Note = Callable[[str], None]


def indexes_dir() -> Path:
    """The folder of the named indexes: `$RAG_HOME/indexes` (else the user data dir's)."""
    return rag_home() / INDEXES_DIR


def named_index(name: str) -> Path:
    """The directory of the named index `name` ("default": the default index)."""
    if not NAME.match(name):
        raise ConfigError(
            f"{name!r} is not a valid index name: use letters, digits, '.', '_' and '-', "
            f"starting with a letter or digit (or give a path, e.g. ./{name})"
        )
    return default_index_dir() if name == DEFAULT_NAME else indexes_dir() / name


def is_index(directory: Path) -> bool:
    """Whether `directory` holds an index (its SQLite file)."""
    return (directory / DB_NAME).is_file()


def is_path(value: str) -> bool:
    """Whether `--index VALUE` names a path rather than a named index."""
    separators = {"/", os.sep, os.altsep or "/"}
    return any(s in value for s in separators) or value in (".", "..") or value[:1] == "~"


def resolve_index(value: str | Path | None, *, note: Note | None = None) -> Path:
    """The index directory `--index VALUE` means (None: the default index).

    A `Path` is always a path; a string follows the rules in the module docstring. `note`
    receives the one-line notice of the back-compat case (a folder `./NAME` that is an
    index wins over the named index NAME). Raises ConfigError for an invalid name.
    """
    if value is None:
        return default_index_dir()
    if isinstance(value, Path):
        return value.expanduser()
    if not value.strip():
        raise ConfigError("--index is empty: give an index name or a path")
    if is_path(value):
        return Path(value).expanduser()
    local = Path(value)
    if is_index(local):  # what --index NAME meant before named indexes
        if note is not None:
            named = named_index(value) if NAME.match(value) else None
            unused = f" (the named index {named} is not used)" if named and is_index(named) else ""
            note(
                f"note: --index {value} is the index in the folder ./{value}{unused}; write "
                f"--index ./{value} to say so, or rename the folder: a bare name is a named "
                f"index, in {indexes_dir()}"
            )
        return local
    return named_index(value)


def collection_names(paths: list[Path]) -> list[str]:
    """The name each index directory goes by in results: its name for a named index,
    "default" for the default index, else its folder's name (its whole path when two
    folders share a name)."""
    home, default = indexes_dir().resolve(), default_index_dir().resolve()
    names = []
    for path in paths:
        full = path.expanduser().resolve()
        names.append(DEFAULT_NAME if full == default else full.name)
    for i, (path, name) in enumerate(zip(paths, names, strict=True)):
        full = path.expanduser().resolve()
        if names.count(name) > 1 and full.parent != home and full != default:
            names[i] = str(path.expanduser())
    return names


@dataclass(frozen=True)
class CollectionInfo:
    """One index as `rag indexes` lists it; read from SQLite alone (no model is loaded).

    `last_ingest` is the Unix time a document was last added or re-indexed (None: empty);
    `problem` says why the index could not be read fully (its counts are then 0).
    """

    name: str
    path: str
    documents: int
    chunks: int
    bytes: int
    last_ingest: float | None
    embedder: str
    embedder_dim: int | None = None
    embedder_fingerprint: str = ""
    problem: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def read_collection(name: str, directory: Path) -> CollectionInfo:
    """Count what the index in `directory` holds, opening its SQLite file read-only."""
    import json

    size = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
    info: dict = {}
    documents = chunks = 0
    last: float | None = None
    problem = None
    try:
        db = sqlite3.connect(f"{(directory / DB_NAME).resolve().as_uri()}?mode=ro", uri=True)
        try:
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            sql = "SELECT COUNT(*), MAX(indexed_at) FROM documents"
            documents, last = db.execute(sql).fetchone()
            chunks = db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        finally:
            db.close()
        info = json.loads(meta.get("embedder") or "{}")
        version = int(meta.get("format_version") or 0)
        if version > FORMAT_VERSION:
            problem = f"format {version} is newer than this rag's ({FORMAT_VERSION}); upgrade rag"
    except (sqlite3.Error, ValueError, OSError) as exc:
        problem = f"cannot read {directory / DB_NAME}: {exc}"
    return CollectionInfo(
        name, str(directory), int(documents or 0), int(chunks or 0), size, last,
        str(info.get("name", "")), info.get("dim"), str(info.get("fingerprint", "")), problem,
    )  # fmt: skip


def list_indexes() -> list[CollectionInfo]:
    """The default index (if it exists) and every named index, by name."""
    found = []
    if is_index(default_index_dir()):
        found.append(read_collection(DEFAULT_NAME, default_index_dir()))
    root = indexes_dir()
    if root.is_dir():
        for child in sorted(root.iterdir(), key=lambda p: p.name):
            if child.name != DEFAULT_NAME and NAME.match(child.name) and is_index(child):
                found.append(read_collection(child.name, child))
    return found
