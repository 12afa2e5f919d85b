"""`create_app`: the FastAPI app around a started `RagService`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from rag import __version__
from rag.serve import native_api, openai_api
from rag.serve.errors import install_error_handlers
from rag.serve.metrics import Metrics, Observe
from rag.serve.security import BearerAuth, BodyLimit
from rag.serve.service import RagService

STATIC = Path(str(resources.files("rag.serve").joinpath("static")))


def create_app(
    service: RagService, *, api_key: str = "", close_service: bool = True, host: str = ""
) -> FastAPI:
    """The HTTP app over `service` (already started). With `api_key`, requests need it;
    `close_service` frees the model when the app shuts down; `host` is the address it is
    served on (MCP checks the Host header against a loopback one)."""
    from rag.serve.mcp import mcp_http_app

    mcp = mcp_http_app(service, host=host or service.settings.serve.host)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with mcp.lifespan():  # the MCP session manager: every /mcp call needs it
            try:
                yield
            finally:
                if close_service:
                    service.close()

    app = FastAPI(
        title="rag",
        version=__version__,
        summary="Answers from your documents, with verified sources.",
        description="OpenAI-compatible `/v1` endpoints plus native search, ingest and "
        "document endpoints. The web page is at `/`.",
        lifespan=lifespan,
    )
    app.state.service = service
    metrics = Metrics(service)
    app.state.metrics = metrics
    install_error_handlers(app)
    app.include_router(openai_api.router)
    app.include_router(native_api.router)
    # a route, not a mount (which would 307 /mcp to /mcp/); a non-function endpoint is ASGI
    app.add_route("/mcp", mcp.app, include_in_schema=False)  # type: ignore[arg-type]

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        return Response(metrics.text(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/", include_in_schema=False, response_model=None)
    def page(request: Request) -> FileResponse | HTMLResponse:
        index = STATIC / "index.html"
        if index.is_file():
            return FileResponse(index, headers={"Cache-Control": "no-cache"})
        return HTMLResponse("<p>rag serve is running; the web page is not installed. "
                            "The API is documented at <a href='/docs'>/docs</a>.</p>")  # fmt: skip

    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")

    serve = service.settings.serve
    if api_key:
        app.add_middleware(BearerAuth, api_key=api_key)
    app.add_middleware(BodyLimit, max_bytes=int(serve.max_body_mb * 1_000_000))
    origins = [o.strip() for o in serve.cors_origins.split(",") if o.strip()]
    if origins:  # outside the key check, so a browser sees why a call was refused
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["*"],
                           allow_headers=["*"])  # fmt: skip
    app.add_middleware(Observe, metrics=metrics)
    return app
