"""The URLs of an OpenAI-compatible server: its API root and its host root."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from rag.errors import ConfigError


def api_root(url: str) -> str:
    """The API root to call: `url` without a trailing slash; a bare host:port gets /v1."""
    if not re.match(r"^https?://[^/\s]+", url.strip()):
        raise ConfigError(f"server URL {url!r} must start with http:// or https:// and a host")
    parts = urlsplit(url.strip())
    path = parts.path.rstrip("/") or "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def host_root(root: str) -> str:
    """Where a server's routes beside the OpenAI API live (/tokenize, /props): the API root
    without its /v1 (http://host:8080/v1 -> http://host:8080)."""
    return root[: -len("/v1")] if root.endswith("/v1") else root
