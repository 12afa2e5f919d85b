"""Ingest: discover → hash → (load → chunk → embed → store) for what changed; prune deletions.

Unchanged documents (same content sha256 and same chunking/embedder config) are recognised
from the manifest alone, so a re-run over an unchanged corpus never loads the model.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from rag.chunking import Chunk, chunk_document
from rag.discover import SourceFile, describe_os_error, discover, is_under
from rag.embed import Embedder
from rag.errors import ConfigError, LoaderError
from rag.loaders import Document, iter_jsonl_records, load_document, record_document
from rag.settings import IngestSettings, Settings
from rag.store import DocumentRecord, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FailedFile:
    """A file that could not be indexed, and why."""

    path: str
    error: str


@dataclass
class IngestReport:
    """What an ingest run did. `failed` files keep whatever version was indexed before."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: int = 0
    failed: list[FailedFile] = field(default_factory=list)
    chunks: int = 0
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    probe_recall: dict | None = None  # the label-free probes re-measured (rag/probes.py)

    @property
    def changed(self) -> int:
        """Documents added, updated or removed."""
        return self.added + self.updated + self.removed

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict:
        return asdict(self)


class IngestProgress(Protocol):
    """Receives progress events; the CLI draws a bar from them."""

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


def run_ingest(
    store: Store,
    embedder: Embedder,
    all_settings: Settings,
    paths: Iterable[str | Path],
    progress: IngestProgress | None = None,
) -> IngestReport:
    """Bring the index in line with `paths`: add, update, keep, and remove documents."""
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

    def queue(record: DocumentRecord, document: Document) -> None:
        chunks = chunk_document(document, embedder.counter, max_tokens, chunking.overlap)
        if not chunks:
            raise LoaderError(record.key, "no text to index")
        report.warnings.extend(document.warnings)
        if record.key in manifest:
            report.updated += 1
        else:
            report.added += 1
        pending.items.append((record, chunks))
        pending.chunks += len(chunks)
        if pending.chunks >= settings.flush_chunks:
            _flush(store, embedder, pending, report, progress)

    progress.start(len(found.files))
    for source in found.files:
        try:
            _ingest_file(source, settings, config_hash, manifest, seen, report, queue)
        except LoaderError as exc:
            report.failed.append(FailedFile(exc.path, exc.problem))
        except Exception as exc:  # a loader bug on one odd file must not stop the batch
            log.debug("unexpected error on %s", source.path, exc_info=True)
            report.failed.append(
                FailedFile(source.path, f"unexpected {type(exc).__name__}: {exc} (see --debug)")
            )
        progress.file_done(source.path)
    _flush(store, embedder, pending, report, progress)
    if report.added or report.updated:
        chunk = {"max_tokens": max_tokens, "overlap": chunking.overlap}
        store.record_ingest_config({"config_hash": config_hash, "chunk": chunk})

    gone = [
        key
        for key in manifest
        if key not in seen and any(is_under(key, root) for root in found.roots)
    ]
    store.remove_documents(gone)
    report.removed = len(gone)
    store.save_vectors()
    store.save_keywords()
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _ingest_file(
    source: SourceFile,
    settings: IngestSettings,
    config_hash: str,
    manifest: dict[str, tuple[str, str]],
    seen: set[str],
    report: IngestReport,
    queue: Callable[[DocumentRecord, Document], None],
) -> None:
    size = os.path.getsize(source.path)
    limit = int(settings.max_file_mb * 1024 * 1024)
    if size > limit and source.kind != "jsonl":
        seen.add(source.path)  # keep any earlier version
        raise LoaderError(
            source.path,
            f"file is {size / 2**20:.0f} MB, over the {settings.max_file_mb:g} MB limit; "
            "split it or raise the limit (--max-file-mb)",
        )
    if source.kind == "jsonl":
        for record in iter_jsonl_records(Path(source.path), source.path):
            if isinstance(record, LoaderError):
                report.failed.append(FailedFile(record.path, record.problem))
                continue
            seen.add(record.key)
            sha = hashlib.sha256(record.raw).hexdigest()
            if manifest.get(record.key) == (sha, config_hash):
                report.unchanged += 1
                continue
            meta = DocumentRecord(
                record.key, source.path, "jsonl", sha, config_hash, len(record.raw)
            )
            try:
                queue(meta, record_document(record))
            except LoaderError as exc:
                report.failed.append(FailedFile(exc.path, exc.problem))
        return
    seen.add(source.path)
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
    queue(
        DocumentRecord(
            source.path, source.path, source.kind, sha, config_hash, size, document.pages
        ),
        document,
    )


def _flush(
    store: Store,
    embedder: Embedder,
    pending: _Pending,
    report: IngestReport,
    progress: IngestProgress,
) -> None:
    if not pending.items:
        return
    texts = [chunk.embed_text for _, chunks in pending.items for chunk in chunks]
    vectors = embedder.encode(texts)
    store.write_documents(pending.items, vectors)
    report.chunks += len(texts)
    progress.chunks_embedded(len(texts))
    pending.items = []
    pending.chunks = 0
