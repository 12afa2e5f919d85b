"""`rag doctor`: check that the configured models, servers and index can be used, and say what
to do about each one that cannot.

Every check is one line: a status (ok, warn, fail), what was checked, what was found and, when
it is not ok, what to do. Nothing is loaded that the checks do not need: the embedder's files
are read, not its weights; a packaged GGUF is located, not assembled.

>>> from rag.doctor import run_checks
>>> from rag.settings import Settings
>>> [c.status for c in run_checks(Settings(), "/nonexistent")]  # doctest: +SKIP
['ok', 'warn', 'ok', 'ok']
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from rag.errors import RagError
from rag.settings import Settings

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Check:
    """The outcome of one check; `fix` says what to do when `status` is not ok."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def run_checks(settings: Settings, index_dir: str | Path) -> list[Check]:
    """Run every check for these settings and the index in `index_dir`, in order."""
    return list(_checks(settings, Path(index_dir).expanduser()))


def _checks(settings: Settings, index_dir: Path) -> Iterator[Check]:
    yield _guard("embedder", lambda: _embedder(settings))
    yield from _index(settings, index_dir)
    if settings.llm.url.strip():
        yield from _server(settings)
    else:
        yield _guard("chat model", lambda: _local_model(settings))
    yield _ocr(settings)


def _ocr(settings: Settings) -> Check:
    """Tesseract and its language data, for scanned PDF pages and images (a warning if not)."""
    import shutil

    from rag.loaders.ocr import OcrOptions, unavailable

    options = OcrOptions.from_settings(settings.ingest)
    problem = unavailable(options, "scanned pages and images")
    if problem is not None:
        return Check("ocr", "warn", "scanned PDF pages and images will not be read", problem)
    where = shutil.which(options.command)
    return Check("ocr", "ok", f"tesseract at {where} ({options.languages})")


def _guard(name: str, check: Callable[[], Check]) -> Check:
    """Run `check`; a RagError it raises is a failed check with the error's advice."""
    try:
        return check()
    except RagError as e:
        return Check(name, "fail", str(e))


def _embedder(settings: Settings) -> Check:
    """The configured embedder: its files (not its weights), or one request to its server."""
    from rag.embed import DEFAULT_EMBEDDER
    from rag.embed.sentence_transformers import read_info, resolve_embedder

    ingest = settings.ingest
    if ingest.embedder_url.strip():
        from rag.embed.openai_server import OpenAIEmbedder

        model = "" if ingest.embedder == DEFAULT_EMBEDDER else ingest.embedder
        server = OpenAIEmbedder(ingest.embedder_url, model, timeout=ingest.embedder_timeout,
                                max_retries=ingest.embedder_max_retries)  # fmt: skip
        info, where = server.info, f"served by {server.root}"
    else:
        folder = resolve_embedder(ingest.embedder)
        info, where = read_info(folder), f"at {folder}"
    return Check("embedder", "ok", f"{info.name} ({info.dim}-d, up to {info.max_tokens} "
                 f"tokens) {where}")  # fmt: skip


def _index(settings: Settings, index_dir: Path) -> Iterator[Check]:
    from rag.store import DB_NAME, Store

    if not (index_dir / DB_NAME).exists():
        yield Check("index", "warn", f"no index at {index_dir} yet",
                    f"rag ingest PATH --index {index_dir}")  # fmt: skip
        return
    try:
        store = Store(index_dir)
    except RagError as e:
        yield Check("index", "fail", f"{index_dir} does not open: {e}")
        return
    try:
        stats = store.stats()
        yield Check("index", "ok", f"{index_dir}: {stats.documents:,} documents, "
                    f"{stats.chunks:,} chunks, generation {store.generation}")  # fmt: skip
        yield _guard("index consistency", lambda: _consistency(store))
        yield _guard("index embedder", lambda: _index_embedder(index_dir, settings))
    finally:
        store.close()


