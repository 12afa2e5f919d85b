"""The per-document work of an ingest, load → chunk, as a function of its inputs alone.

The driver (rag/ingest.py) finds files, hashes them and picks the new or changed documents;
`prepare` turns one of them into its manifest record and chunks, or says why it could not.
The local ingest calls it in process; a Ray ingest (rag/distributed.py) calls it on the
cluster's workers, which read the file themselves.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

from rag.chunking import Chunk, TokenCounter, chunk_document
from rag.discover import describe_os_error
from rag.errors import LoaderError, ServerError
from rag.loaders import Document, load_document
from rag.store import DocumentRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    """A new or changed document: a file to read and load, or a container part loaded already.

    `where` names it in failures (the file, or "<file> line 3"); `path` is the file it comes
    from; `sha256` and `size` are what the driver read. A file read again (on a worker) is
    hashed again, so the record always holds the hash of the bytes that were indexed.
    """

    where: str
    path: str
    kind: str
    sha256: str
    config_hash: str
    size: int
    document: Document | None = None


@dataclass(frozen=True)
class Chunker:
    """How documents are cut: the embedder's own token counter, chunk size, overlap, and
    whether every chunk of a section is embedded with its heading."""

    counter: TokenCounter
    max_tokens: int
    overlap: float
    repeat_heading: bool = True


@dataclass(frozen=True)
class Prepared:
    """A document ready to embed: its manifest record, its chunks, and what its loader said."""

    where: str
    record: DocumentRecord
    chunks: list[Chunk]
    warnings: list[str] = field(default_factory=list)
    ocr_pages: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Failure:
    """A document that could not be prepared: `path` names it as reports do, `error` why."""

    path: str
    error: str


def prepare(source: Source, chunker: Chunker, data: bytes | None = None) -> Prepared | Failure:
    """Load (unless loaded) and chunk one document; any problem becomes a `Failure`.

    `data` is the file's bytes when the caller has them; else the file is read here. Only a
    ServerError (the embedder's server is down: every other document would fail the same way)
    is raised.
    """
    document, sha, size = source.document, source.sha256, source.size
    if document is None:
        try:
            if data is None:
                data = read_file(source.path)
                sha, size = hashlib.sha256(data).hexdigest(), len(data)
            document = load_document(source.path, source.kind, data)
        except LoaderError as exc:
            return Failure(exc.path, exc.problem)
        except Exception as exc:  # a loader bug on one odd file must not stop the batch
            log.debug("unexpected error on %s", source.path, exc_info=True)
            return Failure(source.path, unexpected(exc))
    try:
        chunks = chunk_document(document, chunker.counter, chunker.max_tokens, chunker.overlap,
                                chunker.repeat_heading)  # fmt: skip
    except ServerError:
        raise
    except Exception as exc:  # a chunker or tokenizer bug on one odd document
        log.debug("unexpected error chunking %s", source.where, exc_info=True)
        return Failure(source.where, unexpected(exc))
    if not chunks:
        return Failure(source.where, "no text to index")
    record = make_record(document, source.path, sha, source.config_hash, size)
    return Prepared(source.where, record, chunks, list(document.warnings),
                    list(document.ocr_pages))  # fmt: skip


def read_file(path: str) -> bytes:
    """A file's bytes; an OS error becomes a LoaderError that says what to do."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise LoaderError(path, describe_os_error(exc)) from None


def make_record(
    document: Document, source: str, sha: str, config_hash: str, size: int
) -> DocumentRecord:
    """The manifest row of a loaded document, with what its loader found out about it."""
    info: dict = dict(document.meta)
    if document.ocr_pages:
        info["ocr_pages"] = document.ocr_pages
    if document.empty_pages:
        info["empty_pages"] = document.empty_pages
    if document.warnings:
        info["warnings"] = document.warnings
    return DocumentRecord(document.key, source, document.kind, sha, config_hash, size,
                          document.pages, info)  # fmt: skip


def unexpected(exc: BaseException) -> str:
    """How a bug (an exception that is not a RagError) is reported."""
    return f"unexpected {type(exc).__name__}: {exc} (see --debug)"
