"""The HTTP side of an OpenAI-compatible embeddings server: list models, embed, tokenize.

Every failure becomes one `ServerError` line that names the URL and what to do: the server
is down, a wrong path (404), a refused key (401/403), a timeout, any other HTTP error.
Requests go through the official `openai` client: a timeout per request and
`max_retries` retries (with backoff) of connection errors, timeouts, 429 and 5xx answers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from rag.errors import ConfigError, ServerError

T = TypeVar("T")
NO_KEY = "no-key"  # sent when no key is set: the client needs one, keyless servers ignore it
# Where servers tokenize, relative to the host root (the API root without its /v1):
# llama-cpp-python's server, then llama.cpp's llama-server and vLLM.
TOKENIZE_PATHS = ("/extras/tokenize", "/tokenize")


def api_root(url: str) -> str:
    """The API root of a server URL: no trailing slash; a bare http://host:port gets /v1."""
    root = url.strip().rstrip("/")
    if not re.match(r"^https?://[^/\s]+", root):
        raise ConfigError(f"embeddings server URL {url!r} must start with http:// or https://")
    if re.match(r"^https?://[^/]+$", root):
        root += "/v1"
    return root


def host_root(root: str) -> str:
    """The root of a server's non-OpenAI routes (/tokenize): the API root without /v1."""
    return root[: -len("/v1")] if root.endswith("/v1") else root


class EmbeddingsAPI:
    """Calls to one server at `url` (its API root, e.g. http://127.0.0.1:8081/v1).

    >>> api = EmbeddingsAPI("http://127.0.0.1:8081", api_key="", timeout=10)  # doctest: +SKIP
    >>> api.models()  # doctest: +SKIP
    ['bge-small-en-v1.5']
    """

    def __init__(self, url: str, *, api_key: str, timeout: float, max_retries: int = 2) -> None:
        from openai import OpenAI, Timeout

        self.root = api_root(url)
        self.timeout = timeout
        self.max_retries = max_retries
        self._client = OpenAI(
            base_url=self.root, api_key=api_key or NO_KEY, max_retries=max_retries,
            timeout=Timeout(timeout, connect=min(timeout, 10.0)),
        )  # fmt: skip

    def models(self) -> list[str]:
        """The ids of the models the server serves (GET /models)."""
        hint = "ingest.embedder_url must be the server's API root, e.g. http://127.0.0.1:8081/v1"
        page = self._call("GET /models", self.root + "/models", self._client.models.list, hint)
        return [m.id for m in page.data]

    def embed(self, model: str, texts: Sequence[str]) -> list[Any]:
        """The server's vector for each text, in order; a vector may be one row per token
        (servers that do not pool), left for the caller to pool."""
        hint = "the server may not serve embeddings (llama.cpp: start it with --embedding)"
        response = self._call(
            "POST /embeddings", self.root + "/embeddings",
            lambda: self._client.embeddings.create(model=model, input=list(texts),
                                                   encoding_format="float"),
            hint,
        )  # fmt: skip
        data = sorted(response.data or [], key=lambda d: d.index)
        if len(data) != len(texts):
            raise ServerError(
                f"the embeddings server at {self.root} returned {len(data)} vectors for "
                f"{len(texts)} texts; check that it is an OpenAI-compatible embeddings server"
            )
        return [d.embedding for d in data]

    def find_tokenizer(self, model: str) -> Callable[[str], list[int]] | None:
        """A function that tokenizes text with the server's own tokenizer, if it has one."""
        for path in TOKENIZE_PATHS:
            url = host_root(self.root) + path
            try:
                self._tokenize(url, model, "hello", probe=True)
            except _NoTokenizer:
                continue
            return lambda text, url=url: self._tokenize(url, model, text)  # type: ignore[misc]
        return None

    def _tokenize(self, url: str, model: str, text: str, probe: bool = False) -> list[int]:
        """The token ids of `text`; when `probe`, raise _NoTokenizer if `url` cannot."""
        import openai

        # One body for all three servers: llama-cpp-python reads `input`, llama-server
        # `content` (special tokens off by default), vLLM `prompt` and `add_special_tokens`.
        body = {"input": text, "content": text, "prompt": text, "model": model,
                "add_special_tokens": False}  # fmt: skip

        def request() -> object:
            try:
                return self._client.post(url, body=body, cast_to=object)
            except openai.APIStatusError as exc:
                if probe and exc.status_code in (400, 404, 405, 422, 501):
                    raise _NoTokenizer from None
                raise

        found = self._call("POST tokenize", url, request, "")
        tokens = found.get("tokens") if isinstance(found, dict) else None
        if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
            if probe:
                raise _NoTokenizer
            raise ServerError(f"{url} did not answer with a token list; it cannot tokenize")
        return tokens

    def _call(self, what: str, url: str, request: Callable[[], T], hint_404: str) -> T:
        """Run `request`; turn the client's exceptions into one-line ServerErrors."""
        import openai

        server = f"the embeddings server at {self.root}"
        try:
            return request()
        except openai.APITimeoutError:
            tries = f" (tried {self.max_retries + 1} times)" if self.max_retries else ""
            raise ServerError(
                f"{server} did not answer {what} within {self.timeout:g}s{tries}; check that "
                "it is not stuck or overloaded, or raise ingest.embedder_timeout"
            ) from None
        except openai.APIConnectionError as exc:
            reason = _one_line(str(exc.__cause__ or exc))
            raise ServerError(
                f"cannot reach {server} ({reason}); start the server, or fix ingest.embedder_url"
            ) from None
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise ServerError(
                f"{server} refused the API key ({exc.status_code}{_detail(exc)}); set "
                "RAG_EMBED_API_KEY (or RAG_LLM_API_KEY) to the server's key"
            ) from None
        except openai.NotFoundError as exc:
            fix = f"; {hint_404}" if hint_404 else ""
            raise ServerError(f"{url} was not found (404{_detail(exc)}){fix}") from None
        except openai.APIStatusError as exc:
            raise ServerError(
                f"{server} failed {what} (HTTP {exc.status_code}{_detail(exc)}); "
                "see the server's log"
            ) from None
        except openai.APIError as exc:
            raise ServerError(
                f"{server} gave an answer to {what} that is not OpenAI-compatible "
                f"({_one_line(str(exc))}); check ingest.embedder_url"
            ) from None


class _NoTokenizer(Exception):
    """The server has no tokenize endpoint at that path (internal: never reaches a user)."""


def _detail(exc: Any) -> str:
    """': <the server's own message>' from an error body, or ''."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        body = inner.get("message") or inner.get("detail") if isinstance(inner, dict) else inner
    return f": {_one_line(str(body))}" if body else ""


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
