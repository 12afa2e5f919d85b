"""`rag serve`: the index behind an OpenAI-compatible API, a web page and MCP."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from rag_cli.options import DebugOption, IndexOption, LlmModelOption, LlmUrlOption, ModelOption
from rag_cli.output import err, run_command
from rag_cli.settings_options import ConfigOption, PresetOption, SetOption, load_cli_settings

SERVE_EPILOG = (
    "Then open http://127.0.0.1:8000 in a browser, or point any OpenAI client at it:  "
    "OpenAI(base_url='http://127.0.0.1:8000/v1', api_key='KEY or anything').  "
    "Endpoints: /v1/chat/completions (streamed or not, with sources), /v1/models, "
    "/v1/embeddings, /search, /ingest, /jobs, /documents, /status, /health, /metrics, /mcp; "
    "the API is documented at /docs."
)


def serve(
    index: IndexOption = None,
    host: Annotated[
        str | None,
        typer.Option(help="Address to listen on. Default: 127.0.0.1 (this machine only). "
                     "Any other address needs --api-key.", show_default=False),  # fmt: skip
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port. Default: 8000 (serve.port).", show_default=False)
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", envvar="RAG_SERVE_API_KEY",
                     help="Require 'Authorization: Bearer KEY' on every endpoint but /health "
                     "and the page's files. Default: $RAG_SERVE_API_KEY.",
                     show_default=False, show_envvar=False),  # fmt: skip
    ] = None,
    watch: Annotated[
        list[Path] | None,
        typer.Option(
            "--watch",
            help="Keep the index in step with this folder (repeatable): synced at start-up, "
            "then each burst of changes is an ingest job (GET /jobs; /status shows the last "
            "batch). Quiet time before a batch: ingest.watch_debounce_ms.",
            show_default=False,
        ),
    ] = None,
    preset: PresetOption = None,
    model: ModelOption = None,
    llm_url: LlmUrlOption = None,
    llm_model: LlmModelOption = None,
    config: ConfigOption = None,
    sets: SetOption = None,
    debug: DebugOption = False,
) -> None:
    """Serve the index over HTTP: a web page at /, an OpenAI-compatible API, and MCP.

    The models load once at start-up; answers are made one at a time, with up to
    serve.queue more waiting (past that: 429 with Retry-After). Uploads (POST /ingest, or
    the page) are indexed in the background while questions are answered from the index as
    it was; so are the folders given with --watch, after each burst of changes. Each request
    (and each watched batch) logs one JSON line on stderr; /metrics is Prometheus text.
    Stop with Ctrl-C.

    Example:  rag serve --index ~/rag-index --preset fast
    """
    from rag.errors import ConfigError
    from rag.serve.security import is_loopback

    def work() -> int:
        try:
            import uvicorn

            from rag.serve import RagService, create_app
        except ModuleNotFoundError as exc:
            raise ConfigError(
                f"rag serve needs the serve extra ({exc.name} is not installed): "
                "pip install -e '.[serve]'"
            ) from None

        loaded = load_cli_settings(preset, config, {
            "serve.host": host, "serve.port": port, "generation.model": model,
            "llm.url": llm_url, "llm.model": llm_model,
        }, sets)  # fmt: skip
        settings = loaded.settings
        key = (api_key or "").strip()
        bind = settings.serve.host
        if not is_loopback(bind) and not key:
            raise ConfigError(
                f"refusing to listen on {bind} without an API key: anyone who can reach it "
                "could read your documents; give --api-key KEY (or RAG_SERVE_API_KEY), or "
                "keep the default --host 127.0.0.1"
            )
        from rag.config import default_index_dir

        directory = index.expanduser() if index is not None else default_index_dir()
        _log_to_stderr(debug)
        err.print(f"rag serve: loading the models for {directory} …", highlight=False)
        service = RagService(directory, settings, preset=loaded.preset, watch=watch or ())
        service.start()
        app = create_app(service, api_key=key, host=bind)
        status = service.status()
        url = f"http://{bind if ':' not in bind else f'[{bind}]'}:{settings.serve.port}"
        err.print(
            f"rag serve: {url}  ({status['documents']} documents, {status['chunks']} chunks; "
            f"model {status['model']}{'; API key required' if key else ''})\n"
            f"  page {url}/   API {url}/v1   docs {url}/docs   MCP {url}/mcp",
            highlight=False,
        )
        if service.watched is not None:
            folders = ", ".join(service.watched.roots.all)
            err.print(f"  watching {folders} (one ingest job per batch of changes)",
                      highlight=False, markup=False)  # fmt: skip
        os.environ.pop("RAG_SERVE_API_KEY", None)  # not handed to anything this process starts
        uvicorn.run(app, host=bind, port=settings.serve.port, log_level="warning",
                    access_log=False, timeout_graceful_shutdown=5)  # fmt: skip
        return 0

    raise typer.Exit(run_command(work, debug))


def _log_to_stderr(debug: bool) -> None:
    """One line per request from the `rag.serve` logger, on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    serve_log = logging.getLogger("rag.serve")
    serve_log.handlers[:] = [handler]
    serve_log.setLevel(logging.DEBUG if debug else logging.INFO)
    serve_log.propagate = False
