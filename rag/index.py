"""`Index`: the public API over one index directory. The CLI is a thin layer over it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from rag.config import IngestSettings, default_index_dir
from rag.embedding import Embedder
from rag.errors import ConfigError, RagError
from rag.ingest import IngestProgress, IngestReport, run_ingest
from rag.rerank import Reranker
from rag.retrieve import Filters, Hit, Retriever
from rag.store import Store, StoreStats, write_lock

if TYPE_CHECKING:
    from rag.ask import Answer, AskSettings
    from rag.eval.probes import ProbeReport
    from rag.generate import Generator


class Index:
    """A searchable index of your documents, kept in one directory.

    >>> from rag import Index
    >>> index = Index("my-index")              # or Index() for the default location
    >>> report = index.ingest(["docs/"])        # incremental: re-runs skip unchanged files
    >>> report.added, report.failed
    (12, [])
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        embedder: str | Path | Embedder | None = None,
        settings: IngestSettings | None = None,
        reranker: Reranker | str | None = None,
        fusion: str = "zscore",
    ) -> None:
        self.path = Path(path).expanduser() if path is not None else default_index_dir()
        self.settings = settings or IngestSettings()
        self._embedder_spec = embedder
        self._reranker = reranker
        self.fusion = fusion

    @cached_property
    def embedder(self) -> Embedder:
        """The embedder: the one given, else the one the index was built with, else the default."""
        spec = self._embedder_spec
        if isinstance(spec, Embedder):
            return spec
        if spec is None and (self.path / "index.sqlite").exists():
            spec = self._store(create=False).embedder_spec()
        return Embedder(spec, dtype=self.settings.dtype, batch_size=self.settings.batch_size)

    def _store(self, *, create: bool) -> Store:
        store = self.__dict__.get("_store_instance")
        if store is None:
            store = Store(self.path, create=create)
            self.__dict__["_store_instance"] = store
        return store

    def ingest(
        self, paths: Iterable[str | Path], *, progress: IngestProgress | None = None
    ) -> IngestReport:
        """Index new and changed files under `paths`, drop deleted ones, skip unchanged ones."""
        with write_lock(self.path):
            store = self._store(create=True)
            spec = self._embedder_spec
            if isinstance(spec, Embedder):
                spec = spec.spec
            store.check_embedder(self.embedder.info, spec=str(spec or ""))
            report = run_ingest(store, self.embedder, self.settings, paths, progress)
            self.__dict__.pop("retriever", None)
            if report.changed:
                self._remeasure_probes(report)
        return report

    def _remeasure_probes(self, report: IngestReport) -> None:
        """Re-run the stored label-free probes (if any) and put the result on `report`."""
        from rag.eval.probes import FILE_NAME, remeasure

        if not (self.path / FILE_NAME).exists():
            return
        try:
            probed = remeasure(self.path, self.retriever, changed=report.changed)
        except RagError as exc:  # the ingest itself succeeded; say why probing did not
            report.warnings.append(f"probes not re-measured: {exc}")
            return
        report.probe_recall = probed.to_dict()
        if probed.warning:
            report.warnings.append(probed.warning)

    def probe(
        self,
        n: int | None = None,
        k: int = 5,
        seed: int | None = None,
        *,
        preset: str | None = None,
        model: str | Path | None = None,
        regenerate: bool = False,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> ProbeReport:
        """Measure retrieval with label-free probes: questions the local model wrote.

        `n` probes (default 50) are written about chunks picked by `seed` (default 0) and
        cached in the index directory. The cached set is reused when it matches every one of
        `n`, `seed` and the model (`preset`/`model`) that is given, so only the first run, or
        `regenerate=True`, loads the generator. Each measurement is appended to the history;
        `report.warning` says when recall@k fell against the previous one, and why.

        >>> report = Index().probe(n=20, k=5, preset="fast")  # doctest: +SKIP
        >>> report.result.recall_at_k, report.warning  # doctest: +SKIP
        """
        from rag.eval import probes
        from rag.models import resolve_model

        started = time.perf_counter()
        store = self._store(create=False)
        file = probes.ProbeFile.load(self.path)
        wanted = resolve_model(preset, model).name if (preset or model) else None
        probe_set = file.probe_set
        generated = regenerate or probe_set is None or not probe_set.matches(seed, n, wanted)
        if generated or probe_set is None:
            generator = self.generator(preset, model)
            n = probes.DEFAULT_N if n is None else n
            seed = 0 if seed is None else seed
            items = probes.generate_probes(store, generator, n, seed, on_progress=on_progress)
            probe_set = probes.ProbeSet(seed, n, generator.model_path.name, probes.PROMPT, items)
            file.probe_set = probe_set
            file.save(self.path)  # the model's work is kept even if measuring fails
        result = probes.measure_probes(probe_set.probes, self.retriever, k)
        previous, warning = probes.record(self.path, result, store, file=file)
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
        """
        filters = Filters(path_glob=path_glob, kinds=tuple(kinds))
        return self.retriever.search(query, k, mode=mode, filters=filters, rerank=rerank)

    @cached_property
    def retriever(self) -> Retriever:
        """The retriever over this index (keeps BM25 and FAISS loaded between searches)."""
        return Retriever(
            self._store(create=False), self.embedder, reranker=self.reranker, fusion=self.fusion
        )

    @cached_property
    def reranker(self) -> Reranker | None:
        """The rerank stage: the one given, or the one named ("none", "sentence", a folder)."""
        if self._reranker is None:
            return None
        if isinstance(self._reranker, str):
            from rag.rerank import load_reranker

            return load_reranker(self._reranker, self.embedder)
        return self._reranker

    def generator(
        self, preset: str | None = None, model: str | Path | None = None, n_ctx: int = 4096
    ) -> Generator:
        """The loaded GGUF generator (kept for later questions; reloaded only if it changes)."""
        from rag.generate import Generator
        from rag.models import resolve_model

        path = resolve_model(preset, model)
        current = self.__dict__.get("_generator")
        if current is not None and (current.model_path, current.n_ctx) == (path, n_ctx):
            return current
        if current is not None:
            current.close()
        generator = Generator(path, n_ctx=n_ctx)
        self.__dict__["_generator"] = generator
        return generator

    def ask(
        self,
        question: str,
        *,
        preset: str | None = None,
        model: str | Path | None = None,
        settings: AskSettings | None = None,
        on_token: Callable[[str], None] | None = None,
        on_event: Callable[[str, dict], None] | None = None,
    ) -> Answer:
        """Answer a question from the indexed documents, with verified citations.

        >>> answer = Index().ask("How long is the warranty?")  # doctest: +SKIP
        >>> answer.answer, [s.path for s in answer.sources]  # doctest: +SKIP
        """
        from rag.ask import Asker

        if not question.strip():
            raise ConfigError("the question is empty")
        from rag.models import preset_for

        chosen = preset_for(preset, model)
        asker = Asker(
            self.retriever,
            self.generator(preset, model),
            settings,
            structured=chosen.structured if chosen else False,
            min_found=chosen.min_found if chosen else 0.0,
        )
        return asker.ask(question, on_token=on_token, on_event=on_event)

    def status(self) -> StoreStats:
        """Count documents and chunks, name the embedder, and measure the size on disk."""
        return self._store(create=False).stats()

    def close(self) -> None:
        generator = self.__dict__.pop("_generator", None)
        if generator is not None:
            generator.close()
        store = self.__dict__.pop("_store_instance", None)
        if store is not None:
            store.close()
