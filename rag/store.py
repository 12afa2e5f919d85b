"""The index directory: SQLite is the source of truth, FAISS a cache rebuilt from it.

Layout of an index directory:
    index.sqlite              documents (manifest: key -> sha256 + config hash), chunks with
                              text, spans, page, heading and their vectors; meta (format version,
                              embedder, generation counter)
    vectors-<generation>.faiss  exact inner-product index of the same vectors, keyed by chunk id
    bm25-<generation>/        BM25 index over the same chunks (heading + text), rebuilt per change
    probes.json               label-free retrieval probes and their measurement history
                              (rag/probes.py); not derived from SQLite, kept across re-ingests
    lock                      held by the one process that writes

Every write is one SQLite transaction that replaces whole documents (rows and vectors
together) and bumps the generation, so a document's hash is recorded only with its vectors.
A FAISS file or BM25 folder is trusted only when its generation matches SQLite's; otherwise
it is rebuilt from SQLite. A `kill -9` at any moment therefore leaves a consistent index.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from rag.atomic import atomic_write
from rag.errors import (
    ConfigError,
    DiskFullError,
    IndexFormatError,
    IndexLockedError,
    IndexNotFoundError,
    IndexWriteError,
)

if TYPE_CHECKING:
    import numpy as np

    from rag.chunking import Chunk
    from rag.embedding import EmbedderInfo

FORMAT_VERSION = 1
DB_NAME = "index.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    size INTEGER NOT NULL,
    pages INTEGER,
    indexed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ord INTEGER NOT NULL,
    text TEXT NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    page INTEGER,
    heading TEXT NOT NULL,
    n_tokens INTEGER NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
"""


@dataclass(frozen=True)
class DocumentRecord:
    """A document as the manifest knows it."""

    key: str
    source: str
    kind: str
    sha256: str
    config_hash: str
    size: int
    pages: int | None = None


@dataclass(frozen=True)
class StoredChunk:
    """A chunk as stored: what search results and citations are built from."""

    id: int
    key: str
    source: str
    kind: str
    ord: int
    text: str
    start: int
    end: int
    page: int | None
    heading: str


@dataclass(frozen=True)
class StoreStats:
    """What `rag status` prints."""

    path: str
    documents: int
    chunks: int
    embedder: str
    bytes: int


