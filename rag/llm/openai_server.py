"""The OpenAI-compatible backend of the chat-model port: a model behind llama.cpp's server,
llama-cpp-python's server, vLLM, Ollama, LM Studio… reached over HTTP with the official `openai`
client (timeouts, bounded retries before the first byte, streaming).

What the server can do is found out once, on first need, with short requests (or declared in
settings): a JSON schema through `response_format` (OpenAI's `json_schema` shape, else the
`json_object` + `schema` shape llama-cpp-python takes), per-token `logprobs`, a tokenize
endpoint, its context length. What it cannot do, the pipeline works around and says so.

Example:
    >>> from rag.settings import LlmSettings
    >>> model = OpenAIChatModel(LlmSettings(url="http://127.0.0.1:8080/v1"))  # doctest: +SKIP
    >>> hi = [{"role": "user", "content": "Hi"}]
    >>> generate(model, hi, GenerationOptions(16)).text  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from rag.errors import ConfigError, ContextOverflowError, RagError, ServerError
from rag.llm.base import (
    Generation,
    GenerationOptions,
    Message,
    ModelCapabilities,
    StopReason,
    Stream,
    TokenLogprob,
    generate,
)
from rag.llm.chat_template import check_messages
from rag.llm.server_errors import (
    broken_stream_error,
    request_error,
    timeout_error,
)
from rag.remote.messages import one_line, server_said
from rag.remote.tokens import (
    NO_ENDPOINT_STATUS,
    EstimatedTokenCounter,
    LocalCounter,
    NoEndpoint,
    ServerTokenCounter,
    find_tokenizer,
)
from rag.remote.urls import api_root, host_root
from rag.settings import LLM_API_KEY_ENV, LlmSettings

__all__ = ["ASSUMED_N_CTX", "OpenAIChatModel", "ServerInfo", "api_root", "generate"]

ASSUMED_N_CTX = 2048  # llama-cpp-python's server default, when a server does not say
# Chat-template tokens around message contents, for servers that cannot count a whole chat
# (ChatML takes 5 a message; the slack covers role names and a default system prompt).
TEMPLATE_TOKENS_PER_MESSAGE = 8
TEMPLATE_TOKENS_BASE = 24
_PROBE_SCHEMA = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}},
    "required": ["ok"],
}


@dataclass(frozen=True)
class ServerInfo:
    """What was learnt about the server when connecting (for `rag doctor` and reports)."""

    url: str
    model: str
    models: tuple[str, ...]
    n_ctx: int
    n_ctx_source: str  # "settings", "server (…)" or "assumed"
    tokenizer: str


class OpenAIChatModel:
    """A chat model served over an OpenAI-compatible API (the `ChatModel` port).

    Connects when made (lists the server's models, picks `settings.model` or the only one,
    learns the context length and a tokenizer) so a wrong URL, key or model fails at once with
    a one-line ServerError. Several threads may stream at once: the server queues them.
    """

    def __init__(self, settings: LlmSettings, *, api_key: str | None = None) -> None:
        if not settings.url.strip():
            raise ConfigError("llm.url is empty: give the server's URL, e.g. --llm-url "
                              "http://127.0.0.1:8080/v1")  # fmt: skip
        try:
            import openai
        except ImportError:
            raise ConfigError(
                "a model server needs the openai client: pip install 'rag[remote]' (or "
                "pip install openai)"
            ) from None
        self.settings = settings
        self.url = api_root(settings.url)
        self._root = host_root(self.url)
        self._timeout = settings.timeout
        key = api_key if api_key is not None else os.environ.get(LLM_API_KEY_ENV, "")
        self._client = openai.OpenAI(
            base_url=self.url,
            api_key=key or "none",  # the client insists on one; servers without keys ignore it
            timeout=openai.Timeout(settings.timeout, connect=settings.connect_timeout),
            max_retries=settings.max_retries,
        )
        self._lock = threading.Lock()
        self._capabilities: ModelCapabilities | None = None
        self._json_flavour: str | None = None  # "json_schema" | "json_object" | None
        self._template_extra = 0  # learnt from the server's usage reports
        self.info = self._connect()

    def __repr__(self) -> str:
        return f"OpenAIChatModel(url={self.url!r}, model={self.info.model!r})"

    # ---- the port ---------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The served model's id (its file name, when the id is a path)."""
        return PurePosixPath(self.info.model).name or self.info.model

    @property
    def n_ctx(self) -> int:
        """The server's context window (see `info.n_ctx_source` for where it came from)."""
        return self.info.n_ctx

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` as message content, by the server's tokenizer when it has one."""
        try:
            return self._counter.count(text)
        except RagError:
            raise
        except Exception as e:
            raise self._error(e) from None

    def chat_prompt_tokens(self, messages: Sequence[Message]) -> int:
        """Tokens the server's chat template makes of `messages`: the contents counted exactly
        (or estimated), the template around them estimated with slack."""
        contents = check_messages(messages)
        template = TEMPLATE_TOKENS_BASE + TEMPLATE_TOKENS_PER_MESSAGE * len(contents)
        return sum(self.count_tokens(c) for c in contents) + template + self._template_extra

    def capabilities(self) -> ModelCapabilities:
        """JSON schema and logprobs support, detected once by short requests (or declared in
        llm.json_schema / llm.logprobs), and how tokens are counted."""
        with self._lock:
            if self._capabilities is None:
                self._capabilities = self._detect()
            return self._capabilities

    @property
    def json_flavour(self) -> str | None:
        """The `response_format` shape the server takes ("json_schema", "json_object") or None."""
        self.capabilities()
        return self._json_flavour

    def stream(self, messages: Sequence[Message], options: GenerationOptions) -> Stream:
        """Start a streamed reply; raise ContextOverflowError before sending a prompt that
        cannot fit `n_ctx`. The stream's `generation` has the stop reason, token counts (the
        server's usage report when it sends one) and the time to first token measured here."""
        if options.max_tokens < 1:
            raise ConfigError(f"max_tokens must be at least 1, got {options.max_tokens}")
        prompt_tokens = self.chat_prompt_tokens(messages)
        over = prompt_tokens + options.max_tokens - self.n_ctx
        if over > 0:
            raise ContextOverflowError(
                f"prompt (~{prompt_tokens:,} tokens) + max_tokens ({options.max_tokens:,}) "
                f"exceeds the server's context window (n_ctx={self.n_ctx:,}, "
                f"{self.info.n_ctx_source}) by {over:,} tokens; shorten the prompt, lower "
                "max_tokens, or set llm.n_ctx if the server has more"
            )
        request = self._request(messages, options)
        stream = Stream(iter(()))
        stream.pieces = self._run(stream, request, messages, prompt_tokens)
        return stream

    def generate(self, messages: Sequence[Message], options: GenerationOptions) -> Generation:
        """Return the whole answer to `messages`."""
        return generate(self, messages, options)

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

    def __enter__(self) -> OpenAIChatModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- connecting and detecting ------------------------------------------------------

    def _connect(self) -> ServerInfo:
        """List the models, pick ours, learn n_ctx and the tokenizer."""
        try:
            listing: Any = self._client.get("/models", cast_to=object)
        except Exception as e:
            raise self._error(e) from None
        data = listing.get("data") if isinstance(listing, dict) else None
        entries = [m for m in data or [] if isinstance(m, dict)]
        ids = tuple(str(m.get("id")) for m in entries if m.get("id"))
        if not ids:
            raise ServerError(f"the model server at {self.url} lists no models (GET /models)")
        model = self._pick_model(ids)
        entry = next(m for m in entries if m.get("id") == model)
        n_ctx, source = self._context_length(entry)
        self._counter = self._tokenizer(model)
        return ServerInfo(self.url, model, ids, n_ctx, source, self._counter.name)

    def _pick_model(self, ids: tuple[str, ...]) -> str:
        wanted = self.settings.model.strip()
        listed = ", ".join(ids)
        if not wanted:
            if len(ids) == 1:
                return ids[0]
            raise ServerError(
                f"the model server at {self.url} serves several models ({listed}): choose one "
                "with --llm-model NAME"
            )
        if wanted in ids:
            return wanted
        by_name = [i for i in ids if PurePosixPath(i).name == wanted]
        if len(by_name) == 1:
            return by_name[0]
        raise ServerError(
            f"model {wanted!r} is not served by {self.url}; it serves: {listed} (use "
            "--llm-model with one of these)"
        )

    def _context_length(self, entry: Mapping[str, Any]) -> tuple[int, str]:
        """llm.n_ctx, else what the server says (vLLM's max_model_len, llama.cpp's /props),
        else ASSUMED_N_CTX."""
        if self.settings.n_ctx:
            return self.settings.n_ctx, "settings"
        if isinstance(entry.get("max_model_len"), int):
            return int(entry["max_model_len"]), "server (max_model_len)"
        try:
            props: Any = self._client.get(self._root + "/props", cast_to=object)
            n_ctx = (props or {}).get("default_generation_settings", {}).get("n_ctx")
            if isinstance(n_ctx, int) and n_ctx > 0:
                return n_ctx, "server (/props)"
        except Exception:  # most servers have no /props
            pass
        return ASSUMED_N_CTX, "assumed: the server does not say; set llm.n_ctx"

    def _tokenizer(self, model: str) -> EstimatedTokenCounter | LocalCounter | ServerTokenCounter:
        choice = self.settings.tokenizer.strip()
        if choice == "estimate":
            return EstimatedTokenCounter()
        if choice not in ("auto", "server"):
            return LocalCounter(choice)

        import openai

        def post(url: str, body: dict[str, Any]) -> Any:
            try:
                return self._client.post(url, body=body, cast_to=object)
            except openai.APIStatusError as e:
                if e.status_code in NO_ENDPOINT_STATUS:
                    raise NoEndpoint from None
                raise

        try:
            found = find_tokenizer(self._root, model, post)
        except Exception as e:
            raise self._error(e) from None
        if found is not None:
            url, tokenize = found
            return ServerTokenCounter(tokenize, name=f"server ({url})")
        if choice == "server":
            raise ServerError(
                f"the model server at {self.url} has no tokenize endpoint (llm.tokenizer = "
                "server): use auto, estimate, or a local tokenizer file"
            )
        return EstimatedTokenCounter()

    def _detect(self) -> ModelCapabilities:
        """Find out once whether the server streams logprobs and takes a JSON schema."""
        s = self.settings
        logprobs = s.logprobs == "yes" or (s.logprobs == "auto" and self._probe_logprobs())
        if s.json_schema == "none":
            self._json_flavour = None
        elif s.json_schema != "auto":
            self._json_flavour = s.json_schema
        else:
            self._json_flavour = next(
                (f for f in ("json_schema", "json_object") if self._probe_json(f)), None
            )
        notes = []
        if self.info.n_ctx_source.startswith("assumed"):
            notes.append(f"n_ctx {self.n_ctx} assumed: the server does not say; set llm.n_ctx")
        return ModelCapabilities(
            json_schema=self._json_flavour is not None,
            stream_logprobs=logprobs,
            tokenizer=self._counter.name,
            notes=tuple(notes),
        )

    def _probe_logprobs(self) -> bool:
        try:
            reply = self._complete(
                messages=[{"role": "user", "content": "Say OK."}], max_tokens=1,
                temperature=0, logprobs=True, top_logprobs=2,
            )  # fmt: skip
        except Exception as e:
            self._raise_if_unusable(e)
            return False
        choice = reply.choices[0] if reply.choices else None
        content = choice.logprobs.content if choice and choice.logprobs else None
        return bool(content and content[0].top_logprobs)

    def _probe_json(self, flavour: str) -> bool:
        try:
            reply = self._complete(
                messages=[{"role": "user", "content": "Say hello in one word."}],
                max_tokens=24, temperature=0,
                response_format=_response_format(flavour, _PROBE_SCHEMA),
            )  # fmt: skip
        except Exception as e:
            self._raise_if_unusable(e)
            return False
        text = (reply.choices[0].message.content or "") if reply.choices else ""
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return False
        return isinstance(data, dict) and isinstance(data.get("ok"), bool)

    def _complete(self, **request: Any) -> Any:
        """One chat completion, not streamed, for our model."""
        return self._client.chat.completions.create(model=self.info.model, **request)

    def _raise_if_unusable(self, exc: Exception) -> None:
        """A probe that fails because the server is down or refuses us is not "unsupported"."""
        import openai

        if isinstance(exc, openai.APIConnectionError | openai.AuthenticationError):
            raise self._error(exc) from None

    # ---- one request -------------------------------------------------------------------

    def _request(self, messages: Sequence[Message], options: GenerationOptions) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": self.info.model,
            "messages": [dict(m) for m in messages],
            "max_tokens": options.max_tokens,
            "temperature": options.temperature,
            "top_p": options.top_p,
            "stream": True,
            "stream_options": {"include_usage": True},
            # llama.cpp-based servers take these; others ignore unknown fields. repeat_penalty 1
            # is what the in-process backend uses (llama-cpp-python's server defaults to 1.1).
            "extra_body": {"top_k": options.top_k, "min_p": options.min_p, "repeat_penalty": 1.0},
        }
        if options.seed is not None:
            request["seed"] = options.seed
        if options.stop:
            request["stop"] = list(options.stop)
        if options.response_format is not None:
            flavour = self.json_flavour
            if flavour is None:
                raise ConfigError(
                    f"the model server at {self.url} does not take a JSON schema "
                    "(response_format); use answer.output = text"
                )
            schema = options.response_format.get("schema") or {"type": "object"}
            request["response_format"] = _response_format(flavour, schema)
        if options.top_logprobs > 0 and self.capabilities().stream_logprobs:
            request["logprobs"] = True
            request["top_logprobs"] = min(options.top_logprobs, 20)
        return request

    def _run(
        self,
        stream: Stream,
        request: dict[str, Any],
        messages: Sequence[Message],
        prompt_estimate: int,
    ) -> Iterator[str]:
        """Yield the reply's text pieces; fill `stream.generation` (and token_logprobs)."""
        start = time.perf_counter()
        deadline = start + self._timeout
        ttft = 0.0
        produced = 0
        pieces: list[str] = []
        finish: str | None = None
        usage: Any = None
        response = None
        try:
            try:
                response = self._client.chat.completions.create(**request)
            except Exception as e:
                raise self._error(e) from None
            try:
                for chunk in response:
                    if time.perf_counter() > deadline:
                        raise timeout_error(self.url, self._timeout)
                    if getattr(chunk, "usage", None):
                        usage = chunk.usage
                    if not chunk.choices:
                        continue
                    choice = chunk.choices[0]
                    if choice.logprobs and choice.logprobs.content:
                        stream.token_logprobs.extend(_logprobs(choice.logprobs.content))
                    text = choice.delta.content if choice.delta else None
                    if text:
                        if not ttft:
                            ttft = time.perf_counter() - start
                        produced += 1
                        pieces.append(text)
                        yield text
                    if choice.finish_reason:
                        finish = choice.finish_reason
            except RagError:
                raise
            except Exception as e:
                raise self._mid_stream_error(e, produced, messages) from None
            if finish is None:
                if produced == 0:
                    raise self._diagnose(messages)
                raise broken_stream_error(self.url, produced, "no finish_reason")
        finally:
            if response is not None:
                response.close()
            reason: StopReason = "truncated" if finish == "length" else "complete"
            counted = usage is not None and getattr(usage, "prompt_tokens", None)
            if counted:
                self._learn_template(usage.prompt_tokens, prompt_estimate)
            stream.generation = Generation(
                text="".join(pieces),
                stop_reason=reason,
                prompt_tokens=int(usage.prompt_tokens) if counted else prompt_estimate,
                completion_tokens=int(usage.completion_tokens or produced) if counted
                else produced,
                ttft_s=ttft,
                total_s=time.perf_counter() - start,
                usage_source="server" if counted else "estimated",
            )  # fmt: skip

    def _learn_template(self, actual: int, estimate: int) -> None:
        """Raise the template allowance when the server counted more than we estimated."""
        if actual > estimate:
            with self._lock:
                self._template_extra = max(self._template_extra, actual - estimate + 8)

    def _mid_stream_error(
        self, exc: Exception, produced: int, messages: Sequence[Message]
    ) -> RagError:
        import httpx2  # the openai client's HTTP library

        if isinstance(exc, httpx2.TimeoutException):
            return timeout_error(self.url, self._timeout)
        if produced == 0 and isinstance(exc, httpx2.HTTPError):
            return self._diagnose(messages)
        import openai

        if isinstance(exc, openai.APIError) and not isinstance(exc, openai.APIConnectionError):
            return broken_stream_error(self.url, produced, server_said(exc))
        return broken_stream_error(self.url, produced, one_line(str(exc)))

    def _diagnose(self, messages: Sequence[Message]) -> RagError:
        """A stream that ended before its first token: ask once more without streaming, so
        the server says why (llama-cpp-python reports a context overflow only this way)."""
        # llama-cpp-python resets the connection of a failed stream: the retry gets past that
        client = self._client.with_options(max_retries=max(1, self.settings.max_retries))
        try:
            client.chat.completions.create(model=self.info.model, max_tokens=1, temperature=0,
                                           messages=[dict(m) for m in messages])  # type: ignore[misc]
        except Exception as e:
            return self._error(e)
        return broken_stream_error(self.url, 0, "the stream ended before the first token")

    def _error(self, exc: BaseException) -> RagError:
        return request_error(exc, self.url, self._timeout)


def _response_format(flavour: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    """`response_format` in the shape the server takes."""
    if flavour == "json_schema":
        named = {"name": "answer", "schema": dict(schema), "strict": True}
        return {"type": "json_schema", "json_schema": named}
    return {"type": "json_object", "schema": dict(schema)}


def _logprobs(content: Sequence[Any]) -> list[TokenLogprob]:
    return [
        TokenLogprob(
            token=c.token,
            logprob=float(c.logprob),
            top={t.token: float(t.logprob) for t in (c.top_logprobs or [])},
        )
        for c in content
    ]
