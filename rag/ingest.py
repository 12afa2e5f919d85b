"""Ingest: discover → hash → (load → chunk → embed → store) for what changed; prune deletions.

Unchanged documents (same content sha256 and same chunking/embedder config) are recognised
from the manifest alone, so a re-run over an unchanged corpus never loads the model.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Generator, Iterable
from contextlib import closing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Protocol

from rag.chunking import Chunk, chunk_document
from rag.discover import SourceFile, describe_os_error, discover, is_under
from rag.embed import Embedder
from rag.errors import ConfigError, LoaderError, RagError, ServerError
from rag.loaders import CONTAINERS, Document, load_document
from rag.loaders.ocr import OcrOptions, unavailable, use_ocr
from rag.settings import ChunkSettings, IngestSettings, Settings
from rag.store import DocumentRecord, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FailedFile:
    """A file that could not be indexed, and why."""

    path: str
    error: str


@dataclass
class IngestReport:
    """What an ingest run did. `failed` files keep whatever version was indexed before.

    `error` is set when writing to the index failed (embedding a batch, SQLite, disk full):
    the run stopped there, `not_written` documents of that batch were not written (they keep
    their earlier version), nothing was removed, and everything written before is kept.
    """

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: int = 0
    failed: list[FailedFile] = field(default_factory=list)
    chunks: int = 0
    warnings: list[str] = field(default_factory=list)
    ocr_pages: dict[str, list[int]] = field(default_factory=dict)  # document key -> pages
    seconds: float = 0.0
    probe_recall: dict | None = None  # the label-free probes re-measured (rag/eval/probes.py)
    error: str | None = None
    not_written: int = 0

    @property
    def changed(self) -> int:
        """Documents added, updated or removed."""
        return self.added + self.updated + self.removed

    @property
    def ok(self) -> bool:
        return not self.failed and self.error is None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> IngestReport:
        """The report `to_dict` gave (keys it does not know are ignored)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["failed"] = [FailedFile(**f) for f in data.get("failed", [])]
        return cls(**values)


class IngestProgress(Protocol):
    """Receives progress events; the CLI draws a bar from them.

    An object may also have `ocr_page(path, done, total)`: called as the pages of a scanned
    document are OCR'd (slow: seconds a page), so a long scan shows it is moving.
    """

    def start(self, total_files: int) -> None: ...

    def file_done(self, path: str) -> None: ...

    def chunks_embedded(self, count: int) -> None: ...


class _NoProgress:
    def start(self, total_files: int) -> None:
        pass

    def file_done(self, path: str) -> None:
        pass

    def chunks_embedded(self, count: int) -> None:
        pass


@dataclass
class _Pending:
    items: list[tuple[DocumentRecord, list[Chunk]]] = field(default_factory=list)
    chunks: int = 0


_Documents = Generator[tuple[str, DocumentRecord, Document], None, None]


class _WriteFailed(Exception):
    """Writing a batch (or the prune, or the caches) failed; `report.error` says why."""


