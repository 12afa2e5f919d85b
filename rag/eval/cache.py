"""Eval index cache: one index per (corpus content, ingest settings), reused across runs.

An entry lives in ``<cache root>/<corpus sha256>-<settings hash>/``:

- ``corpus.jsonl``: a copy of a BEIR corpus, so document keys do not depend on where the
  dataset sits (a moved dataset still hits the cache); folders of files are indexed in place
  and their absolute path is part of the corpus hash, since it is part of every key;
- ``index/``: the index, built with ``Index.ingest`` (a re-run checks it incrementally: an
  unchanged corpus is recognised from the manifest without loading the model);
- ``build.json``: how long the cold build took, so a warm run can still report it.

Example:
    >>> cached = open_cached_index(Corpus(Path("scifact/corpus.jsonl")), Settings())
    ...     # doctest: +SKIP
    >>> cached.build.reused, cached.doc_id(cached.index.search("x")[0].path)  # doctest: +SKIP
    (True, '4983')
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rag.config import rag_home
from rag.embed import Embedder
from rag.embed.factory import local_embedder
from rag.index import Index
from rag.ingest import IngestProgress
from rag.settings import Settings

_BUFFER = 1 << 20


def default_cache_dir() -> Path:
    """Return where eval indexes are cached by default: ``$RAG_HOME/eval-cache``."""
    return rag_home() / "eval-cache"


@dataclass(frozen=True)
class Corpus:
    """What an eval indexes: a BEIR ``corpus.jsonl``, or a folder of documents.

    ``exclude`` names files inside a folder that are not documents (the labelled questions).
    """

    path: Path
    exclude: tuple[Path, ...] = ()

    @property
    def is_jsonl(self) -> bool:
        return self.path.is_file()

    def content_hash(self) -> str:
        """Hash the corpus: the file's bytes, or each file's relative path and bytes."""
        if self.is_jsonl:
            return _file_sha256(self.path)
        digest = hashlib.sha256(str(self.path.resolve()).encode() + b"\0")
        for file in self.files():
            digest.update(file.relative_to(self.path).as_posix().encode() + b"\0")
            digest.update(bytes.fromhex(_file_sha256(file)))
        return digest.hexdigest()

    def files(self) -> list[Path]:
        """List the folder's visible files, sorted, without the excluded ones."""
        skip = {p.resolve() for p in self.exclude}
        found = []
        for folder, dirs, names in os.walk(self.path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(names):
                file = Path(folder) / name
                if not name.startswith(".") and file.resolve() not in skip:
                    found.append(file)
        return found

    def ingest_paths(self) -> list[Path]:
        """Return the top-level entries to ingest (a folder minus its excluded files)."""
        skip = {p.resolve() for p in self.exclude}
        return [
            entry
            for entry in sorted(self.path.iterdir())
            if not entry.name.startswith(".") and entry.resolve() not in skip
        ]


@dataclass
class IndexBuild:
    """One cached index: how it was built, whether this run reused it, and its size."""

    chunk_tokens: int | None
    path: str
    reused: bool
    build_seconds: float  # the cold build (from build.json when reused)
    check_seconds: float  # this run's ingest pass (the whole build when not reused)
    embedded_chunks: int  # chunks embedded in this run: 0 when reused
    documents: int
    chunks: int
    bytes: int
    failed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CachedIndex:
    """An open index and what its build cost; ``doc_id`` maps a hit's path to a doc id."""

    index: Index
    build: IndexBuild
    corpus_key: str  # the key prefix (BEIR) or folder (files) documents are stored under

    def doc_id(self, key: str) -> str:
        """Return the dataset's id for a document key: the BEIR ``_id`` or the relative path."""
        prefix, sep, record = key.partition("#")
        if sep and prefix == self.corpus_key:
            return record
        root = self.corpus_key.rstrip(os.sep) + os.sep
        return key[len(root) :].replace(os.sep, "/") if key.startswith(root) else key

    def close(self) -> None:
        self.index.close()


def settings_hash(settings: Settings, embedder: Embedder) -> str:
    """Hash what changes an index's chunks or vectors (chunking, embedder and its encoder)."""
    return settings.content_hash(embedder.info.key)


def open_cached_index(
    corpus: Corpus,
    settings: Settings,
    *,
    cache_dir: str | Path | None = None,
    embedder: Embedder | None = None,
    progress: IngestProgress | None = None,
) -> CachedIndex:
    """Open (building or refreshing as needed) the cached index of `corpus` under `settings`."""
    ingest = settings.ingest
    embedder = embedder or local_embedder(ingest.embedder, ingest)
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    entry = root / f"{corpus.content_hash()}-{settings_hash(settings, embedder)}"
    entry.mkdir(parents=True, exist_ok=True)
    if corpus.is_jsonl:
        source = entry / "corpus.jsonl"
        _copy_once(corpus.path, source)
        paths, corpus_key = [source], os.path.abspath(source)
    else:
        paths, corpus_key = corpus.ingest_paths(), os.path.abspath(corpus.path)
    index = Index(entry / "index", embedder=embedder, settings=settings)
    report = index.ingest(paths, progress=progress)
    reused = report.chunks == 0 and report.added == 0 and report.updated == 0
    record = entry / "build.json"
    build_seconds = report.seconds
    if reused and record.is_file():
        build_seconds = float(json.loads(record.read_text()).get("build_seconds", 0.0))
    elif not reused:
        tmp = record.with_suffix(".tmp")
        tmp.write_text(json.dumps({"build_seconds": report.seconds, "chunks": report.chunks}))
        os.replace(tmp, record)
    stats = index.status()
    build = IndexBuild(
        chunk_tokens=settings.chunk.max_tokens,
        path=str(entry),
        reused=reused,
        build_seconds=build_seconds,
        check_seconds=report.seconds,
        embedded_chunks=report.chunks,
        documents=stats.documents,
        chunks=stats.chunks,
        bytes=stats.bytes,
        failed=[f"{f.path}: {f.error}" for f in report.failed],
    )
    return CachedIndex(index=index, build=build, corpus_key=corpus_key)


def _copy_once(source: Path, target: Path) -> None:
    """Copy `source` to `target` atomically unless an equal-sized copy is already there."""
    if target.is_file() and target.stat().st_size == source.stat().st_size:
        return
    tmp = target.with_suffix(".part")
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_BUFFER):
            digest.update(block)
    return digest.hexdigest()