class Store:
    """Open (or create) an index directory.

    >>> store = Store(Path("my-index"), create=True)
    >>> store.stats().documents
    0
    """

    def __init__(self, directory: Path, *, create: bool = False) -> None:
        self.directory = Path(directory)
        db_path = self.directory / DB_NAME
        if not db_path.exists():
            if not create:
                raise IndexNotFoundError(
                    f"no index at {self.directory}; run 'rag ingest PATH --index "
                    f"{self.directory}' first"
                )
            self.directory.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self._init_schema()
        self._faiss: Any = None
        self._bm25: Any = None
        self._hnsw: Any = None

    # --- meta -----------------------------------------------------------------------------

    def _init_schema(self) -> None:
        version = None
        has_meta = self.db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
        ).fetchone()
        if has_meta:
            row = self.db.execute("SELECT value FROM meta WHERE key='format_version'").fetchone()
            version = int(row[0]) if row else None
        if version is not None and version != FORMAT_VERSION:
            newer = version > FORMAT_VERSION
            raise IndexFormatError(
                f"index at {self.directory} has format {version}, this rag reads format "
                f"{FORMAT_VERSION}; "
                + ("upgrade rag" if newer else "re-ingest into a new --index directory")
            )
        if version is None:
            with self.transaction():
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self._set_meta("format_version", str(FORMAT_VERSION))
                self._set_meta("generation", "0")

    def _get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    @property
    def generation(self) -> int:
        return int(self._get_meta("generation") or 0)

    def embedder_info(self) -> EmbedderInfo | None:
        from rag.embedding import EmbedderInfo

        text = self._get_meta("embedder")
        return EmbedderInfo.from_json(text) if text else None

    def embedder_spec(self) -> str | None:
        """The embedder name or folder the index was built with (None: the default)."""
        return self._get_meta("embedder_spec") or None

    def check_embedder(self, info: EmbedderInfo, spec: str = "") -> None:
        """Record the embedder of a new index; refuse a different one for an existing index."""
        stored = self.embedder_info()
        if stored is None:
            with self.transaction():
                self._set_meta("embedder", info.to_json())
                self._set_meta("embedder_spec", spec)
            return
        if (stored.name, stored.dim, stored.fingerprint) != (info.name, info.dim, info.fingerprint):
            raise IndexFormatError(
                f"index at {self.directory} was built with embedder {stored.name} "
                f"(dim {stored.dim}, fingerprint {stored.fingerprint}), not {info.name} "
                f"(dim {info.dim}, fingerprint {info.fingerprint}); use that embedder, or "
                "ingest into another --index directory"
            )

    def ingest_config(self) -> dict | None:
        """The chunking config of the last ingest that wrote documents (None: not recorded)."""
        text = self._get_meta("ingest_config")
        return json.loads(text) if text else None

    def record_ingest_config(self, config: dict) -> None:
        with self.transaction():
            self._set_meta("ingest_config", json.dumps(config, sort_keys=True))

    @contextmanager
    def transaction(self, what: str = "index metadata", needed: int = 0) -> Iterator[None]:
        """Run statements atomically (BEGIN IMMEDIATE … COMMIT, ROLLBACK on error).

        A write SQLite cannot make (disk full, read-only, I/O error) raises DiskFullError or
        IndexWriteError naming `what` was written and, with `needed` bytes, the room it needs.
        """
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self.db.execute("COMMIT")
            except BaseException:
                # SQLite rolls back by itself after some errors (SQLITE_FULL on COMMIT):
                # a second ROLLBACK would only raise "no transaction is active"
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            error = write_error(self.directory, f"{what} to {DB_NAME}", exc, needed)
            if error is None:
                raise
            raise error from exc

    # --- manifest ---------------------------------------------------------------------------

    def manifest(self) -> dict[str, tuple[str, str]]:
        """Map every indexed document key to (content sha256, config hash)."""
        rows = self.db.execute("SELECT key, sha256, config_hash FROM documents")
        return {key: (sha, config) for key, sha, config in rows}

    # --- writes -----------------------------------------------------------------------------

    def write_documents(
        self, documents: list[tuple[DocumentRecord, list[Chunk]]], vectors: np.ndarray
    ) -> None:
        """Replace these documents (rows, chunks and vectors) in one transaction."""
        import numpy as np

        total = sum(len(chunks) for _, chunks in documents)
        if len(vectors) != total:
            raise ValueError(f"{total} chunks but {len(vectors)} vectors")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.faiss_index()  # load before writing so it is updated in place, not rebuilt
        now = time.time()
        new_ids: list[int] = []
        what = f"{len(documents)} documents ({total} chunks)"
        text_bytes = sum(len(c.text.encode()) for _, chunks in documents for c in chunks)
        needed = 2 * (text_bytes + vectors.nbytes + 200 * total)  # the WAL, then the database
        with self.transaction(what, needed):
            removed = self._delete_keys([doc.key for doc, _ in documents])
            row = 0
            for doc, chunks in documents:
                cursor = self.db.execute(
                    "INSERT INTO documents(key, source, kind, sha256, config_hash, size, pages,"
                    " indexed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        doc.key,
                        doc.source,
                        doc.kind,
                        doc.sha256,
                        doc.config_hash,
                        doc.size,
                        doc.pages,
                        now,
                    ),  # fmt: skip
                )
                doc_id = cursor.lastrowid
                for chunk in chunks:
                    cursor = self.db.execute(
                        "INSERT INTO chunks(doc_id, ord, text, start, end, page, heading,"
                        " n_tokens, vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            doc_id,
                            chunk.ord,
                            chunk.text,
                            chunk.start,
                            chunk.end,
                            chunk.page,
                            chunk.heading,
                            chunk.n_tokens,
                            vectors[row].tobytes(),
                        ),  # fmt: skip
                    )
                    new_ids.append(int(cursor.lastrowid or 0))
                    row += 1
            self._bump_generation()
        self._bm25 = self._hnsw = None
        self._faiss_remove(removed)
        if new_ids:
            self._faiss.add_with_ids(vectors, np.asarray(new_ids, dtype=np.int64))

    def remove_documents(self, keys: Iterable[str]) -> None:
        """Remove documents and their chunks and vectors in one transaction."""
        keys = list(keys)
        if not keys:
            return
        self.faiss_index()
        with self.transaction(f"the removal of {len(keys)} documents"):
            removed = self._delete_keys(keys)
            self._bump_generation()
        self._bm25 = self._hnsw = None
        self._faiss_remove(removed)

    def _delete_keys(self, keys: list[str]) -> list[int]:
        chunk_ids: list[int] = []
        for key in keys:
            row = self.db.execute("SELECT id FROM documents WHERE key=?", (key,)).fetchone()
            if row is None:
                continue
            ids = self.db.execute("SELECT id FROM chunks WHERE doc_id=?", (row[0],)).fetchall()
            chunk_ids.extend(i for (i,) in ids)
            self.db.execute("DELETE FROM chunks WHERE doc_id=?", (row[0],))
            self.db.execute("DELETE FROM documents WHERE id=?", (row[0],))
        return chunk_ids

    def _bump_generation(self) -> None:
        self._set_meta("generation", str(self.generation + 1))

    # --- vectors ----------------------------------------------------------------------------

    def _faiss_path(self, generation: int) -> Path:
        return self.directory / f"vectors-{generation:010d}.faiss"

    def _faiss_remove(self, ids: list[int]) -> None:
        import numpy as np

        if ids:
            self._faiss.remove_ids(np.asarray(ids, dtype=np.int64))

    def faiss_index(self) -> Any:
        """Return the FAISS index of this generation, loading or rebuilding it as needed."""
        if self._faiss is not None:
            return self._faiss
        index = _read_faiss(self._faiss_path(self.generation))
        if index is None or index.ntotal != self.chunk_count():
            index = self._rebuild_faiss()
        self._faiss = index
        return index

    def _rebuild_faiss(self) -> Any:
        import faiss
        import numpy as np

        info = self.embedder_info()
        dim = info.dim if info else 0
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        cursor = self.db.execute("SELECT id, vector FROM chunks ORDER BY id")
        while rows := cursor.fetchmany(4096):
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
            index.add_with_ids(vecs.reshape(len(rows), dim), ids)
        return index

    def save_vectors(self) -> None:
        """Write the FAISS index for the current generation atomically; drop stale ones."""
        path = self._faiss_path(self.generation)
        if not path.exists():
            self._save_faiss(self.faiss_index(), path, "the vector index")
        for stale in self.directory.glob("vectors-*"):
            if stale != path:
                stale.unlink(missing_ok=True)

    def _save_faiss(self, index: Any, path: Path, what: str) -> None:
        """Write a FAISS index to `path` atomically; a failed write raises IndexWriteError."""
        import faiss

        what = f"{what} {path.name}"
        needed = index.ntotal * (index.d * 4 + 8) + 4096  # float32 vectors and int64 ids
        _check_room(self.directory, what, needed)

        def write(handle: BinaryIO) -> None:
            # through Python's file, not FAISS's own writer: that one ignores a failed fclose,
            # so a full disk could leave a truncated file without any error
            faiss.write_index(index, faiss.PyCallbackIOWriter(handle.write))  # type: ignore[attr-defined]

        try:
            atomic_write(path, write)
        except (OSError, RuntimeError) as exc:
            error = write_error(self.directory, what, exc, needed)
            if error is None:
                raise
            raise error from exc

    def hnsw_index(self, m: int = 32, ef_search: int = 128) -> Any:
        """An approximate (HNSW) index of the same vectors, for large corpora.

        Derived from SQLite like the exact index and saved per generation; removals rebuild
        it (HNSW cannot delete). `ef_search` trades speed for recall at query time.
        """
        import faiss

        if self._hnsw is None:
            path = self.directory / f"hnsw-{self.generation:010d}-m{m}.faiss"
            index = _read_faiss(path)
            if index is None or index.ntotal != self.chunk_count():
                exact = self.faiss_index()
                ids = faiss.vector_to_array(exact.id_map).astype("int64")
                vectors = exact.index.reconstruct_n(0, exact.ntotal) if exact.ntotal else None
                hnsw = faiss.IndexHNSWFlat(exact.d, m, faiss.METRIC_INNER_PRODUCT)
                hnsw.hnsw.efConstruction = 80
                index = faiss.IndexIDMap2(hnsw)
                if vectors is not None:
                    index.add_with_ids(vectors, ids)
                self._save_faiss(index, path, "the approximate vector index")
                for stale in self.directory.glob("hnsw-*"):
                    if stale != path:
                        stale.unlink(missing_ok=True)
            self._hnsw = index
        faiss.downcast_index(self._hnsw.index).hnsw.efSearch = ef_search  # type: ignore[attr-defined]
        return self._hnsw

    # --- keyword index ----------------------------------------------------------------------

    def _bm25_path(self, generation: int) -> Path:
        return self.directory / f"bm25-{generation:010d}"

    def bm25_index(self) -> Any:
        """Return the BM25 index of this generation, loading or rebuilding it as needed."""
        if self._bm25 is not None:
            return self._bm25
        from rag.bm25 import BM25Index

        path = self._bm25_path(self.generation)
        index = None
        if path.is_dir():
            try:
                index = BM25Index.load(path)
            except (ConfigError, IndexFormatError, OSError, ValueError):
                index = None
        if index is None or len(index) != self.chunk_count():
            ids, texts = [], []
            for chunk_id, heading, text in self.db.execute(
                "SELECT id, heading, text FROM chunks ORDER BY id"
            ):
                ids.append(chunk_id)
                texts.append(f"{heading}\n{text}" if heading else text)
            index = BM25Index.build(ids, texts)
        self._bm25 = index
        return index

    def save_bm25(self) -> None:
        """Rebuild the BM25 index if the chunks changed, save it atomically, drop stale ones."""
        path = self._bm25_path(self.generation)
        if not path.is_dir():
            self._bm25 = None
            try:
                self.bm25_index().save(path)
            except OSError as exc:
                error = write_error(self.directory, f"the keyword index {path.name}/", exc)
                if error is None:
                    raise
                raise error from exc
        for stale in self.directory.glob("bm25-*"):
            if stale != path:
                shutil.rmtree(stale, ignore_errors=True)
        for stale in self.directory.glob(".bm25-*"):
            shutil.rmtree(stale, ignore_errors=True)

    # --- reads ------------------------------------------------------------------------------

    def chunk_count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])

    def chunks_by_id(self, ids: Iterable[int]) -> dict[int, StoredChunk]:
        """Fetch chunks with their document's key and source."""
        ids = list(ids)
        found: dict[int, StoredChunk] = {}
        for offset in range(0, len(ids), 500):
            part = ids[offset : offset + 500]
            marks = ",".join("?" * len(part))
            rows = self.db.execute(
                "SELECT c.id, d.key, d.source, d.kind, c.ord, c.text, c.start, c.end, c.page,"
                " c.heading FROM chunks c JOIN documents d ON d.id = c.doc_id"
                f" WHERE c.id IN ({marks})",
                part,
            )
            for row in rows:
                found[row[0]] = StoredChunk(*row)
        return found

    def iter_chunks(self, key: str | None = None) -> Iterator[StoredChunk]:
        """Every chunk (or every chunk of document `key`) in (document key, ord) order."""
        sql = (
            "SELECT c.id, d.key, d.source, d.kind, c.ord, c.text, c.start, c.end, c.page,"
            " c.heading FROM chunks c JOIN documents d ON d.id = c.doc_id"
        )
        args: tuple[str, ...] = ()
        if key is not None:
            sql, args = sql + " WHERE d.key = ?", (key,)
        for row in self.db.execute(sql + " ORDER BY d.key, c.ord", args).fetchall():
            yield StoredChunk(*row)

    def documents_indexed_since(self, when: float) -> int:
        """Count documents written (added or re-indexed) after the Unix time `when`."""
        sql = "SELECT COUNT(*) FROM documents WHERE indexed_at > ?"
        return int(self.db.execute(sql, (when,)).fetchone()[0])

    def chunk_ids_matching(self, path_glob: str | None, kinds: Iterable[str] | None) -> set[int]:
        """Chunk ids whose document key matches a shell glob and whose kind is one of `kinds`."""
        where, args = [], []
        if path_glob:
            where.append("d.key GLOB ?")
            args.append(path_glob)
        kinds = [k.lower().lstrip(".") for k in kinds or []]
        if kinds:
            where.append(f"d.kind IN ({','.join('?' * len(kinds))})")
            args.extend(kinds)
        sql = "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return {i for (i,) in self.db.execute(sql, args)}

    def stats(self) -> StoreStats:
        documents = int(self.db.execute("SELECT COUNT(*) FROM documents").fetchone()[0])
        info = self.embedder_info()
        size = sum(p.stat().st_size for p in self.directory.iterdir() if p.is_file())
        return StoreStats(
            path=str(self.directory),
            documents=documents,
            chunks=self.chunk_count(),
            embedder=info.name if info else "",
            bytes=size,
        )

    def consistency_problems(self) -> list[str]:
        """List every way FAISS and SQLite disagree (empty when consistent)."""
        index = self.faiss_index()
        import faiss

        faiss_ids = {int(i) for i in faiss.vector_to_array(index.id_map)}
        sql_ids = {i for (i,) in self.db.execute("SELECT id FROM chunks")}
        problems = []
        if faiss_ids - sql_ids:
            problems.append(f"{len(faiss_ids - sql_ids)} vectors without a chunk row")
        if sql_ids - faiss_ids:
            problems.append(f"{len(sql_ids - faiss_ids)} chunk rows without a vector")
        orphans = self.db.execute(
            "SELECT COUNT(*) FROM chunks WHERE doc_id NOT IN (SELECT id FROM documents)"
        ).fetchone()[0]
        if orphans:
            problems.append(f"{orphans} chunks without a document")
        return problems

    def close(self) -> None:
        self.db.close()


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


def _check_room(directory: Path, what: str, needed: int) -> None:
    """Raise DiskFullError before writing `needed` bytes that cannot fit."""
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        return
    if free < needed:
        raise disk_full_error(directory, what, needed)


def _read_faiss(path: Path) -> Any:
    """Read a FAISS file; None when it is missing or unreadable (it is rebuilt from SQLite)."""
    import faiss

    if not path.exists():
        return None
    try:
        return faiss.read_index(str(path))
    except RuntimeError:
        return None


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
