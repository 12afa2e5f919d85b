"""Who may call, and how much they may send: the API key and the body size limit.

Both are plain ASGI middleware, so they cover every route, the static page and the MCP
mount alike. With a key, everything needs `Authorization: Bearer KEY` except `/health`,
the page's own files (`/`, `/static/…`: no user data) and FastAPI's API docs.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PUBLIC_PATHS = frozenset({"/health", "/", "/favicon.ico", "/docs", "/openapi.json"})
PUBLIC_PREFIXES = ("/static/",)
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the server on this machine."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _refuse(send: Send, status: int, message: str, kind: str, headers: list | None = None,
                  code: str | None = None) -> None:  # fmt: skip
    body = json.dumps({"error": {"message": message, "type": kind, "param": None,
                                 "code": code}}).encode()  # fmt: skip
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        *(headers or []),
    ]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


class BearerAuth:
    """Refuse (401) any request without `Authorization: Bearer <key>`, compared in
    constant time, except the public paths."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.key = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS" or _public(scope["path"]):
            await self.app(scope, receive, send)
            return
        given = b""
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                given = token.strip() if scheme.lower() == b"bearer" else b""
        if not hmac.compare_digest(given, self.key):
            message = ("missing or wrong API key: send the header 'Authorization: Bearer KEY' "
                       "with the key this server was started with")  # fmt: skip
            await _refuse(send, 401, message, "authentication_error",
                          [(b"www-authenticate", b"Bearer")], "invalid_api_key")  # fmt: skip
            return
        await self.app(scope, receive, send)


def _public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


class BodyLimit:
    """Refuse (413) a request body over `max_bytes`: by its Content-Length before reading,
    or as soon as a streamed body passes the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        message = (f"the request body is larger than {limit / 1e6:g} MB (serve.max_body_mb); "
                   "send fewer or smaller files at a time")  # fmt: skip
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _refuse(send, 413, message, "invalid_request_error",
                              code="body_too_large")  # fmt: skip
                return
        seen = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal seen
            received = await receive()
            if received["type"] == "http.request":
                seen += len(received.get("body", b""))
                if seen > limit:
                    raise _TooLarge
            return received

        async def tracked_send(sent: Message) -> None:
            nonlocal started
            if sent["type"] == "http.response.start":
                started = True
            await send(sent)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _TooLarge:
            if not started:
                await _refuse(send, 413, message, "invalid_request_error", code="body_too_large")


class _TooLarge(Exception):
    pass