def _consistency(store) -> Check:  # type: ignore[no-untyped-def]
    problems = store.consistency_problems()
    if problems:
        fix = "run rag ingest again on the same folders: it repairs the vector index"
        return Check("index consistency", "fail", "; ".join(problems), fix)
    return Check("index consistency", "ok", "every chunk has its vector and document")


def _index_embedder(index_dir: Path, settings: Settings) -> Check:
    """The embedder the pipeline would query this index with (it refuses another one)."""
    from rag.pipeline import build_pipeline

    pipeline = build_pipeline(index_dir, settings)
    try:
        if pipeline.store().embedder_info() is None:
            return Check("index embedder", "warn", "the index records no embedder (it is empty)")
        info = pipeline.embedder().info  # raises IndexFormatError naming both embedders
        return Check("index embedder", "ok", f"{info.name}, the same as configured")
    finally:
        pipeline.close()


def _local_model(settings: Settings) -> Check:
    from rag.models import PRESETS, _is_assembled, check_gguf, find_parts, model_cache_dir

    if importlib.util.find_spec("llama_cpp") is None:
        fix = "bash scripts/install.sh (it builds llama-cpp-python for this CPU)"
        return Check("chat model", "fail", "llama-cpp-python is not installed", fix)
    name = settings.generation.model
    if name not in PRESETS:
        path = check_gguf(name)
        return Check("chat model", "ok", f"{path} (a GGUF file, n_ctx "
                     f"{settings.generation.n_ctx})")  # fmt: skip
    preset = PRESETS[name]
    parts = find_parts(preset)
    if preset.is_split:
        dest = model_cache_dir() / f"{preset.name}.gguf"
        state = "assembled" if _is_assembled(dest, preset) else "assembled on first use"
        where = f"{dest} ({state})"
    else:
        where = str(parts[0].path)
    return Check("chat model", "ok", f"packaged model {name!r}: {where}")


def _server(settings: Settings) -> Iterator[Check]:
    from rag.llm.openai_server import OpenAIChatModel

    url = settings.llm.url
    try:
        model = OpenAIChatModel(settings.llm)
    except RagError as e:
        yield Check("model server", "fail", str(e))
        return
    try:
        info = model.info
        yield Check("model server", "ok", f"{info.url} serves {info.model}")
        ctx_status: Status = "warn" if info.n_ctx_source.startswith("assumed") else "ok"
        fix = "set llm.n_ctx to the server's context size" if ctx_status != "ok" else ""
        yield Check("server context", ctx_status, f"n_ctx {info.n_ctx:,} ({info.n_ctx_source})",
                    fix)  # fmt: skip
        estimated = info.tokenizer.startswith("estimate")
        yield Check("server tokenizer", "warn" if estimated else "ok", info.tokenizer,
                    "name a GGUF or tokenizer.json of the served model in llm.tokenizer for "
                    "exact token budgets" if estimated else "")  # fmt: skip
        try:
            caps = model.capabilities()
        except RagError as e:
            yield Check("server capabilities", "fail", f"{url}: {e}")
            return
        flavour = model.json_flavour
        yield Check(
            "server JSON schema", "ok" if caps.json_schema else "warn",
            f"response_format {flavour}" if caps.json_schema else
            "the server does not constrain replies to a JSON schema: answers are free text, "
            "without P(found)",
            "" if caps.json_schema else "use a server that takes response_format with a schema "
            "(llama.cpp server, vLLM, llama-cpp-python)",
        )  # fmt: skip
        yield Check(
            "server logprobs", "ok" if caps.stream_logprobs else "warn",
            "top_logprobs streamed: P(found) can gate answers" if caps.stream_logprobs else
            "no logprobs: answer.min_found cannot apply",
            "" if caps.stream_logprobs else "llama-cpp-python's server needs --logits_all true "
            "for logprobs",
        )  # fmt: skip
    finally:
        model.close()
