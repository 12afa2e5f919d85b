"""The composition root: the one place that turns settings into a wired pipeline.

`build_pipeline(directory, settings)` picks every backend (store, keyword and vector index,
embedder, reranker, chat model) from the settings; a caller may hand in its own object for
any port instead (a test's scripted chat model, a remote vector index). Components are made
on first use and then kept, so `rag status` never loads a model and a second question reuses
the loaded one; each is made once even when several threads ask for it at the same time.

>>> from rag.pipeline import build_pipeline
>>> from rag.settings import load_settings
>>> pipeline = build_pipeline("my-index", load_settings(preset="fast").settings)  # doctest: +SKIP
>>> pipeline.asker().ask("How long is the warranty?").answer  # doctest: +SKIP
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rag.embed import DEFAULT_EMBEDDER, Embedder
from rag.embed.factory import local_embedder
from rag.embed.openai_server import OpenAIEmbedder, parse_server_spec
from rag.errors import ConfigError, IndexFormatError
from rag.keyword_index import KeywordBackend
from rag.llm.base import ChatModel
from rag.rerank import Reranker, load_reranker
from rag.settings import Settings
from rag.store import DB_NAME, Store
from rag.vectors import VectorBackend, vector_backend

if TYPE_CHECKING:
    from rag.ask import Asker
    from rag.retrieve import Retriever


def build_pipeline(
    directory: str | Path,
    settings: Settings | None = None,
    *,
    embedder: Embedder | None = None,
    chat_model: ChatModel | None = None,
    vectors: VectorBackend | None = None,
    keywords: KeywordBackend | None = None,
    reranker: Reranker | None = None,
) -> Pipeline:
    """Wire the pipeline over the index in `directory` from `settings` (default: built-in
    defaults); any component given here is used instead of the one the settings name."""
    settings = settings or Settings()
    if vectors is None:
        r = settings.retrieval
        vectors = vector_backend(r.dense_index, hnsw_m=r.hnsw_m, hnsw_ef_search=r.hnsw_ef_search,
                                 ivf_nprobe=r.ivf_nprobe, ivf_nlist=r.ivf_nlist)  # fmt: skip
    if keywords is None:
        from rag.bm25 import BM25Backend

        keywords = BM25Backend(settings.bm25.to_bm25())
    return Pipeline(
        Path(directory).expanduser(),
        settings,
        vectors,
        keywords,
        _embedder=embedder,
        _chat_model=chat_model,
        _reranker=reranker,
        _reranker_given=reranker is not None,
    )


@dataclass
class Pipeline:
    """The wired pipeline over one index directory (see `build_pipeline`)."""

    directory: Path
    settings: Settings
    vectors: VectorBackend
    keywords: KeywordBackend
    _embedder: Embedder | None = None
    _chat_model: ChatModel | None = None
    _reranker: Reranker | None = None
    _reranker_given: bool = False
    _embedder_checked: bool = False
    _store: Store | None = None
    _retriever: Retriever | None = None
    _owned_chat_model: bool = False
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def store(self, *, create: bool = False) -> Store:
        """The index's store (SQLite plus its derived indexes); `create` makes a new one."""
        with self._lock:
            if self._store is None:
                self._store = Store(self.directory, create=create, vectors=self.vectors,
                                    keywords=self.keywords)  # fmt: skip
            return self._store

    def exists(self) -> bool:
        """Whether an index has been written in the directory yet."""
        return (self.directory / DB_NAME).exists()

    def embedder(self) -> Embedder:
        """The given embedder, else the settings' one, else the one the index was built with
        (a local folder or a server's model); one the index was not built with is refused."""
        with self._lock:
            if self._embedder is None:
                recorded = self.store().embedder_spec() if self.exists() else None
                if self.settings.ingest.embedder_url:
                    self._embedder = self._server_embedder(recorded)
                else:
                    self._embedder = self._local_embedder(recorded)
            if not self._embedder_checked:
                if self.exists():
                    self.store().refuse_other_embedder(self._embedder.info)
                self._embedder_checked = True
            return self._embedder

    def _local_embedder(self, recorded: str | None) -> Embedder:
        server = parse_server_spec(recorded)
        if server is not None:
            raise IndexFormatError(
                f"index at {self.directory} was built through the embeddings server "
                f"{server[0]} (model {server[1]}); search it with --set "
                f"ingest.embedder_url={server[0]}, or ingest into another --index directory"
            )
        ingest = self.settings.ingest
        spec = ingest.embedder
        if spec == DEFAULT_EMBEDDER and recorded:
            spec = recorded  # built with another folder
        return local_embedder(spec, ingest)

    def _server_embedder(self, recorded: str | None) -> Embedder:
        ingest = self.settings.ingest
        server = parse_server_spec(recorded)
        info = self.store().embedder_info() if self.exists() else None
        if info is not None and server is None:
            raise IndexFormatError(
                f"index at {self.directory} was built with the local embedder {info.name}, "
                f"not through the embeddings server {ingest.embedder_url}; drop "
                "ingest.embedder_url to use it, or ingest into another --index directory"
            )
        model = ingest.embedder
        if model == DEFAULT_EMBEDDER:
            model = server[1] if server else ""  # the model recorded, else the only one
        return OpenAIEmbedder(
            ingest.embedder_url, model, timeout=ingest.embedder_timeout,
            max_retries=ingest.embedder_max_retries, batch_size=ingest.batch_size,
            max_tokens=ingest.embedder_max_tokens,
        )  # fmt: skip

    def embedder_spec(self) -> str:
        """What to record as the index's embedder ("" for the packaged default)."""
        spec = getattr(self.embedder(), "spec", None)
        return "" if spec in (None, DEFAULT_EMBEDDER) else str(spec)

    def reranker(self) -> Reranker | None:
        """The rerank stage the settings name ("none", "sentence", a cross-encoder folder)."""
        with self._lock:
            if not self._reranker_given:
                self._reranker = load_reranker(self.settings.retrieval.reranker, self.embedder())
                self._reranker_given = True
            return self._reranker

    def retriever(self) -> Retriever:
        """Hybrid retrieval over the store (keeps BM25 and vectors loaded between searches)."""
        from rag.retrieve import Retriever

        with self._lock:
            if self._retriever is None:
                r = self.settings.retrieval
                self._retriever = Retriever(
                    self.store(),
                    self.embedder(),
                    candidates=r.candidates,
                    fusion=r.fusion,
                    dense_weight=r.dense_weight,
                    rrf_k=r.rrf_k,
                    reranker=self.reranker(),
                    rerank_top=r.rerank_top,
                )
            return self._retriever

    def chat_model(self) -> ChatModel:
        """The given chat model, else the settings' one (a server, or a local GGUF loaded once)."""
        with self._lock:
            if self._chat_model is None:
                self._chat_model = load_chat_model(self.settings)
                self._owned_chat_model = True
            return self._chat_model

    def asker(self) -> Asker:
        """Answers questions with the retriever and the chat model, by the answer settings."""
        from rag.ask import Asker

        return Asker(self.retriever(), self.chat_model(), self.settings.answer)

    def after_write(self) -> None:
        """Forget what a write made stale (the retriever's view of the store)."""
        with self._lock:
            self._retriever = None

    def close(self) -> None:
        """Free the chat model this pipeline loaded and close the store."""
        with self._lock:
            model, self._chat_model = self._chat_model, None
            if self._owned_chat_model and model is not None:
                close = getattr(model, "close", None)
                if close is not None:
                    close()
            self._owned_chat_model = False
            if self._store is not None:
                self._store.close()
                self._store = None
            self._retriever = None


def load_chat_model(settings: Settings) -> ChatModel:
    """The chat model the settings name: the model server at `llm.url` when it is set, else
    the local GGUF model `generation.model` (a packaged model name or a file path)."""
    if settings.llm.url.strip():
        from rag.llm.openai_server import OpenAIChatModel

        return OpenAIChatModel(settings.llm)
    from rag.llm.llamacpp import LlamaCppChatModel

    g = settings.generation
    return LlamaCppChatModel(
        model_path(settings),
        n_ctx=g.n_ctx,
        n_threads=g.n_threads or None,
        seed=g.seed,
        chat_format=g.chat_format,
        flash_attn=g.flash_attn,
        prompt_lookup=g.prompt_lookup,
        n_batch=g.n_batch,
    )


def model_path(settings: Settings) -> Path:
    """The GGUF file `settings.generation.model` names: a packaged model or a file path."""
    from rag.models import PRESETS, resolve_model

    model = settings.generation.model
    if not model:
        raise ConfigError("generation.model is empty: name a packaged model or a GGUF file")
    return resolve_model(preset=model) if model in PRESETS else resolve_model(path=model)
