"""The index database: SQLite is the source of truth, vector and keyword indexes caches of it.

Layout of an index directory:
    index.sqlite              documents (manifest: key -> sha256 + config hash), chunks with
                              text, spans, page, heading and their vectors; meta (format version,
                              embedder, generation counter)
    vectors-<generation>.faiss  exact inner-product index of the same vectors, keyed by chunk id
                              (or hnsw-<generation>-m<M>.faiss, ivfpq-<generation>-….faiss:
                              the vector backend's own file, rag/vectors/)
    bm25-<generation>/        BM25 index over the same chunks (heading + text), rebuilt per change
    probes.json               label-free retrieval probes and their measurement history
                              (rag/eval/probes.py); not derived from SQLite, kept across re-ingests
    lock                      held by the one process that writes

Every write is one SQLite transaction that replaces whole documents (rows and vectors
together) and bumps the generation, so a document's hash is recorded only with its vectors.
A FAISS file or BM25 folder is trusted only when its generation matches SQLite's; otherwise
it is rebuilt from SQLite. A `kill -9` at any moment therefore leaves a consistent index.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rag.chunking import with_heading
from rag.errors import IndexFormatError, IndexNotFoundError
from rag.keyword_index import KeywordBackend, KeywordIndex
from rag.store.write_errors import check_room, write_error
from rag.vectors import (
    VECTOR_FILE_PREFIXES,
    FlatBackend,
    TrainedIndex,
    VectorBackend,
    VectorIndex,
)
from rag.vectors.rescore import exact_top

if TYPE_CHECKING:
    import numpy as np

    from rag.chunking import Chunk
    from rag.embed.base import EmbedderInfo

log = logging.getLogger(__name__)

FORMAT_VERSION = 2
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
    indexed_at REAL NOT NULL,
    info TEXT NOT NULL DEFAULT '{}'
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
    vector BLOB NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
"""

# Upgrades in place, from format N to N + 1; nothing indexed is lost.
_MIGRATIONS: dict[int, list[str]] = {
    1: [
        "ALTER TABLE documents ADD COLUMN info TEXT NOT NULL DEFAULT '{}'",
        "ALTER TABLE chunks ADD COLUMN detail TEXT",
    ],
}


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
    info: dict = field(default_factory=dict)  # e-mail metadata, OCR'd pages, warnings


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
    detail: str | None = None


