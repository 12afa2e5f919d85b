"""Errors as HTTP answers: OpenAI's `{"error": {message, type, param, code}}` shape."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from rag.errors import (
    ConfigError,
    ContextOverflowError,
    IndexLockedError,
    IndexNotFoundError,
    RagError,
    ServerError,
)
from rag.serve.slots import Cancelled, QueueFull
from rag.settings import InvalidSetting

if TYPE_CHECKING:
    from rag.serve.service import RagService

log = logging.getLogger("rag.serve")


class RequestError(ConfigError):
    """A request the server refuses; `param` names the field, `status` the HTTP code."""

    def __init__(self, message: str, *, param: str | None = None, status: int = 400,
                 code: str | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.param, self.status, self.code = param, status, code


def service_of(request: Request) -> RagService:
    """The service the app was made around (`create_app`)."""
    return request.app.state.service


def error_body(message: str, kind: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def status_of(exc: Exception) -> tuple[int, str, str | None]:
    """HTTP status, error type and code for a rag error."""
    if isinstance(exc, RequestError):
        return exc.status, "invalid_request_error", exc.code
    if isinstance(exc, Cancelled):
        return 499, "cancelled", "client_closed"
    if isinstance(exc, QueueFull):
        return 429, "rate_limit_error", "queue_full"
    if isinstance(exc, IndexNotFoundError):
        return 409, "invalid_request_error", "index_empty"
    if isinstance(exc, IndexLockedError):
        return 409, "conflict_error", "index_busy"
    if isinstance(exc, ContextOverflowError):
        return 400, "invalid_request_error", "context_length_exceeded"
    if isinstance(exc, ConfigError):
        return 400, "invalid_request_error", None
    if isinstance(exc, ServerError):
        return 502, "upstream_error", "model_server"
    return 500, "server_error", None


def rag_error_body(exc: RagError) -> tuple[int, dict]:
    status, kind, code = status_of(exc)
    param = getattr(exc, "param", None) or getattr(exc, "key", None)
    if isinstance(exc, InvalidSetting) and param:
        param = param.split(".", 1)[-1]
    return status, error_body(str(exc), kind, param, code)


def _field(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves as JSON in one shape; nothing takes the server down."""

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":
            message = f"the request body is not valid JSON: {first.get('ctx', {}).get('error', '')}"
            return JSONResponse(error_body(message.strip(": "), "invalid_request_error",
                                           "body", "invalid_json"), 400)  # fmt: skip
        where = _field(tuple(first.get("loc", ())))
        message = f"{where}: {first.get('msg', 'invalid value')}"
        if where == "body" and first.get("type") == "missing":
            message = "the request needs a JSON body"
        return JSONResponse(error_body(message, "invalid_request_error", where), 400)

    @app.exception_handler(RagError)
    async def rag_error(request: Request, exc: RagError) -> JSONResponse:
        status, body = rag_error_body(exc)
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, QueueFull) else None
        return JSONResponse(body, status, headers=headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.method} {request.url.path} (see /docs)"
        return JSONResponse(error_body(message, kind), exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        message = f"internal error ({type(exc).__name__}: {exc}); the server is still up"
        return JSONResponse(error_body(message, "server_error"), 500)
