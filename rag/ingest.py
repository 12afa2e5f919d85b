"""Ingest: discover → hash → (load → chunk → embed → store) for what changed; prune deletions.

Unchanged documents (same content sha256 and same chunking/embedder config) are recognised
from the manifest alone, so a re-run over an unchanged corpus never loads the model.

This module is the driver: it finds and hashes files, decides what changed, and does every
write and the prune. Load → chunk of one document is `rag.prepare.prepare`, run by a
`Preparer`: here in process (`LocalPreparer`), or on a Ray cluster (`rag.distributed`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import closing, suppress
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from rag.chunking import Chunk
from rag.discover import SourceFile, discover, is_under
from rag.embed import Embedder
from rag.errors import ConfigError, DistributedError, LoaderError, RagError
from rag.loaders import CONTAINERS
from rag.loaders.ocr import OcrOptions, unavailable, use_ocr
from rag.prepare import Chunker, Failure, Prepared, Source, prepare, read_file, unexpected
from rag.settings import IngestSettings, Settings
from rag.store import DocumentRecord, Store

if TYPE_CHECKING:
    import numpy as np

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


@dataclass(frozen=True)
class FileDone:
    """In a preparer's input: every changed document of this file has been handed out (it
    may have had none). In its output: every one of them has come back."""

    path: str


Work = tuple[Source, bytes | None] | FileDone  # the bytes: the file's, as the driver read them
Result = tuple[Prepared | Failure, "np.ndarray | None"] | FileDone  # vectors None: embed here


class Preparer(Protocol):
    """Runs `prepare` over the driver's work: in process, or on a cluster.

    `run` reads `work` as it goes and yields each document's result once, with its vectors
    when it embedded them itself, and passes every FileDone on once that file's documents
    have all come back. It raises DistributedError when it cannot finish.
    """

    def run(self, work: Iterator[Work], chunker: Chunker) -> Generator[Result, None, None]: ...


class LocalPreparer:
    """Prepare each document here, in order; the driver embeds them when it writes."""

    def run(self, work: Iterator[Work], chunker: Chunker) -> Generator[Result, None, None]:
        for item in work:
            if isinstance(item, FileDone):
                yield item
            else:
                source, data = item
                yield prepare(source, chunker, data), None


@dataclass
class _Pending:
    items: list[tuple[DocumentRecord, list[Chunk]]] = field(default_factory=list)
    vectors: list[np.ndarray | None] = field(default_factory=list)
    chunks: int = 0


class _WriteFailed(Exception):
    """Writing a batch (or the prune, or the caches) failed; `report.error` says why."""


def run_ingest(
    store: Store,
    embedder: Embedder,
    all_settings: Settings,
    paths: Iterable[str | Path],
    progress: IngestProgress | None = None,
    preparer: Preparer | None = None,
) -> IngestReport:
    """Bring the index in line with `paths`: add, update, keep, and remove documents.

    A problem with one file (or one record of a .jsonl collection) is reported in `failed`
    and the run goes on. A failure to write to the index stops the run: it is reported in
    `error`, nothing is pruned, and every batch written before it stays indexed.

    `preparer` loads and chunks the changed documents (default: here, one after another; a
    `rag.distributed.RayPreparer` does it, and the embedding, on a Ray cluster). Finding,
    hashing, the change check, every write and the prune stay here whatever it is.
    """
    started = time.perf_counter()
    progress = progress or _NoProgress()
    preparer = preparer or LocalPreparer()
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
    chunker = Chunker(embedder.counter, max_tokens, chunking.overlap, chunking.repeat_heading)
    work = _work(found.files, settings, config_hash, manifest, seen, report)
    try:
        with use_ocr(ocr), closing(work):  # the loaders' OCR options (scanned pages, images)
            results = preparer.run(work, chunker)
            with closing(results):
                for item in results:
                    if isinstance(item, FileDone):
                        progress.file_done(item.path)
                        continue
                    _take(*item, pending, report)
                    if pending.chunks >= settings.flush_chunks:
                        flush()  # outside any per-file handler: a failure here is no file's
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
    except DistributedError as exc:  # the cluster failed part way: keep what came back
        with suppress(_WriteFailed):
            flush()
        report.error = str(exc) if report.error is None else f"{exc}; then {report.error}"
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


def _take(
    result: Prepared | Failure, vectors: np.ndarray | None, pending: _Pending, report: IngestReport
) -> None:
    """Queue a prepared document for the next write, or report why it failed."""
    if isinstance(result, Failure):
        report.failed.append(FailedFile(result.path, result.error))
        return
    report.warnings.extend(result.warnings)
    if result.ocr_pages:
        report.ocr_pages[result.record.key] = result.ocr_pages
    pending.items.append((result.record, result.chunks))
    pending.vectors.append(vectors)
    pending.chunks += len(result.chunks)


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
            report.error = str(exc) if isinstance(exc, RagError) else unexpected(exc)
        raise _WriteFailed from exc


def _write_failure(exc: Exception, store: Store, pending: _Pending) -> str:
    """Say why a batch could not be written, and that nothing indexed before was lost."""
    log.debug("writing a batch failed", exc_info=True)
    if isinstance(exc, RagError):
        return str(exc)
    return (
        f"writing a batch of {len(pending.items)} documents ({pending.chunks} chunks) to the "
        f"index at {store.directory} failed: {unexpected(exc)}; the run stopped there, those "
        "documents keep their earlier version and nothing was removed — rerun to finish"
    )


def _work(
    files: Iterable[SourceFile],
    settings: IngestSettings,
    config_hash: str,
    manifest: dict[str, tuple[str, str]],
    seen: set[str],
    report: IngestReport,
) -> Generator[Work, None, None]:
    """Every new or changed document of `files`, each file followed by its FileDone."""
    for source in files:
        yield from _changed_sources(source, settings, config_hash, manifest, seen, report)
        yield FileDone(source.path)


def _changed_sources(
    source: SourceFile,
    settings: IngestSettings,
    config_hash: str,
    manifest: dict[str, tuple[str, str]],
    seen: set[str],
    report: IngestReport,
) -> Generator[Work, None, None]:
    """Yield (source, bytes) for each new or changed document of one file.

    The bytes are the file's, as read to hash it (None for a container's part, which comes
    loaded). A problem reading the file is put on `report.failed` and never raised; if it
    stops the file part way, the documents it was going to revisit keep their indexed
    versions.
    """
    try:
        if source.kind in CONTAINERS:
            yield from _container_sources(source, config_hash, manifest, seen, report)
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
        data = read_file(source.path)
        sha = hashlib.sha256(data).hexdigest()
        if manifest.get(source.path) == (sha, config_hash):
            report.unchanged += 1
            return
        found = Source(source.path, source.path, source.kind, sha, config_hash, size)
        yield found, data
    except LoaderError as exc:
        report.failed.append(FailedFile(exc.path, exc.problem))
        _keep_indexed(source, manifest, seen)
    except Exception as exc:  # a loader bug on one odd file must not stop the batch
        log.debug("unexpected error on %s", source.path, exc_info=True)
        report.failed.append(FailedFile(source.path, unexpected(exc)))
        _keep_indexed(source, manifest, seen)


def _keep_indexed(source: SourceFile, manifest: dict[str, tuple[str, str]], seen: set[str]) -> None:
    """Mark every indexed document of a failed file as seen, so the prune keeps it."""
    seen.add(source.path)
    if source.kind in CONTAINERS:
        prefix = source.path + "#"
        seen.update(key for key in manifest if key.startswith(prefix))


def _container_sources(
    source: SourceFile,
    config_hash: str,
    manifest: dict[str, tuple[str, str]],
    seen: set[str],
    report: IngestReport,
) -> Generator[Work, None, None]:
    """Yield the new or changed parts of a container file, loaded; a bad part fails alone."""
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
            report.failed.append(FailedFile(part.where, unexpected(exc)))
            continue
        yield Source(part.where, source.path, document.kind, sha, config_hash, len(part.raw),
                     document), None  # fmt: skip


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
    given = [v for v in pending.vectors if v is not None]
    if len(given) == len(pending.items):  # embedded where they were prepared
        import numpy as np

        vectors = np.concatenate(given)
    else:
        vectors = embedder.encode(texts)
    store.write_documents(pending.items, vectors)
    updated = sum(1 for record, _ in pending.items if record.key in manifest)
    report.updated += updated
    report.added += len(pending.items) - updated
    report.chunks += len(texts)
    pending.items = []
    pending.vectors = []
    pending.chunks = 0
    progress.chunks_embedded(len(texts))