def run_ingest(
    store: Store,
    embedder: Embedder,
    all_settings: Settings,
    paths: Iterable[str | Path],
    progress: IngestProgress | None = None,
) -> IngestReport:
    """Bring the index in line with `paths`: add, update, keep, and remove documents.

    A problem with one file (or one record of a .jsonl collection) is reported in `failed`
    and the run goes on. A failure to write to the index stops the run: it is reported in
    `error`, nothing is pruned, and every batch written before it stays indexed.
    """
    started = time.perf_counter()
    progress = progress or _NoProgress()
    report = IngestReport()
    settings, chunking = all_settings.ingest, all_settings.chunk
    max_tokens = chunking.max_tokens or embedder.info.max_tokens
    if max_tokens > embedder.info.max_tokens:
        raise ConfigError(
            f"chunk max_tokens={max_tokens} exceeds the embedder's limit of "
            f"{embedder.info.max_tokens} word pieces; text past it would be invisible to search"
        )
    config_hash = all_settings.content_hash(embedder.info.fingerprint)
    found = discover(paths, include_hidden=settings.include_hidden)
    manifest = store.manifest()
    for root in found.missing:
        if not any(is_under(key, root) for key in manifest):
            raise ConfigError(f"{root}: no such file or directory")
    report.skipped = len(found.skipped)
    report.failed.extend(FailedFile(e.path, e.problem) for e in found.errors)
    seen: set[str] = set()
    pending = _Pending()

    def flush() -> None:
        try:
            _flush(store, embedder, manifest, pending, report, progress)
        except Exception as exc:
            report.not_written = len(pending.items)
            report.error = _write_failure(exc, store, pending)
            raise _WriteFailed from exc

    progress.start(len(found.files))
    ocr = OcrOptions.from_settings(settings, getattr(progress, "ocr_page", None))
    _retry_pending_ocr(store, manifest, ocr)
    try:
        with use_ocr(ocr):  # the loaders' OCR options (scanned PDF pages, images)
            for source in found.files:
                documents = _changed_documents(
                    source, settings, config_hash, manifest, seen, report
                )
                with closing(documents):
                    for where, record, document in documents:
                        chunks = _chunk(where, document, embedder, max_tokens, chunking, report)
                        if chunks:
                            report.warnings.extend(document.warnings)
                            if document.ocr_pages:
                                report.ocr_pages[document.key] = document.ocr_pages
                            pending.items.append((record, chunks))
                            pending.chunks += len(chunks)
                        if pending.chunks >= settings.flush_chunks:
                            flush()  # outside any per-file handler: a failure here is no file's
                progress.file_done(source.path)
        flush()
        gone = [
            key
            for key in manifest
            if key not in seen and any(is_under(key, root) for root in found.roots)
        ]
        _write(report, lambda: store.remove_documents(gone))
        report.removed = len(gone)
    except _WriteFailed:
        pass  # the run stopped: no prune, since not every file was reached
    config = {"config_hash": config_hash,
              "chunk": {"max_tokens": max_tokens, "overlap": chunking.overlap}}  # fmt: skip
    try:
        if report.added or report.updated:  # also after a stop: those documents are written
            _write(report, lambda: store.record_ingest_config(config))
        if report.error is None:  # else the caches are rebuilt from SQLite when next opened
            _write(report, store.save_vectors)
            _write(report, store.save_keywords)
    except _WriteFailed:
        pass
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _retry_pending_ocr(
    store: Store, manifest: dict[str, tuple[str, str]], ocr: OcrOptions
) -> None:
    """Re-read documents indexed while OCR could not run (Tesseract missing, OCR off), now
    that it can: their manifest hash is forgotten, so they count as changed."""
    pending = store.keys_pending_ocr()
    if pending and unavailable(ocr) is None:
        for key in pending:
            if key in manifest:
                manifest[key] = ("", manifest[key][1])


def _write(report: IngestReport, write: Callable[[], None]) -> None:
    """Run one write to the index; on failure put the reason on `report` and stop the run."""
    try:
        write()
    except Exception as exc:
        log.debug("index write failed", exc_info=True)
        if report.error is None:  # keep the first reason
            report.error = str(exc) if isinstance(exc, RagError) else _unexpected(exc)
        raise _WriteFailed from exc


def _write_failure(exc: Exception, store: Store, pending: _Pending) -> str:
    """Say why a batch could not be written, and that nothing indexed before was lost."""
    log.debug("writing a batch failed", exc_info=True)
    if isinstance(exc, RagError):
        return str(exc)
    return (
        f"writing a batch of {len(pending.items)} documents ({pending.chunks} chunks) to the "
        f"index at {store.directory} failed: {_unexpected(exc)}; the run stopped there, those "
        "documents keep their earlier version and nothing was removed — rerun to finish"
    )


def _unexpected(exc: BaseException) -> str:
    return f"unexpected {type(exc).__name__}: {exc} (see --debug)"


