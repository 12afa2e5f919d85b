"""The OpenAI-compatible endpoints: chat completions (with verified sources), models,
embeddings. An unmodified `openai` client works; our fields travel beside the standard ones.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from rag.errors import RagError
from rag.locations import describe
from rag.retrieve import Filters
from rag.serve.errors import RequestError, rag_error_body, service_of
from rag.serve.schemas import ChatMessage, ChatRequest, EmbeddingsRequest, FiltersBody
from rag.settings import AnswerSettings

if TYPE_CHECKING:
    from rag.ask import Answer, Source
    from rag.cite import CitedSentence
    from rag.serve.service import RagService

router = APIRouter(tags=["OpenAI-compatible"])
DISCONNECT_POLL_S = 0.25


@router.get("/v1/models")
def list_models(request: Request) -> dict:
    """The model ids this server answers as (the preset it runs, and "rag")."""
    service = service_of(request)
    created = int(service.started)
    return {"object": "list", "data": [
        {"id": name, "object": "model", "created": created, "owned_by": "rag",
         "generator": service.chat_model.name}
        for name in service.model_ids()
    ]}  # fmt: skip


@router.post("/v1/embeddings")
def embeddings(body: EmbeddingsRequest, request: Request) -> dict:
    """Embed texts with the index's embedder (unit-length vectors)."""
    service = service_of(request)
    texts = [body.input] if isinstance(body.input, str) else list(body.input)
    if len(texts) > 2048:
        raise RequestError(f"input: {len(texts)} texts; send at most 2048 per request",
                           param="input")  # fmt: skip
    if any(not t.strip() for t in texts):
        raise RequestError("input: a text is empty", param="input")
    vectors = np.asarray(service.embedder.encode(texts), dtype=np.float32)
    tokens = sum(service.embedder.counter.count_many(texts))  # in the embedder's own tokens
    data = []
    for i, row in enumerate(vectors):
        value: Any = row.tolist()
        if body.encoding_format == "base64":
            value = base64.b64encode(row.astype("<f4").tobytes()).decode()
        data.append({"object": "embedding", "index": i, "embedding": value})
    return {"object": "list", "data": data, "model": service.embedder.info.name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}  # fmt: skip


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(body: ChatRequest, request: Request) -> JSONResponse | StreamingResponse:
    """Answer the last user message from the documents, with sources.

    Earlier user and assistant turns make a follow-up standalone (`rewritten_question`).
    Our fields: `k` (passages to consider), `strict`, `filters` {path_glob, kinds},
    `include_sources` (default true). Streaming sends the answer as it is written, stage
    events (`event`) and, last before [DONE], the verified `answer` with `sources`.
    """
    service = service_of(request)
    model_id = _model_id(service, body.model)
    question, history = split_messages(body.messages)
    cfg = answer_settings(service.settings.answer, body)
    filters = _filters(body.filters)
    started = time.time()
    cached = service.lookup(question, settings=cfg, history=history, filters=filters)
    ticket = None if cached is not None else service.admit()  # 429 before any work
    reply = _Reply(f"chatcmpl-{uuid.uuid4().hex[:24]}", int(started), model_id,
                   body.include_sources)  # fmt: skip
    if cached is not None:
        answering = _Answering.done(cached)
    else:
        answering = _Answering.start(lambda a: service.ask(
            question, settings=cfg, history=history, filters=filters, on_token=a.token,
            on_event=a.event, cancel=a.cancel, ticket=ticket))  # fmt: skip
    if body.stream:
        return StreamingResponse(
            _stream(request, reply, answering),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    answer = await answering.result(request)
    request.state.answer = answer
    return JSONResponse(reply.completion(answer))


class _Answering:
    """One answer being made on its own thread (never a shared pool: a waiting request
    must not hold a worker another one needs); tokens, stage events and the outcome arrive
    on an asyncio queue."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.items: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.cancel = threading.Event()

    @classmethod
    def start(cls, ask: Any) -> _Answering:
        answering = cls()

        def work() -> None:
            try:
                answering._put("done", ask(answering))
            except BaseException as exc:  # every outcome reaches the client
                answering._put("error", exc)

        threading.Thread(target=work, name="rag-answer", daemon=True).start()
        return answering

    @classmethod
    def done(cls, answer: Answer) -> _Answering:
        answering = cls()
        answering.items.put_nowait(("token", answer.answer))
        answering.items.put_nowait(("done", answer))
        return answering

    def _put(self, kind: str, value: Any) -> None:
        self.loop.call_soon_threadsafe(self.items.put_nowait, (kind, value))

    def token(self, piece: str) -> None:
        self._put("token", piece)

    def event(self, name: str, data: dict) -> None:
        self._put("event", (name, data))

    async def result(self, request: Request) -> Answer:
        """The answer, skipping tokens; a client that disconnects cancels it."""
        while True:
            try:
                kind, value = await asyncio.wait_for(self.items.get(), DISCONNECT_POLL_S)
            except TimeoutError:
                if await request.is_disconnected():
                    self.cancel.set()
                continue
            if kind == "done":
                return value
            if kind == "error":
                raise value


async def _stream(request: Request, reply: _Reply, answering: _Answering) -> AsyncIterator[str]:
    try:
        yield _sse(reply.chunk({"role": "assistant", "content": ""}))
        while True:
            kind, value = await answering.items.get()
            if kind == "token":
                yield _sse(reply.chunk({"content": value}))
            elif kind == "event":
                name, data = value
                yield _sse(reply.event(name, data))
            elif kind == "done":
                request.state.answer = value
                yield _sse(reply.final(value))
                break
            else:
                yield _sse(_stream_error(value))
                break
        yield "data: [DONE]\n\n"
    finally:
        answering.cancel.set()  # finished, or the client went away: stop generating


def _stream_error(exc: BaseException) -> dict:
    if isinstance(exc, RagError):
        return rag_error_body(exc)[1]
    message = f"internal error ({type(exc).__name__}: {exc})"
    return {"error": {"message": message, "type": "server_error", "param": None, "code": None}}


def _sse(data: dict) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def split_messages(messages: list[ChatMessage]) -> tuple[str, list[tuple[str, str]]]:
    """The question (the last message, from the user) and the user/assistant turns before
    it. System and developer messages are not used: the answer prompt is ours."""
    last = messages[-1]
    if last.role != "user":
        raise RequestError(
            f"messages: the last message must be the user's question, not {last.role!r}",
            param="messages",
        )
    question = last.text().strip()
    if not question:
        raise RequestError("messages: the last user message is empty", param="messages")
    history = [(m.role, m.text()) for m in messages[:-1] if m.role in ("user", "assistant")]
    return question, [(role, text) for role, text in history if text.strip()]


def answer_settings(base: AnswerSettings, body: ChatRequest) -> AnswerSettings:
    """The answer settings with this request's `k`, `strict`, `max_tokens`, `temperature`."""
    changes: dict[str, Any] = {}
    if body.k is not None:
        changes["candidates"] = body.k
    if body.strict is not None:
        changes["strict"] = body.strict
    max_tokens = body.max_completion_tokens or body.max_tokens
    if max_tokens is not None:
        changes["max_tokens"] = max_tokens
    if body.temperature is not None:
        changes["temperature"] = body.temperature
    return replace(base, **changes) if changes else base


def _filters(body: FiltersBody | None) -> Filters | None:
    if body is None or not (body.path_glob or body.kinds):
        return None
    return Filters(path_glob=body.path_glob, kinds=tuple(body.kinds))


def _model_id(service: RagService, requested: str | None) -> str:
    ids = service.model_ids()
    if not requested:
        return ids[0]
    if requested in ids:
        return requested
    raise RequestError(
        f"model: unknown model {requested!r}; this server answers as {', '.join(ids)} "
        f"(generator {service.chat_model.name}); start 'rag serve --preset NAME' for another",
        param="model", status=404, code="model_not_found",
    )  # fmt: skip


class _Reply:
    """Builds the OpenAI-shaped objects of one reply."""

    def __init__(self, reply_id: str, created: int, model: str, include_sources: bool) -> None:
        self.id, self.created, self.model = reply_id, created, model
        self.include_sources = include_sources

    def _head(self, kind: str) -> dict:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}

    def chunk(self, delta: dict) -> dict:
        return {**self._head("chat.completion.chunk"),
                "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}  # fmt: skip

    def event(self, name: str, data: dict) -> dict:
        return {**self._head("chat.completion.chunk"), "choices": [], "event": name,
                "data": data}  # fmt: skip

    def final(self, answer: Answer) -> dict:
        return {**self._head("chat.completion.chunk"),
                "choices": [{"index": 0, "delta": {}, "finish_reason": _finish(answer)}],
                "answer": answer.answer, "usage": usage_of(answer),
                **self.extras(answer)}  # fmt: skip

    def completion(self, answer: Answer) -> dict:
        message = {"role": "assistant", "content": answer.answer}
        return {**self._head("chat.completion"),
                "choices": [{"index": 0, "message": message, "finish_reason": _finish(answer)}],
                "usage": usage_of(answer), **self.extras(answer)}  # fmt: skip

    def extras(self, answer: Answer) -> dict:
        data: dict[str, Any] = {
            "abstained": answer.abstained,
            "abstain_reason": answer.abstain_reason,
            "rewritten_question": answer.rewritten_question,
            "cached": answer.cached,
        }
        if self.include_sources:
            data["sources"] = [source_dict(s) for s in answer.sources]
            data["sentences"] = [_sentence(s) for s in answer.sentences]
            data["nearest"] = [source_dict(s) for s in answer.nearest]
        return data


def source_dict(source: Source) -> dict:
    """A source as JSON, with `location` inside its document ("page 3", "slide 2", "")."""
    return asdict(source) | {
        "location": describe(source.kind, source.page, source.detail, source.heading)
    }


def _sentence(sentence: CitedSentence) -> dict:
    """A verified sentence: its citations, support, and the span of a source that backs it
    best (`quote`: source n, start, end in that source's text; null when none does)."""
    quote = None
    if sentence.quote is not None:
        n, start, end = sentence.quote
        quote = {"n": n, "start": start, "end": end}
    return {"text": sentence.text, "citations": sentence.citations,
            "support": sentence.support, "quote": quote}  # fmt: skip


def _finish(answer: Answer) -> str:
    return "length" if answer.stop_reason == "truncated" else "stop"


def usage_of(answer: Answer) -> dict:
    u = answer.usage
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "total_tokens": u.prompt_tokens + u.completion_tokens, "ttft_s": u.ttft_s,
            "total_s": u.total_s, "token_count": u.source}  # fmt: skip
