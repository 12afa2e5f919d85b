"""A server's own words in an error, shortened to one line."""

from __future__ import annotations

from typing import Any


def one_line(text: str, limit: int = 160) -> str:
    """`text` on one line, cut to `limit` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def server_said(exc: Any, limit: int = 300) -> str:
    """The message in an error response's JSON (`error.message`, `detail`), else the error."""
    body = getattr(exc, "body", None)
    text = ""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            text = str(inner.get("message") or inner.get("detail") or "")
        elif inner:
            text = str(inner)
        text = text or str(body.get("detail") or body.get("message") or "")
    elif body:
        text = str(body)
    return one_line(text or str(getattr(exc, "message", "") or exc), limit)
