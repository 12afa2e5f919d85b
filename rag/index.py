"""`Index`: the public API over one index directory. The CLI is a thin layer over it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rag.config import default_index_dir
from rag.embed import Embedder
from rag.errors import ConfigError, RagError
from rag.ingest import IngestProgress, IngestReport, run_ingest
from rag.keyword_index import KeywordBackend
from rag.llm.base import ChatModel
from rag.pipeline import Pipeline, build_pipeline, load_chat_model, model_path
from rag.rerank import Reranker
from rag.retrieve import Filters, Hit, Retriever
from rag.settings import AnswerSettings, Settings, load_settings
from rag.store import DocumentRow, StoreStats, write_lock
from rag.vectors import VectorBackend

if TYPE_CHECKING:
    from rag.ask import Answer
    from rag.distributed import RayOptions
    from rag.eval.probes import ProbeReport
    from rag.summarize import DocumentSummary, Progress


class Index:
    """A searchable index of your documents, kept in one directory.

    Settings come from `settings` if given, else from the layered configuration
    (`preset`, `$RAG_HOME/config.toml`, `RAG_*` variables; see `rag config show`). Any port
    may be handed in instead of what the settings name: `chat_model`, `vectors`, `keywords`,
    `embedder`, `reranker`.

    >>> from rag import Index
    >>> index = Index("my-index")              # or Index() for the default location
    >>> report = index.ingest(["docs/"])        # incremental: re-runs skip unchanged files
    >>> report.added, report.failed
    (12, [])
    >>> Index("my-index", preset="fast").ask("How long is the warranty?")  # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        settings: Settings | None = None,
        preset: str | None = None,
        embedder: str | Path | Embedder | None = None,
        reranker: Reranker | str | None = None,
        fusion: str | None = None,
        chat_model: ChatModel | None = None,
        vectors: VectorBackend | None = None,
        keywords: KeywordBackend | None = None,
    ) -> None:
        self.path = Path(path).expanduser() if path is not None else default_index_dir()
        if settings is None:
            settings = load_settings(preset=preset).settings
        elif preset is not None:
            raise ConfigError("give Index either settings= or preset=, not both")
        overrides: dict[str, object] = {}
        if isinstance(embedder, str | Path):
            overrides["ingest.embedder"] = str(embedder)
        if isinstance(reranker, str):
            overrides["retrieval.reranker"] = reranker
        if fusion is not None:
            overrides["retrieval.fusion"] = fusion
        if overrides:
            settings = settings.with_overrides(overrides, "Index()")
        self.settings = settings
        self.pipeline: Pipeline = build_pipeline(
            self.path,
            settings,
            embedder=embedder if embedder is not None and not isinstance(embedder, str | Path)
            else None,
            chat_model=chat_model,
            vectors=vectors,
            keywords=keywords,
            reranker=reranker if reranker is not None and not isinstance(reranker, str) else None,
        )  # fmt: skip

    @property
    def embedder(self) -> Embedder:
        """The embedder: the one given, else the one the index was built with, else the default."""
        return self.pipeline.embedder()

    @property
    def retriever(self) -> Retriever:
        """The retriever over this index (keeps BM25 and vectors loaded between searches)."""
        return self.pipeline.retriever()

    @property
    def reranker(self) -> Reranker | None:
        """The rerank stage, if any."""
        return self.pipeline.reranker()

    def chat_model(self) -> ChatModel:
        """The chat model (loaded on first use and kept for later questions)."""
        return self.pipeline.chat_model()

    def ingest(
        self,
        paths: Iterable[str | Path],
        *,
        progress: IngestProgress | None = None,
        ray: RayOptions | None = None,
    ) -> IngestReport:
        """Index new and changed files under `paths`, drop deleted ones, skip unchanged ones.

        With `ray`, documents are loaded, chunked and embedded on a Ray cluster and written
        here (rag/distributed.py); the result is the same as a local ingest's.

        >>> from rag.distributed import RayOptions
        >>> Index("my-index").ingest(["/shared/docs"], ray=RayOptions())  # doctest: +SKIP
        """
        preparer = None
        if ray is not None:
            from rag.distributed import RayPreparer

            preparer = RayPreparer(ray, self.embedder, self.settings)
        with write_lock(self.path):
            store = self.pipeline.store(create=True)
            store.check_embedder(self.embedder.info, spec=self.pipeline.embedder_spec())
            report = run_ingest(store, self.embedder, self.settings, paths, progress, preparer)
            self.pipeline.after_write()
            if report.changed:
                self._remeasure_probes(report)
        return report

    def _remeasure_probes(self, report: IngestReport) -> None:
        """Re-run the stored label-free probes (if any) and put the result on `report`."""
        from rag.eval.probes import FILE_NAME, remeasure

        if not (self.path / FILE_NAME).exists():
            return
        try:
            probed = remeasure(self.path, self.retriever, changed=report.changed,
                               settings=self.settings)  # fmt: skip
        except RagError as exc:  # the ingest itself succeeded; say why probing did not
            report.warnings.append(f"probes not re-measured: {exc}")
            return
        report.probe_recall = probed.to_dict()
        if probed.warning:
            report.warnings.append(probed.warning)

    def probe(
        self,
        n: int | None = None,
        k: int | None = None,
        seed: int | None = None,
        *,
        model: str | Path | None = None,
        regenerate: bool = False,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> ProbeReport:
        """Measure retrieval with label-free probes: questions the local model wrote.

        `n` probes (default `probe.n`) are written about chunks picked by `seed` (default
        `probe.seed`) and cached in the index directory. The cached set is reused when it
        matches every one of `n`, `seed` and `model` that is given, so only the first run, or
        `regenerate=True`, loads the chat model. Each measurement is appended to the history;
        `report.warning` says when recall@k fell against the previous one, and why.

        >>> report = Index(preset="fast").probe(n=20, k=5)  # doctest: +SKIP
        >>> report.result.recall_at_k, report.warning  # doctest: +SKIP
        """
        from rag.eval import probes

        cfg = self.settings.probe
        k = cfg.k if k is None else k
        started = time.perf_counter()
        store = self.pipeline.store()
        file = probes.ProbeFile.load(self.path)
        probe_set = file.probe_set
        settings = self.settings
        if model is not None:
            settings = settings.with_overrides({"generation.model": str(model)}, "model=")
        wanted = model_path(settings).name if model is not None else None
        generated = regenerate or probe_set is None or not probe_set.matches(seed, n, wanted)
        if generated or probe_set is None:
            own = model is None or str(model) == self.settings.generation.model
            chat = self.chat_model() if own else load_chat_model(settings)
            n = cfg.n if n is None else n
            seed = cfg.seed if seed is None else seed
            try:
                items = probes.generate_probes(store, chat, n, seed, min_chars=cfg.min_chars,
                                               on_progress=on_progress)  # fmt: skip
            finally:
                if not own:
                    getattr(chat, "close", lambda: None)()
            probe_set = probes.ProbeSet(seed, n, chat.name, probes.PROMPT, items)
            file.probe_set = probe_set
            file.save(self.path)  # the model's work is kept even if measuring fails
        result = probes.measure_probes(probe_set.probes, self.retriever, k)
        previous, warning = probes.record(self.path, result, store, file=file,
                                          settings=self.settings)  # fmt: skip
        seconds = round(time.perf_counter() - started, 3)
        return probes.ProbeReport(
            str(self.path), probe_set, result, previous, warning, generated, seconds
        )

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        mode: str = "hybrid",
        path_glob: str | None = None,
        kinds: Sequence[str] = (),
        rerank: bool = True,
    ) -> list[Hit]:
        """Return the `k` best passages for `query` (modes: bm25, dense, hybrid).

        >>> [(h.path, h.page) for h in Index().search("battery life", k=3)]  # doctest: +SKIP

        `index.retriever.retrieve(...)` gives the same hits with each stage's seconds.
        """
        filters = Filters(path_glob=path_glob, kinds=tuple(kinds))
        return self.retriever.search(query, k, mode=mode, filters=filters, rerank=rerank)

    def ask(
        self,
        question: str,
        *,
        settings: AnswerSettings | None = None,
        history: Sequence[tuple[str, str]] = (),
        filters: Filters | None = None,
        on_token: Callable[[str], None] | None = None,
        on_event: Callable[[str, dict], None] | None = None,
    ) -> Answer:
        """Answer a question from the indexed documents, with verified citations.

        `settings` replaces the answer settings for this question only. `history`, earlier
        (role, text) turns of a conversation ("user" / "assistant"), makes a follow-up
        standalone before retrieval (`answer.rewritten_question`). Safe to call from several
        threads: each gets its own answer (the local model answers one at a time).

        >>> answer = Index().ask("How long is the warranty?")  # doctest: +SKIP
        >>> answer.answer, [s.path for s in answer.sources]  # doctest: +SKIP
        """
        if not question.strip():
            raise ConfigError("the question is empty")
        return self.pipeline.asker().ask(question, history=history, on_token=on_token,
                                         on_event=on_event, settings=settings,
                                         filters=filters)  # fmt: skip

    def summarize(
        self,
        path: str | Path,
        *,
        question: str | None = None,
        progress: Progress | None = None,
        settings: AnswerSettings | None = None,
    ) -> DocumentSummary:
        """Summarise one indexed document from all of its chunks, or with `question` answer
        it from the whole document rather than the passages retrieval finds.

        The chunks are read in order, in map steps that each fit the chat model's context
        window, and combined in reduce steps (`rag.summarize`). Every sentence cites the
        chunks it came from ([n] is the n-th chunk of the document) and is checked against
        them; a sentence they do not support is flagged (`summary.unsupported`), or left out
        with `answer.strict`. `progress(done, total)` is called after every step (`total` is
        an estimate until the end). `path` is the file as ingested (or a collection
        record's key, "mail.mbox#<id>"); a file not in the index raises
        DocumentNotIndexedError.

        >>> summary = Index().summarize("docs/manual.md")  # doctest: +SKIP
        >>> summary.text, [s.location for s in summary.sources]  # doctest: +SKIP
        """
        from rag.summarize import DocumentReader, find_document

        if question is not None and not question.strip():
            raise ConfigError("the question is empty")
        store = self.pipeline.store()
        key = find_document(store, str(path), self.path)  # before any model loads
        reader = DocumentReader(store, self.chat_model(), self.embedder,
                                settings or self.settings.answer)  # fmt: skip
        return reader.summarize(key, question=question, progress=progress)

    def status(self) -> StoreStats:
        """Count documents and chunks, name the embedder, and measure the size on disk."""
        return self.pipeline.store().stats()

    def documents(self) -> list[DocumentRow]:
        """Every indexed document by path: kind, pages, chunks, when indexed, loader info.

        `info` holds what the loader found: e-mail metadata, `ocr_pages`, `empty_pages`
        and `warnings`.
        """
        return self.pipeline.store().documents()

    def close(self) -> None:
        """Free the loaded chat model and close the store."""
        self.pipeline.close()