def _changed_documents(
    source: SourceFile,
    settings: IngestSettings,
    config_hash: str,
    manifest: dict[str, tuple[str, str]],
    seen: set[str],
    report: IngestReport,
) -> _Documents:
    """Yield (where, record, document) for each new or changed document of one file.

    `where` names the file (or the line of a .jsonl record) in failures. A problem reading
    the file is put on `report.failed` and never raised; if it stops the file part way, the
    documents it was going to revisit keep their indexed versions.
    """
    try:
        if source.kind in CONTAINERS:
            yield from _container_documents(source, config_hash, manifest, seen, report)
            return
        seen.add(source.path)  # from here on, a failure keeps the indexed version
        size = os.path.getsize(source.path)
        limit = int(settings.max_file_mb * 1024 * 1024)
        if size > limit:
            raise LoaderError(
                source.path,
                f"file is {size / 2**20:.0f} MB, over the {settings.max_file_mb:g} MB limit; "
                "split it or raise the limit (--max-file-mb)",
            )
        try:
            with open(source.path, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise LoaderError(source.path, describe_os_error(exc)) from None
        sha = hashlib.sha256(data).hexdigest()
        if manifest.get(source.path) == (sha, config_hash):
            report.unchanged += 1
            return
        document = load_document(source.path, source.kind, data)
        yield source.path, _record(document, source.path, sha, config_hash, size), document
    except LoaderError as exc:
        report.failed.append(FailedFile(exc.path, exc.problem))
        _keep_indexed(source, manifest, seen)
    except Exception as exc:  # a loader bug on one odd file must not stop the batch
        log.debug("unexpected error on %s", source.path, exc_info=True)
        report.failed.append(FailedFile(source.path, _unexpected(exc)))
        _keep_indexed(source, manifest, seen)


def _keep_indexed(source: SourceFile, manifest: dict[str, tuple[str, str]], seen: set[str]) -> None:
    """Mark every indexed document of a failed file as seen, so the prune keeps it."""
    seen.add(source.path)
    if source.kind in CONTAINERS:
        prefix = source.path + "#"
        seen.update(key for key in manifest if key.startswith(prefix))


def _container_documents(
    source: SourceFile,
    config_hash: str,
    manifest: dict[str, tuple[str, str]],
    seen: set[str],
    report: IngestReport,
) -> _Documents:
    """Yield the new or changed parts of a container file; a bad part fails alone."""
    first_seen: dict[str, str] = {}
    for part in CONTAINERS[source.kind](Path(source.path), source.path):
        if isinstance(part, LoaderError):
            report.failed.append(FailedFile(part.path, part.problem))
            continue
        if part.key in first_seen:
            doc_id = part.key[len(source.path) + 1 :]
            report.failed.append(FailedFile(part.where, (
                f"duplicate id {doc_id!r} (first: {first_seen[part.key]}); ids must "
                "be unique within a collection")))  # fmt: skip
            continue
        first_seen[part.key] = part.where
        seen.add(part.key)  # from here on, a failure keeps the indexed version
        sha = hashlib.sha256(part.raw).hexdigest()
        if manifest.get(part.key) == (sha, config_hash):
            report.unchanged += 1
            continue
        try:
            document = part.load()
        except LoaderError as exc:
            report.failed.append(FailedFile(part.where, exc.problem))
            continue
        except Exception as exc:  # one odd part must not stop the collection
            log.debug("unexpected error on %s", part.where, exc_info=True)
            report.failed.append(FailedFile(part.where, _unexpected(exc)))
            continue
        yield part.where, _record(document, source.path, sha, config_hash, len(part.raw)), document


def _record(
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


def _chunk(
    where: str,
    document: Document,
    embedder: Embedder,
    max_tokens: int,
    chunking: ChunkSettings,
    report: IngestReport,
) -> list[Chunk]:
    """Chunk one document; a failure is put on `report.failed` under `where` (returns [])."""
    try:
        chunks = chunk_document(document, embedder.counter, max_tokens, chunking.overlap,
                                chunking.repeat_heading)  # fmt: skip
    except ServerError:
        raise  # the embedder's server is down: every other file would fail the same way
    except Exception as exc:  # a chunker or tokenizer bug on one odd document
        log.debug("unexpected error chunking %s", where, exc_info=True)
        report.failed.append(FailedFile(where, _unexpected(exc)))
        return []
    if not chunks:
        report.failed.append(FailedFile(where, "no text to index"))
    return chunks


def _flush(
    store: Store,
    embedder: Embedder,
    manifest: dict[str, tuple[str, str]],
    pending: _Pending,
    report: IngestReport,
    progress: IngestProgress,
) -> None:
    """Embed and write the pending documents in one transaction; count them once written."""
    if not pending.items:
        return
    texts = [chunk.embed_text for _, chunks in pending.items for chunk in chunks]
    vectors = embedder.encode(texts)
    store.write_documents(pending.items, vectors)
    updated = sum(1 for record, _ in pending.items if record.key in manifest)
    report.updated += updated
    report.added += len(pending.items) - updated
    report.chunks += len(texts)
    pending.items = []
    pending.chunks = 0
    progress.chunks_embedded(len(texts))
