"""The MCP server: `search` and `ask` over one index, for coding agents and desktop assistants.

Built on the official `mcp` SDK (2.x, `MCPServer`). Each tool returns both channels MCP has:
`structured_content` (JSON matching the tool's published output schema, for the application)
and one readable text block (what the model reads; many hosts pass only that on). A `RagError`
(an empty query, a missing index, a missing model) comes back as a tool error (`is_error`, the
message in the text block), so the agent can read it and the server keeps running.

Over stdio (`rag mcp`):

    run_stdio(Index("~/rag-index"))

Over streamable HTTP inside the FastAPI app of `rag serve`, at exactly http://HOST:PORT/mcp:

    from contextlib import asynccontextmanager
    from fastapi import FastAPI
    from rag.serve.mcp import mcp_http_app

    mcp = mcp_http_app(index)                   # host=: the address uvicorn binds (see below)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        async with mcp.lifespan():              # the session manager; nothing else starts it
            yield

    app = FastAPI(lifespan=lifespan)
    app.add_route("/mcp", mcp.app, include_in_schema=False)

Why a route and not `app.mount("/mcp", ...)`: Starlette's `Mount("/mcp")` only matches
`/mcp/...`, so a POST to `/mcp` gets a 307 redirect to `/mcp/`. The SDK's own client follows a
same-origin 307, but other clients may not, and behind an https proxy the redirect points at
http. `Mount("/")` with the SDK's default `/mcp` path works too, but it answers every path no
route above it took (plain-text 404s instead of the API's JSON errors). The route above serves
exactly `/mcp` (POST and DELETE; GET gets 405, below); FastAPI redirects `/mcp/` to `/mcp`.

The session manager can run once: build a new `mcp_http_app(...)` for each app instance. A
mounted app's own lifespan never runs, which is why the host app's lifespan must enter
`mcp.lifespan()` (without it every request fails with "Task group is not initialized").

Host checks: with `host` a loopback address (the default, 127.0.0.1) the SDK accepts only
requests whose Host header is 127.0.0.1, localhost or [::1] (any port) and answers others with
421 (DNS-rebinding protection). Serving on another address, pass that `host` (no Host check),
or `transport_security=TransportSecuritySettings(allowed_hosts=[...], allowed_origins=[...])`.
Authentication (`--api-key`) is the host app's job: an HTTP middleware covers `/mcp` too, a
FastAPI dependency on the API's routers does not.

The endpoint is stateless and answers in JSON (no SSE streams, no `Mcp-Session-Id`), so any
worker can serve any request: 2026-07-28 clients are sessionless anyway, and `stateless_http`
makes older ones so too. GET (the optional server-to-client stream) is answered 405, which
clients take as "no stream"; the SDK would otherwise hold it open and stall shutdown.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Annotated, NamedTuple, Protocol

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field
from starlette.responses import PlainTextResponse

from rag.errors import RagError
from rag.locations import describe

if TYPE_CHECKING:
    from mcp.server.transport_security import TransportSecuritySettings
    from starlette.types import ASGIApp, Receive, Scope, Send

    from rag.ask import Answer
    from rag.retrieve import Hit
    from rag.settings import AnswerSettings, Settings

INSTRUCTIONS = (
    "Search and question the user's own documents (an offline index of their files). "
    "Use `search` to find passages and where they are (file, page, character span), e.g. to "
    "read around a topic or collect quotes. Use `ask` for one factual question: it answers "
    "only from the documents, with [n] citations checked against their sources, or says "
    '"Not found in your documents." Prefer `ask` for a direct answer; use `search` when you '
    "will read and combine the passages yourself."
)

SEARCH_DESCRIPTION = """Find the passages in the user's documents that best match a query.

Returns the top passages, best first, each with its location: file path, page (PDFs),
character span (start, end) in the document's text, section heading, score, and text.
Hybrid keyword + meaning search: phrase the query in your own words or use exact terms.
Use it to look things up, read around a topic or gather quotes; use `ask` instead to get
one verified answer to a question."""

ASK_DESCRIPTION = """Answer a question from the user's documents, with checked citations.

