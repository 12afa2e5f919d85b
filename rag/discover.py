"""Find the files to index under the paths a user gives, without following loops."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import LoaderError
from rag.loaders import kind_of


@dataclass(frozen=True)
class SourceFile:
    """A file to index: its absolute path (as given, symlinks not resolved) and loader kind."""

    path: str
    kind: str


@dataclass
class Discovery:
    """What a walk found: files to load, unsupported files skipped, and unreadable entries."""

    roots: list[str] = field(default_factory=list)
    files: list[SourceFile] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    errors: list[LoaderError] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def absolute(path: str | Path) -> str:
    """Return a normalised absolute path without resolving symlinks (the key users see)."""
    return os.path.normpath(os.path.abspath(os.path.expanduser(str(path))))


def is_under(key: str, root: str) -> bool:
    """Tell whether a document key (a path, or `path#record`) lies under a root path."""
    return key == root or key.startswith(root.rstrip(os.sep) + os.sep) or key.startswith(root + "#")


def discover(paths: Iterable[str | Path], include_hidden: bool = False) -> Discovery:
    """Walk files and folders; skip hidden entries unless asked; report loops and errors."""
    found = Discovery()
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[str] = set()
    for given in paths:
        root = absolute(given)
        found.roots.append(root)
        if not os.path.lexists(root):
            found.missing.append(root)
            continue
        if os.path.isdir(root):
            _walk(root, found, seen_dirs, seen_files, include_hidden)
        else:
            _add_file(root, found, seen_files, explicit=True)
    return found


def _walk(
    root: str,
    found: Discovery,
    seen_dirs: set[tuple[int, int]],
    seen_files: set[str],
    include_hidden: bool,
) -> None:
    def on_error(exc: OSError) -> None:
        found.errors.append(LoaderError(exc.filename or root, describe_os_error(exc)))

    for folder, dirs, files in os.walk(root, onerror=on_error, followlinks=True):
        try:
            st = os.stat(folder)
        except OSError as exc:
            found.errors.append(LoaderError(folder, describe_os_error(exc)))
            dirs[:] = []
            continue
        if (st.st_dev, st.st_ino) in seen_dirs:  # a symlink back up the tree
            dirs[:] = []
            continue
        seen_dirs.add((st.st_dev, st.st_ino))
        if not include_hidden:
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            files = [f for f in files if not f.startswith(".")]
        dirs.sort()
        for name in sorted(files):
            _add_file(os.path.join(folder, name), found, seen_files)


def _add_file(path: str, found: Discovery, seen_files: set[str], explicit: bool = False) -> None:
    if path in seen_files:
        return
    seen_files.add(path)
    kind = kind_of(Path(path))
    lock_file = os.path.basename(path).startswith("~$")  # Office's "owner" file of an open one
    if kind is None or (not explicit and (kind == "jsonl" or lock_file)):  # only when named
        found.skipped.append(path)
        return
    try:
        st = os.stat(path)
    except OSError as exc:
        found.errors.append(LoaderError(path, describe_os_error(exc)))
        return
    if not os.path.isfile(path) or st.st_mode & 0o170000 != 0o100000:
        found.errors.append(LoaderError(path, "not a regular file"))
        return
    found.files.append(SourceFile(path, kind))


def describe_os_error(exc: OSError) -> str:
    """Say what an OS error on a file means and what to do about it."""
    if exc.errno == errno.ELOOP:
        return "symlink loop (too many levels of symbolic links); fix or remove the link"
    if exc.errno == errno.EACCES:
        return "permission denied; check the file's read permissions"
    if exc.errno == errno.ENOENT:
        return "no such file (a dangling symlink?)"
    return exc.strerror or str(exc)
