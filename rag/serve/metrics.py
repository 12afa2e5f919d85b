"""What the server did: one structured log line per request, and Prometheus metrics.

The log line (logger `rag.serve`, JSON) carries the method, route, status and seconds, and
for an answer the question's hash (never its text), tokens in and out, retrieval / prefill
/ decode seconds, whether it abstained or came from the cache. `GET /metrics` serves the
counters and histograms in Prometheus text format.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

if TYPE_CHECKING:
    from rag.ask import Answer
    from rag.serve.security import ASGIApp, Message, Receive, Scope, Send
    from rag.serve.service import RagService

log = logging.getLogger("rag.serve")
LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, float("inf"))


class Metrics:
    """The server's Prometheus registry (one per app, so tests can run several)."""

    def __init__(self, service: RagService) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("rag_requests", "HTTP requests", ["route", "status"], registry=r)
        self.latency = Histogram("rag_request_seconds", "Request latency (to the last byte)",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.ttft = Histogram("rag_ttft_seconds", "Time to the first answer token",
                              buckets=LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.tokens = Counter("rag_tokens", "Model tokens", ["kind"], registry=r)
        self.answers = Counter("rag_answers", "Answers by outcome", ["outcome"], registry=r)
        queue = Gauge("rag_queue_depth", "Questions waiting for the model", registry=r)
        queue.set_function(lambda: service.queue.waiting)
        running = Gauge("rag_generating", "Answers being generated now", registry=r)
        running.set_function(lambda: service.queue.running)
        refused = Gauge("rag_queue_refused", "Requests refused with 429 so far", registry=r)
        refused.set_function(lambda: service.queue.refused)

    def observe(self, route: str, status: int, seconds: float, answer: Answer | None) -> None:
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)
        if answer is None:
            return
        outcome = "cached" if answer.cached else "abstained" if answer.abstained else "answered"
        self.answers.labels(outcome).inc()
        if not answer.cached:
            self.tokens.labels("prompt").inc(answer.usage.prompt_tokens)
            self.tokens.labels("completion").inc(answer.usage.completion_tokens)
            if answer.usage.ttft_s:
                self.ttft.observe(answer.usage.ttft_s)

    def text(self) -> bytes:
        return generate_latest(self.registry)


def answer_fields(answer: Answer) -> dict[str, Any]:
    """The log line's answer part: no question text, only its hash."""
    stages = answer.usage.stages_s
    generation = answer.generation
    prefill = generation.ttft_s if generation else 0.0
    decode = (generation.total_s - generation.ttft_s) if generation else 0.0
    return {
        "question_sha": hashlib.sha256(answer.question.encode()).hexdigest()[:16],
        "tokens_in": answer.usage.prompt_tokens,
        "tokens_out": answer.usage.completion_tokens,
        "retrieval_s": round(stages.get("retrieve", 0.0), 4),
        "prefill_s": round(prefill, 4),
        "decode_s": round(decode, 4),
        "abstained": answer.abstained,
        "cached": answer.cached,
    }


class Observe:
    """ASGI middleware: time each request to its last byte, count it, log one line."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        logged = False

        def finish() -> None:
            nonlocal logged
            if logged:
                return
            logged = True
            seconds = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or _mount_of(scope["path"])
            answer = scope.get("state", {}).get("answer")
            self.metrics.observe(route, status, seconds, answer)
            line: dict[str, Any] = {"method": scope["method"], "route": route,
                                    "status": status, "seconds": round(seconds, 4)}  # fmt: skip
            if answer is not None:
                line.update(answer_fields(answer))
            log.info(json.dumps(line))

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                finish()

        try:
            await self.app(scope, receive, watched)
        finally:
            finish()


def _mount_of(path: str) -> str:
    """A bounded route label for paths no route matched (static files, MCP, 404s)."""
    for prefix in ("/static/", "/mcp"):
        if path.startswith(prefix):
            return prefix.rstrip("/")
    return "unmatched"