@dataclass(frozen=True)
class DocumentRow:
    """A document as listed to a user: its id, where it came from, and its size in chunks."""

    id: int
    path: str
    kind: str
    pages: int | None
    size: int
    chunks: int
    indexed_at: float
    info: dict = field(default_factory=dict)


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

    def __init__(
        self,
        directory: Path,
        *,
        create: bool = False,
        vectors: VectorBackend | None = None,
        keywords: KeywordBackend | None = None,
    ) -> None:
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
        self.vector_backend: VectorBackend = vectors or FlatBackend()
        if keywords is None:
            from rag.bm25 import BM25Backend  # bm25s loads only when an index is opened

            keywords = BM25Backend()
        self.keyword_backend: KeywordBackend = keywords
        self._vectors: VectorIndex | None = None
        self._keywords: KeywordIndex | None = None
        self._lock = threading.RLock()  # derived indexes are loaded once, whoever asks first

    # --- meta -----------------------------------------------------------------------------

    def _init_schema(self) -> None:
        version = None
        has_meta = self.db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
        ).fetchone()
        if has_meta:
            row = self.db.execute("SELECT value FROM meta WHERE key='format_version'").fetchone()
            version = int(row[0]) if row else None
        if version in _MIGRATIONS:
            with self.transaction("upgrading the index format"):
                while version in _MIGRATIONS:
                    for statement in _MIGRATIONS[version]:
                        self.db.execute(statement)
                    version += 1
                self._set_meta("format_version", str(version))
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
        from rag.embed.base import EmbedderInfo

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
        self.refuse_other_embedder(info)

    def refuse_other_embedder(self, info: EmbedderInfo) -> None:
        """Raise IndexFormatError unless the index was built with `info` (or is new)."""
        stored = self.embedder_info()
        if stored is None:
            return
        if (stored.name, stored.dim, stored.fingerprint) != (info.name, info.dim, info.fingerprint):
            raise IndexFormatError(
                f"index at {self.directory} was built with embedder {stored.name} "
                f"(dim {stored.dim}, fingerprint {stored.fingerprint}), not {info.name} "
                f"(dim {info.dim}, fingerprint {info.fingerprint}); use that embedder, or "
                "ingest into another --index directory"
            )
        if not stored.same_vectors(info):
            from rag.embed.base import REQUIRED_COSINE

            raise IndexFormatError(
                f"index at {self.directory} was embedded by the {stored.encoder or 'torch'} "
                f"encoder, whose vectors the {info.encoder} encoder does not reproduce within "
                f"cosine {REQUIRED_COSINE}; set ingest.encoder={stored.encoder or 'torch'}, or "
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
        self.vector_index(keep=False)  # load before writing: updated in place, not rebuilt
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
                    " indexed_at, info) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        doc.key,
                        doc.source,
                        doc.kind,
                        doc.sha256,
                        doc.config_hash,
                        doc.size,
                        doc.pages,
                        now,
                        json.dumps(doc.info, ensure_ascii=False),
                    ),  # fmt: skip
                )
                doc_id = cursor.lastrowid
                for chunk in chunks:
                    cursor = self.db.execute(
                        "INSERT INTO chunks(doc_id, ord, text, start, end, page, heading,"
                        " n_tokens, vector, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                            chunk.detail,
                        ),  # fmt: skip
                    )
                    new_ids.append(int(cursor.lastrowid or 0))
                    row += 1
            self._bump_generation()
        self._update_vectors(removed, np.asarray(new_ids, dtype=np.int64), vectors)

    def remove_documents(self, keys: Iterable[str]) -> None:
        """Remove documents and their chunks and vectors in one transaction."""
        keys = list(keys)
        if not keys:
            return
        self.vector_index(keep=False)
        with self.transaction(f"the removal of {len(keys)} documents"):
            removed = self._delete_keys(keys)
            self._bump_generation()
        self._update_vectors(removed)

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

    def _update_vectors(
        self, removed: list[int], ids: np.ndarray | None = None, vectors: np.ndarray | None = None
    ) -> None:
        """Bring the loaded derived indexes in line with a committed write (or drop them)."""
        import numpy as np

        with self._lock:
            self._keywords = None
            index = self._vectors
            if index is None:
                return
            if removed and not index.remove(np.asarray(removed, dtype=np.int64)):
                self._vectors = None  # this kind cannot delete: rebuilt on next use
                return
            if ids is not None and vectors is not None and len(ids):
                index.add(ids, vectors)

    # --- derived indexes ----------------------------------------------------------------

    def vector_index(self, *, keep: bool = True) -> VectorIndex:
        """Return the vector index of this generation, loading or rebuilding it as needed.

        A rebuilt index is saved for the next process (an HNSW graph takes long to build)
        unless `keep` is False: a write is about to make this generation stale anyway.
        """
        with self._lock:
            if self._vectors is None:
                path = self.directory / self.vector_backend.file_name(self.generation)
                index = self.vector_backend.load(path)
                if index is None or len(index) != self.chunk_count():
                    index = self._rebuild_vectors()
                    try:
                        if keep:
                            index.save(path)
                    except OSError as exc:
                        log.debug("could not save %s: %s", path, exc)
                self._vectors = index
            return self._vectors

    def _rebuild_vectors(self) -> VectorIndex:
        import numpy as np

        info = self.embedder_info()
        dim = info.dim if info else 0
        index = self.vector_backend.create(dim)
        if isinstance(index, TrainedIndex):  # trained on a random sample, not the first rows
            index.train(self.chunk_count(), self.sample_vectors)
        cursor = self.db.execute("SELECT id, vector FROM chunks ORDER BY id")
        while rows := cursor.fetchmany(4096):
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
            index.add(ids, vecs.reshape(len(rows), dim))
        return index

    def save_vectors(self) -> None:
        """Write the vector index for the current generation atomically; drop stale ones."""
        path = self.directory / self.vector_backend.file_name(self.generation)
        if not path.exists():
            index = self.vector_index()
            if isinstance(index, TrainedIndex) and index.wants_rebuild:
                with self._lock:  # outgrown its layout: re-trained for its size
                    index = self._vectors = self._rebuild_vectors()
            if isinstance(index, TrainedIndex):
                needed = index.nbytes + 4096
            else:
                info = self.embedder_info()
                needed = len(index) * ((info.dim if info else 0) * 4 + 8) + 4096  # vectors, ids
            self._write(f"the vector index {path.name}", lambda: index.save(path), needed)
        for stale in self.directory.glob(f"{self.vector_backend.name}-*"):
            if stale != path:
                stale.unlink(missing_ok=True)
        # another built-in backend's file of an older generation is never read again (a
        # flat one at 10 M chunks is 15 GB); one of this generation is kept for a switch back
        for stale in self.directory.glob("*-*.faiss"):
            prefix, _, rest = stale.name.partition("-")
            if prefix in VECTOR_FILE_PREFIXES and rest[:10] != f"{self.generation:010d}":
                stale.unlink(missing_ok=True)

    def _write(self, what: str, write: Callable[[], None], needed: int = 0) -> None:
        """Run `write`; a write that fails (full disk, read-only) raises IndexWriteError."""
        if needed:
            check_room(self.directory, what, needed)
        try:
            write()
        except (OSError, RuntimeError) as exc:
            error = write_error(self.directory, what, exc, needed)
            if error is None:
                raise
            raise error from exc

    def dense_search(
        self, vector: np.ndarray, k: int, allowed: Collection[int] | None = None
    ) -> list[tuple[int, float]]:
        """The `k` best (chunk id, inner product) for one query row from the vector index,
        best first. An approximate index's best `rescore` candidates (at least 2·k) are
        re-scored with the exact vectors from SQLite; an `allowed` set no bigger than that
        is scored exactly without the index."""
        import numpy as np

        index = self.vector_index()
        depth = index.rescore if isinstance(index, TrainedIndex) else 0
        if depth <= 0:
            return index.search(vector, k, allowed)
        depth = max(depth, 2 * k)
        if allowed is not None and len(allowed) <= depth:
            ids = np.fromiter(allowed, dtype=np.int64, count=len(allowed))
        else:
            ids = np.asarray([i for i, _ in index.search(vector, depth, allowed)], dtype=np.int64)
        return exact_top(vector, ids, self.vectors_by_id(ids), k)

    def keyword_index(self) -> KeywordIndex:
        """Return the keyword index of this generation, loading or rebuilding it as needed."""
        with self._lock:
            if self._keywords is None:
                path = self._keyword_path(self.generation)
                index = self.keyword_backend.load(path)
                if index is None or len(index) != self.chunk_count():
                    ids, texts = [], []
                    for chunk_id, heading, text in self.db.execute(
                        "SELECT id, heading, text FROM chunks ORDER BY id"
                    ):
                        ids.append(chunk_id)
                        texts.append(with_heading(heading, text))
                    index = self.keyword_backend.build(ids, texts)
                self._keywords = index
            return self._keywords

    def _keyword_path(self, generation: int) -> Path:
        return self.directory / f"{self.keyword_backend.name}-{generation:010d}"

    def save_keywords(self) -> None:
        """Save the keyword index of the current generation atomically; drop stale ones."""
        import shutil

        name = self.keyword_backend.name
        path = self._keyword_path(self.generation)
        if not path.is_dir() or self.keyword_backend.load(path) is None:
            self._keywords = None
            index = self.keyword_index()
            self._write(f"the keyword index {path.name}/", lambda: index.save(path))
        for stale in self.directory.glob(f"{name}-*"):
            if stale != path:
                shutil.rmtree(stale, ignore_errors=True)
        for stale in self.directory.glob(f".{name}-*"):
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
                " c.heading, c.detail FROM chunks c JOIN documents d ON d.id = c.doc_id"
                f" WHERE c.id IN ({marks})",
                part,
            )
            for row in rows:
                found[row[0]] = StoredChunk(*row)
        return found

    def vectors_by_id(self, ids: Iterable[int]) -> np.ndarray:
        """The stored vectors of `ids` (float32, one row each, in order); a row of NaN for an
        id with no chunk (removed since an index was loaded)."""
        import numpy as np

        ids = [int(i) for i in ids]
        info = self.embedder_info()
        found: dict[int, bytes] = {}
        for offset in range(0, len(ids), 500):
            part = ids[offset : offset + 500]
            marks = ",".join("?" * len(part))
            found.update(self.db.execute(f"SELECT id, vector FROM chunks WHERE id IN ({marks})",
                                         part).fetchall())  # fmt: skip
        dim = info.dim if info else len(next(iter(found.values()), b"")) // 4
        out = np.full((len(ids), dim), np.nan, dtype=np.float32)
        for row, chunk_id in enumerate(ids):
            if (blob := found.get(chunk_id)) is not None:
                out[row] = np.frombuffer(blob, dtype=np.float32)
        return out

    def sample_vectors(self, count: int, seed: int = 0) -> np.ndarray:
        """`count` stored vectors drawn at random (all of them when there are fewer)."""
        import numpy as np

        ids = np.fromiter((i for (i,) in self.db.execute("SELECT id FROM chunks")), np.int64)
        if count < len(ids):
            ids = np.sort(np.random.default_rng(seed).choice(ids, count, replace=False))
        return self.vectors_by_id(ids.tolist())

    def iter_chunks(self, key: str | None = None) -> Iterator[StoredChunk]:
        """Every chunk (or every chunk of document `key`) in (document key, ord) order."""
        sql = (
            "SELECT c.id, d.key, d.source, d.kind, c.ord, c.text, c.start, c.end, c.page,"
            " c.heading, c.detail FROM chunks c JOIN documents d ON d.id = c.doc_id"
        )
        args: tuple[str, ...] = ()
        if key is not None:
            sql, args = sql + " WHERE d.key = ?", (key,)
        for row in self.db.execute(sql + " ORDER BY d.key, c.ord", args).fetchall():
            yield StoredChunk(*row)

    def documents(self, document_id: int | None = None) -> list[DocumentRow]:
        """Every document (or the one with `document_id`), by path, with its chunk count."""
        sql = ("SELECT d.id, d.key, d.kind, d.pages, d.size, COUNT(c.id), d.indexed_at, d.info"
               " FROM documents d LEFT JOIN chunks c ON c.doc_id = d.id")  # fmt: skip
        args: tuple = ()
        if document_id is not None:
            sql, args = sql + " WHERE d.id = ?", (document_id,)
        rows = self.db.execute(sql + " GROUP BY d.id ORDER BY d.key", args).fetchall()
        return [DocumentRow(i, key, kind, pages, size, chunks, at, json.loads(info))
                for i, key, kind, pages, size, chunks, at, info in rows]  # fmt: skip

    def keys_matching(self, pattern: str) -> list[str]:
        """The document keys that match a shell glob (SQLite GLOB: case-sensitive), sorted."""
        sql = "SELECT key FROM documents WHERE key GLOB ? ORDER BY key"
        return [key for (key,) in self.db.execute(sql, (pattern,))]

    def keys_pending_ocr(self) -> list[str]:
        """Documents with pages that were not OCR'd because OCR could not run then."""
        sql = "SELECT key FROM documents WHERE json_extract(info, '$.ocr_pending') IS NOT NULL"
        return [key for (key,) in self.db.execute(sql)]

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
        """List every way the vector index and SQLite disagree (empty when consistent)."""
        faiss_ids = {int(i) for i in self.vector_index().ids()}
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
