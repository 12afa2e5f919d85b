"""Turn what a model server's client raises into one-line errors that name the URL and what to
do: server down, wrong URL or path, a refused key, an unknown model, a timeout, a failure
mid-answer, a prompt the server says does not fit its context."""

from __future__ import annotations

import re

from rag.errors import ContextOverflowError, RagError, ServerError
from rag.remote.messages import one_line, server_said

START_HINT = 'python -m llama_cpp.server --model "$(rag models path fast)" --port 8080'
_CONTEXT = re.compile(
    r"context (length|window|size)|maximum context|too many tokens|exceeds? (the )?(context|max)"
    r"|prompt is too long|input is too long",
    re.IGNORECASE,
)


def timeout_error(url: str, timeout: float) -> ServerError:
    return ServerError(
        f"the model server at {url} did not answer within {timeout:g} s (llm.timeout): it may "
        "be busy or the model slow for this prompt; raise llm.timeout or check the server"
    )


def broken_stream_error(url: str, produced: int, detail: str) -> ServerError:
    return ServerError(
        f"the model server at {url} broke off the answer after {produced} token(s) ({detail}): "
        "it may have crashed or been stopped; see its log and ask again"
    )


def request_error(exc: BaseException, url: str, timeout: float) -> RagError:
    """The RagError to raise for an exception from the `openai` client talking to `url`."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return timeout_error(url, timeout)
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        reason = one_line(str(cause or exc)) or "no answer"
        return ServerError(
            f"cannot reach the model server at {url} ({reason}): start it (e.g. {START_HINT}) "
            "or fix --llm-url / llm.url"
        )
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        said = server_said(exc)
        if status in (401, 403):
            return ServerError(
                f"the model server at {url} refused the request ({status}: {said}): set "
                "RAG_LLM_API_KEY to the server's API key"
            )
        if _CONTEXT.search(said):
            return ContextOverflowError(
                f"the model server at {url} says the prompt does not fit its context ({said}); "
                "set llm.n_ctx to the server's context size, or lower answer.context_tokens "
                "or answer.max_tokens"
            )
        if status == 404 and "model" not in said.lower():
            return ServerError(
                f"{url} has no OpenAI-compatible API there (404 {said}): llm.url must be the "
                "API root, e.g. http://127.0.0.1:8080/v1"
            )
        return ServerError(f"the model server at {url} failed ({status}): {said}")
    return ServerError(f"the model server at {url} failed: {exc}")