The answer cites its sources as [n] markers; every sentence is checked against the passages
it cites, and `sources` lists each passage (path, page, character span, text). When the
documents do not answer the question, `abstained` is true and the answer is
"Not found in your documents.": `abstain_reason` says why and `nearest` lists the closest
passages found. Say so then, rather than answer from memory. Ask one self-contained
question at a time."""


class IndexLike(Protocol):
    """What the tools call: `rag.Index`, or anything with the same methods."""

    settings: Settings

    def search(self, query: str, k: int = ..., *, path_glob: str | None = ...) -> list[Hit]: ...

    def ask(self, question: str, *, settings: AnswerSettings | None = ...) -> Answer: ...


class Passage(BaseModel):
    """One passage `search` found."""

    rank: int = Field(description="1 for the best match.")
    score: float = Field(description="Relevance; higher is better, comparable within one search.")
    path: str = Field(description="The document's file path.")
    page: int | None = Field(description="Page of a PDF, slide of a .pptx, else null.")
    kind: str = Field(default="", description="The document's kind: pdf, docx, xlsx, eml, …")
    detail: str | None = Field(default=None, description="Finer than a page: 'rows 12–40'.")
    start: int = Field(description="Start of the passage, a character offset in the document.")
    end: int = Field(description="End of the passage (exclusive), a character offset.")
    heading: str = Field(description="The section heading path, '' when there is none.")
    text: str = Field(description="The passage text.")


class SearchOutput(BaseModel):
    """What `search` returns."""

    query: str
    hits: list[Passage] = Field(description="Best first; empty when nothing matched.")


class AskSource(BaseModel):
    """A passage the answer was made from; `n` is its [n] marker."""

    n: int
    path: str
    page: int | None
    kind: str = ""
    detail: str | None = None
    heading: str = ""
    start: int
    end: int
    text: str = Field(description="The passage as the model read it (may be shortened).")
    score: float


class AskSentence(BaseModel):
    """One sentence of the answer and the sources that back it."""

    text: str
    citations: list[int] = Field(description="The [n] of the sources it cites.")
    support: float = Field(description="How well the cited sources support it, 0 to 1.")


class AskOutput(BaseModel):
    """What `ask` returns."""

    answer: str = Field(
        description='The answer with [n] markers, or "Not found in your documents."'
    )
    abstained: bool = Field(description="True when the documents do not answer the question.")
    abstain_reason: str | None = Field(description="Why it abstained, else null.")
    sources: list[AskSource] = Field(description="The passages cited as [n].")
    sentences: list[AskSentence]
    nearest: list[AskSource] = Field(description="When abstained: the closest passages found.")


class McpHttpApp(NamedTuple):
    """The MCP endpoint as an ASGI app, and the context manager that must run around it."""

    app: ASGIApp
    lifespan: Callable[[], AbstractAsyncContextManager[None]]


def build_mcp(target: IndexLike) -> MCPServer:
    """An MCP server with the tools `search` and `ask` over `target` (a `rag.Index`).

    The tools run in worker threads (they are synchronous), so a long answer does not block
    other requests; `Index.ask` is safe to call from several threads.
    """
    from rag import __version__

    server: MCPServer = MCPServer(
        "rag",
        title="rag: your documents",
        instructions=INSTRUCTIONS,
        version=__version__,
        log_level="WARNING",
    )
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    @server.tool(
        title="Search your documents",
        description=SEARCH_DESCRIPTION,
        annotations=read_only,
    )
    def search(
        query: Annotated[str, Field(description="What to look for: words or a question.")],
        k: Annotated[int, Field(ge=1, le=50, description="How many passages to return.")] = 5,
        path_glob: Annotated[
            str | None,
            Field(
                description="Only documents whose path matches this glob, e.g. '*/manuals/*' "
                "or '*.pdf'."
            ),
        ] = None,
    ) -> Annotated[CallToolResult, SearchOutput]:
        try:
            hits = target.search(query, k, path_glob=path_glob)
        except RagError as exc:
            raise ToolError(str(exc)) from exc
        passages = [Passage.model_validate(hit, from_attributes=True) for hit in hits]
        output = SearchOutput(query=query, hits=passages)
        return _result(output, _search_text(output))

    @server.tool(
        title="Ask your documents",
        description=ASK_DESCRIPTION,
        annotations=read_only,
    )
    def ask(
        question: Annotated[str, Field(description="One self-contained question.")],
        strict: Annotated[
            bool | None,
            Field(
                description="true: drop answer sentences their sources do not support; "
                "false: keep them (marked by low support); null: the server's setting."
            ),
        ] = None,
    ) -> Annotated[CallToolResult, AskOutput]:
        settings = None
        try:
            if strict is not None:
                settings = dataclasses.replace(target.settings.answer, strict=strict)
            answer = target.ask(question, settings=settings)
        except RagError as exc:
            raise ToolError(str(exc)) from exc
        output = _ask_output(answer)
        return _result(output, _ask_text(output))

    return server


def mcp_http_app(
    target: IndexLike,
    *,
    host: str = "127.0.0.1",
    transport_security: TransportSecuritySettings | None = None,
) -> McpHttpApp:
    """The MCP server over streamable HTTP, as an ASGI app to route at `/mcp` (module doc).

    `host` is the address the server binds: a loopback one turns on the SDK's Host-header
    check; `transport_security` replaces that check with your own allowlist.
    """
    server = build_mcp(target)
    server.streamable_http_app(  # builds the session manager; its Starlette wrapper is unused
        json_response=True,
        stateless_http=True,
        host=host,
        transport_security=transport_security,
    )
    manager = server.session_manager
    return McpHttpApp(_NoGetStream(StreamableHTTPASGIApp(manager)), manager.run)


class _NoGetStream:
    """Answer GET with 405, as the spec allows a server with no server-to-client stream.

    A stateless endpoint has nothing to send on one, yet the SDK would hold the GET open
    forever, which also stalls a graceful shutdown of the whole server.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            refusal = PlainTextResponse(
                "this MCP endpoint is stateless: POST JSON-RPC messages, there is no GET stream",
                status_code=405,
                headers={"Allow": "POST, DELETE"},
            )
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)


