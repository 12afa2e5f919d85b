"""The HTTP side of an OpenAI-compatible embeddings server: list models, embed, tokenize.

Every failure becomes one `ServerError` line that names the URL and what to do: the server
is down, a wrong path (404), a refused key (401/403), a timeout, any other HTTP error.
Requests go through the official `openai` client: a timeout per request and
`max_retries` retries (with backoff) of connection errors, timeouts, 429 and 5xx answers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from rag.errors import ServerError
from rag.remote.messages import one_line, server_said
from rag.remote.tokens import NO_ENDPOINT_STATUS, NoEndpoint, Tokenize, find_tokenizer
from rag.remote.urls import api_root, host_root

T = TypeVar("T")
NO_KEY = "no-key"  # sent when no key is set: the client needs one, keyless servers ignore it


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

    def find_tokenizer(self, model: str) -> tuple[str, Tokenize] | None:
        """The server's tokenize endpoint and a function that tokenizes with it, if it has one."""
        return find_tokenizer(host_root(self.root), model, self._post)

    def _post(self, url: str, body: dict[str, Any]) -> Any:
        import openai

        def request() -> Any:
            try:
                return self._client.post(url, body=body, cast_to=object)
            except openai.APIStatusError as exc:
                if exc.status_code in NO_ENDPOINT_STATUS:
                    raise NoEndpoint from None  # find_tokenizer tries the next path
                raise

        return self._call("POST tokenize", url, request, "")

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
            reason = one_line(str(exc.__cause__ or exc))
            raise ServerError(
                f"cannot reach {server} ({reason}); start the server, or fix ingest.embedder_url"
            ) from None
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise ServerError(
                f"{server} refused the API key ({exc.status_code}{_said(exc)}); set "
                "RAG_EMBED_API_KEY (or RAG_LLM_API_KEY) to the server's key"
            ) from None
        except openai.NotFoundError as exc:
            fix = f"; {hint_404}" if hint_404 else ""
            raise ServerError(f"{url} was not found (404{_said(exc)}){fix}") from None
        except openai.APIStatusError as exc:
            raise ServerError(
                f"{server} failed {what} (HTTP {exc.status_code}{_said(exc)}); "
                "see the server's log"
            ) from None
        except openai.APIError as exc:
            raise ServerError(
                f"{server} gave an answer to {what} that is not OpenAI-compatible "
                f"({one_line(str(exc))}); check ingest.embedder_url"
            ) from None


def _said(exc: Any) -> str:
    """': <the server's own message>' from an error, or ''."""
    said = server_said(exc, 160)
    return f": {said}" if said else ""
