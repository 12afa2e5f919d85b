"""`RagService`: the pipeline `rag serve` builds once and every request shares.

It holds the loaded embedder and chat model, a reader over the index, the generation queue,
the background ingest jobs, the watched folders and the answer cache. Readers keep answering
from the index as it was while an ingest runs; when the ingest ends, a fresh reader over the
new generation replaces the old one (and the answer cache is emptied).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.errors import ConfigError, IndexLockedError, IndexNotFoundError, RagError
from rag.index import Index
from rag.pipeline import build_pipeline, load_chat_model
from rag.retrieve import Filters, Retrieval
from rag.serve.jobs import IngestJobs, Job, JobProgress
from rag.serve.slots import Cancelled, GenerationQueue, Ticket
from rag.serve.uploads import upload_dir
from rag.settings import AnswerSettings, Settings
from rag.store import DocumentRow, write_lock

if TYPE_CHECKING:
    from rag.answer_cache import AnswerCache
    from rag.ask import Answer
    from rag.embed import Embedder
    from rag.llm.base import ChatModel
    from rag.serve.watched import WatchedFolders

DEFAULT_MODEL_ID = "rag"


class RagService:
    """The index in `directory` served with `settings`; `start()` loads the models.

    `preset` names the preset the settings came from (it is the model id clients see).
    `watch` folders are kept in step by ingest jobs (synced at start, then on each change);
    ConfigError here if one does not exist.
    Methods mirror `rag.Index` (`search`, `ask`, `settings`) so the MCP tools take either.
    """

    def __init__(
        self,
        directory: str | Path,
        settings: Settings,
        *,
        preset: str = "",
        chat_model: ChatModel | None = None,
        embedder: Embedder | None = None,
        watch: Sequence[str | Path] = (),
    ) -> None:
        self.directory = Path(directory).expanduser()
        self.settings = settings
        self.preset = preset
        self.queue = GenerationQueue(concurrency=1, queue=settings.serve.queue)
        self.jobs = IngestJobs(self._run_job)
        self.cache: AnswerCache | None = None  # when serve.cache is on
        self.watch_folders = [Path(f).expanduser() for f in watch]
        if self.watch_folders:  # a missing folder is refused before the models load
            from rag.watch import WatchRoots

            WatchRoots.of(self.watch_folders)
        self.watched: WatchedFolders | None = None  # started by start() when watching
        self.started = time.time()
        self._chat_model = chat_model
        self._embedder = embedder
        self._reader: Index | None = None
        self._generation = 0
        self._lock = threading.RLock()
        self._write = threading.Lock()  # one writer at a time: an ingest job or a delete
        self._closing = threading.Event()  # set by close(): answers being made stop

    # --- life ---------------------------------------------------------------------------

    def start(self) -> None:
        """Load the embedder and the chat model, open the index if there is one, and start
        watching the `watch` folders (ConfigError if one does not exist)."""
        if self._embedder is None:
            self._embedder = build_pipeline(self.directory, self.settings).embedder()
        if self._chat_model is None:
            self._chat_model = load_chat_model(self.settings)
        if self.settings.serve.cache:
            from rag.answer_cache import AnswerCache

            serve = self.settings.serve
            self.cache = AnswerCache(self._embedder, threshold=serve.cache_threshold,
                                     max_entries=serve.cache_entries)  # fmt: skip
        self._open_reader()
        if self.watch_folders:  # after the reader: the first sync's job swaps it
            from rag.serve.watched import WatchedFolders

            self.watched = WatchedFolders(self._index(), self.watch_folders, self.jobs)
            self.watched.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop answering (answers being made end at their next token), stop watching and
        the ingest worker, then free the chat model."""
        self._closing.set()
        if self.watched is not None:
            self.watched.stop()
        self.jobs.close()
        deadline = time.monotonic() + timeout
        while self.queue.running and time.monotonic() < deadline:
            time.sleep(0.05)
        close = getattr(self._chat_model, "close", None)
        if close is not None:
            close()

    def _index(self) -> Index:
        return Index(self.directory, settings=self.settings, embedder=self._embedder,
                     chat_model=self._chat_model)  # fmt: skip

    def _open_reader(self) -> None:
        """A reader over the index as it is now, warmed up, then swapped in."""
        index = self._index()
        if not index.pipeline.exists():
            return
        store = index.pipeline.store()
        generation = store.generation
        store.vector_index()  # loaded here, not by the first question
        store.keyword_index()
        with self._lock:
            self._reader, self._generation = index, generation
        if self.cache is not None:
            self.cache.clear()

    def reader(self) -> Index:
        """The index questions are answered from; IndexNotFoundError before the first ingest."""
        with self._lock:
            if self._reader is None:
                raise IndexNotFoundError(
                    f"no documents are indexed in {self.directory} yet; upload files (POST "
                    "/ingest or the page's upload area) or run 'rag ingest PATH --index "
                    f"{self.directory}'"
                )
            return self._reader

    @property
    def generation(self) -> int:
        """The index generation readers see."""
        return self._generation

    @property
    def chat_model(self) -> ChatModel:
        if self._chat_model is None:
            raise RagError("the service is not started; call start() first")
        return self._chat_model

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            raise RagError("the service is not started; call start() first")
        return self._embedder

    def model_ids(self) -> list[str]:
        """The ids a request's `model` may name: the preset served, and "rag"."""
        ids = [self.preset] if self.preset else []
        return [*ids, DEFAULT_MODEL_ID] if DEFAULT_MODEL_ID not in ids else ids

    # --- reading ------------------------------------------------------------------------

    def retrieve(
        self,
        query: str,
        k: int = 10,
        *,
        mode: str = "hybrid",
        path_glob: str | None = None,
        kinds: Sequence[str] = (),
        rerank: bool = True,
    ) -> Retrieval:
        """The `k` best passages for `query`, with each stage's seconds."""
        filters = Filters(path_glob=path_glob, kinds=tuple(kinds))
        return self.reader().retriever.retrieve(query, k, mode=mode, filters=filters,
                                                rerank=rerank)  # fmt: skip

    def search(self, query: str, k: int = 10, **options: Any) -> list:
        """The hits of `retrieve` (the `Index.search` signature, for the MCP tools)."""
        return self.retrieve(query, k, **options).hits

    def admit(self) -> Ticket:
        """A place in the generation queue (QueueFull when it is full)."""
        return self.queue.admit()

    def lookup(
        self,
        question: str,
        *,
        settings: AnswerSettings | None = None,
        history: Sequence[tuple[str, str]] = (),
        filters: Filters | None = None,
    ) -> Answer | None:
        """The cached answer to `question` (asked with the same settings, filters and index
        generation), or None. A follow-up (with history) is rewritten first, so it is not
        looked up here, and neither is a question sampled at temperature > 0 (its answer is
        meant to vary)."""
        if self.cache is None or history or not self._cacheable(settings):
            return None
        self.reader()
        return self.cache.get(question, self._cache_scope(settings, filters, self._generation))

    def ask(
        self,
        question: str,
        *,
        settings: AnswerSettings | None = None,
        history: Sequence[tuple[str, str]] = (),
        filters: Filters | None = None,
        on_token: Callable[[str], None] | None = None,
        on_event: Callable[[str, dict], None] | None = None,
        cancel: threading.Event | None = None,
        ticket: Ticket | None = None,
    ) -> Answer:
        """Answer `question` (the cached answer when one matches), waiting for the model's
        turn; the answer is then cached.

        Give a `ticket` from `admit()` when the cache was already looked up (`lookup`): the
        caller has refused a full queue itself. Without one, raises QueueFull when the queue
        is full. Raises Cancelled when `cancel` is set before the answer is finished.
        """
        if not question.strip():
            if ticket is not None:
                ticket.release()
            raise ConfigError("the question is empty")
        if ticket is None:
            cached = self.lookup(question, settings=settings, history=history, filters=filters)
            if cached is not None:
                return cached
            ticket = self.admit()
        with ticket:
            reader = self.reader()
            generation = self._generation
            scope = self._cache_scope(settings, filters, generation)
            if not ticket.wait(cancel):
                raise Cancelled("the client went away while waiting for the model")

            def token(piece: str) -> None:
                if cancel is not None and cancel.is_set():
                    raise Cancelled("the client went away; generation stopped")
                if self._closing.is_set():
                    raise Cancelled("the server is shutting down")
                if on_token:
                    on_token(piece)

            answer = reader.ask(question, settings=settings or self.settings.answer,
                                history=history, filters=filters, on_token=token,
                                on_event=on_event)  # fmt: skip
        if self.cache is not None and generation == self._generation and self._cacheable(settings):
            self.cache.put(answer.rewritten_question or question, scope, answer)
        return answer

    def _cacheable(self, cfg: AnswerSettings | None) -> bool:
        return (cfg or self.settings.answer).temperature == 0

    def _cache_scope(
        self, cfg: AnswerSettings | None, filters: Filters | None, generation: int
    ) -> str:
        """Answers are shared only between the same settings, filters and index generation."""
        from rag.answer_cache import cache_scope

        settings = replace(self.settings, answer=cfg or self.settings.answer)
        f = filters or Filters()
        return cache_scope(settings, generation, path_glob=f.path_glob, kinds=f.kinds)

    # --- writing ------------------------------------------------------------------------

    def submit_ingest(self, paths: list[Path]) -> Job:
        """Index `paths` in the background; `GET /jobs/{id}` follows it."""
        return self.jobs.submit(paths)

    def _run_job(self, job: Job) -> dict:
        with self._write:
            writer = self._index()
            try:
                report = writer.ingest(job.paths, progress=JobProgress(job))
            finally:
                writer.close()
            if report.changed or self._reader is None:
                self._open_reader()
        data = report.to_dict()
        data["generation"] = self._generation
        return data

    def documents(self) -> list[DocumentRow]:
        """Every indexed document, by path."""
        if self._reader is None:
            return []
        return self.reader().pipeline.store().documents()

    def delete_document(self, document_id: int) -> DocumentRow | None:
        """Remove a document from the index (and its uploaded file); None if no such id."""
        if not self._write.acquire(blocking=False):
            raise IndexLockedError(
                "an ingest is running; delete the document when it is done (GET /jobs)"
            )
        try:
            writer = self._index()
            try:
                with write_lock(self.directory, command="rag serve (delete)"):
                    store = writer.pipeline.store()
                    found = store.documents(document_id)
                    if not found:
                        return None
                    store.remove_documents([found[0].path])
                    store.save_vectors()
                    store.save_keywords()
            finally:
                writer.close()
            uploaded = Path(found[0].path)
            if uploaded.parent == upload_dir(self.directory).resolve():
                uploaded.unlink(missing_ok=True)
            self._open_reader()
            return found[0]
        finally:
            self._write.release()

    # --- telling ------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """What GET /status shows."""
        stats = self.reader().pipeline.store().stats() if self._reader is not None else None
        return {
            "index": str(self.directory),
            "documents": stats.documents if stats else 0,
            "chunks": stats.chunks if stats else 0,
            "bytes": stats.bytes if stats else 0,
            "embedder": stats.embedder if stats and stats.embedder else self.embedder.info.name,
            "model": self.chat_model.name,
            "preset": self.preset or None,
            "generation": self._generation,
            "queue": self.queue.snapshot(),
            "jobs_active": self.jobs.active,
            "watch": self.watched.to_dict() if self.watched is not None else None,
            "cache": self.cache.stats() if self.cache is not None else None,
            "uptime_s": round(time.time() - self.started, 1),
        }