def run_stdio(target: IndexLike) -> None:
    """Serve MCP on stdin/stdout until the client closes them (the SDK points fd 1 at stderr
    meanwhile, so stray prints cannot corrupt the protocol)."""
    build_mcp(target).run("stdio")


def _result(output: BaseModel, text: str) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=output.model_dump(mode="json"),
    )


def _ask_output(answer: Answer) -> AskOutput:
    return AskOutput(
        answer=answer.answer,
        abstained=answer.abstained,
        abstain_reason=answer.abstain_reason,
        sources=[AskSource.model_validate(s, from_attributes=True) for s in answer.sources],
        sentences=[AskSentence.model_validate(s, from_attributes=True) for s in answer.sentences],
        nearest=[AskSource.model_validate(s, from_attributes=True) for s in answer.nearest],
    )


def _where(place: Passage | AskSource) -> str:
    inside = describe(place.kind, place.page, place.detail, place.heading)
    return place.path + (f", {inside}" if inside else "") + f", chars {place.start}-{place.end}"


def _search_text(output: SearchOutput) -> str:
    if not output.hits:
        return f"No passages match {output.query!r}."
    count = len(output.hits)
    lines = [f"{count} passage{'s' if count > 1 else ''} for {output.query!r}, best first:"]
    for hit in output.hits:
        heading = f" ({hit.heading})" if hit.heading else ""
        lines.append(
            f"\n[{hit.rank}] {_where(hit)}{heading}, "
            f"score {hit.score:.3f}\n{hit.text.strip()}"
        )
    return "\n".join(lines)


def _ask_text(output: AskOutput) -> str:
    if output.abstained:
        lines = [f"{output.answer} ({output.abstain_reason})"]
        if output.nearest:
            lines.append("\nNearest passages (they do not answer it):")
            lines += [_source_text(s) for s in output.nearest]
        return "\n".join(lines)
    lines = [output.answer, "\nSources:"]
    return "\n".join(lines + [_source_text(s) for s in output.sources])


def _source_text(source: AskSource) -> str:
    return (
        f"\n[{source.n}] {_where(source)}\n"
        f"{source.text.strip()}"
    )
