"""The LlamaServer test helper runs a real llama_cpp.server; what that server does, pinned.

The second half records, by experiment, how llama-cpp-python 0.3.36's server answers the
requests a remote backend must handle (errors, unknown models, logprobs, a dying server), so
an upgrade that changes any of it fails here first.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rag.llm.llama_server import LlamaServer, LlamaServerError, port_is_free

openai = pytest.importorskip("openai")

pytestmark = pytest.mark.llm

HELLO = [{"role": "user", "content": "Say hello."}]
SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 40},  # bounded: a free string may run on
        "population": {"type": "integer"},
    },
    "required": ["city", "population"],
}


def client(server: LlamaServer, api_key: str | None = None) -> Any:
    """The official client on `server`, without retries (the server answers 500 to some
    requests it will never accept; the client would retry those twice). The deadline is
    generous: on a busy shared machine one constrained reply of the tiny model took >60 s."""
    key = api_key or server.api_key or "unused"
    return openai.OpenAI(base_url=server.url, api_key=key, max_retries=0, timeout=180)


def post(url: str, body: dict[str, Any], key: str | None = None) -> tuple[int, Any]:
    """POST JSON; return the status and the decoded body (text for an event stream)."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=180) as response:
            status, raw = response.status, response.read().decode()
            stream = response.headers.get("content-type", "").startswith("text/event-stream")
    except urllib.error.HTTPError as exc:
        status, raw, stream = exc.code, exc.read().decode(), False
    return status, raw if stream else json.loads(raw)


# --- the helper ------------------------------------------------------------------------------


def test_server_lists_its_model(tiny_server: LlamaServer) -> None:
    models = client(tiny_server).models.list()
    # The id is the --model path (no --model_alias given).
    assert [m.id for m in models.data] == [str(tiny_server.model_path)]
    assert tiny_server.url == f"http://127.0.0.1:{tiny_server.port}/v1"


def test_chat_completion_through_the_openai_client_returns_text(tiny_server: LlamaServer) -> None:
    reply = client(tiny_server).chat.completions.create(
        model="tiny", messages=HELLO, max_tokens=8, temperature=0
    )
    assert reply.choices[0].message.content.strip()
    assert reply.usage.completion_tokens <= 8 and reply.usage.prompt_tokens > 0


def test_requests_without_the_key_are_refused_with_401(tiny_server: LlamaServer) -> None:
    with pytest.raises(openai.AuthenticationError) as refused:
        client(tiny_server, api_key="wrong").chat.completions.create(
            model="tiny", messages=HELLO, max_tokens=2
        )
    assert refused.value.status_code == 401
    # Not OpenAI's error shape: FastAPI's {"detail": ...}.
    status, body = post(f"{tiny_server.url}/chat/completions", {"messages": HELLO})
    assert (status, body) == (401, {"detail": "Invalid API key"})


def test_json_object_with_a_schema_yields_json_matching_it(tiny_server: LlamaServer) -> None:
    # llama-cpp-python's own extension of json_object: the schema becomes a grammar.
    reply = client(tiny_server).chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "Name a city and its population, as JSON."}],
        response_format={"type": "json_object", "schema": SCHEMA},
        max_tokens=100,
        temperature=0,
    )
    content = reply.choices[0].message.content
    assert reply.choices[0].finish_reason == "stop", content
    data = json.loads(content)
    assert set(data) == {"city", "population"}
    assert isinstance(data["city"], str) and isinstance(data["population"], int)


def test_logprobs_give_per_token_top_logprobs_in_both_modes(tiny_server: LlamaServer) -> None:
    """Shape returned by llama-cpp-python 0.3.36 (needs --logits_all true on the server).

    Non-stream: choices[0].logprobs = {"content": [ENTRY, ...], "refusal": null}, one ENTRY
    per generated token (none for the end-of-turn token), where
        ENTRY = {"token": "Hello", "logprob": -1.88, "bytes": null,
                 "top_logprobs": [{"token": "Hello", "logprob": -1.88, "bytes": null}, ...]}
    Stream: every content chunk carries logprobs = {"content": [ONE ENTRY], "refusal": null}
    for the token in its delta; the first chunk (delta {"role": "assistant"}) and the last
    (delta {}, finish_reason set) carry logprobs: null.
    Caveats for a parser: `bytes` is always null; top_logprobs is built from a dict keyed by
    the token's decoded text, so the sampled token is appended when it is not in the top k
    (k + 1 entries), and tokens that decode to the same text (e.g. "" for special tokens or
    partial UTF-8 bytes) collapse into one entry holding the lower-ranked one's logprob (so
    fewer than k, not always sorted). `logprobs: true` without `top_logprobs` returns
    logprobs: null; `top_logprobs: 0` returns only the sampled token; `top_logprobs` without
    `logprobs: true` returns null.
    """
    chat = client(tiny_server).chat.completions
    options: dict[str, Any] = dict(
        model="tiny", messages=HELLO, max_tokens=3, temperature=0, logprobs=True, top_logprobs=5
    )
    whole = chat.create(**options).choices[0]
    entries = whole.logprobs.content
    assert len(entries) == 3 and "".join(e.token for e in entries) == whole.message.content
    for entry in entries:
        assert entry.logprob <= 0 and entry.bytes is None
        assert 1 <= len(entry.top_logprobs) <= 6
        assert entry.token in [t.token for t in entry.top_logprobs]

    chunks = list(chat.create(**options, stream=True))
    first, *middle, last = [c.choices[0] for c in chunks]
    assert first.delta.role == "assistant" and first.logprobs is None
    assert last.finish_reason == "length" and last.logprobs is None
    assert all(len(c.logprobs.content) == 1 for c in middle)
    assert [c.logprobs.content[0].token for c in middle] == [c.delta.content for c in middle]
    assert [c.logprobs.content[0].token for c in middle] == [e.token for e in entries]


def test_tokenize_lives_at_the_server_root_not_under_v1(tiny_server: LlamaServer) -> None:
    # {url}/../extras/tokenize, i.e. {root}/extras/tokenize; /v1/extras/tokenize is a 404.
    key = tiny_server.api_key
    status, body = post(f"{tiny_server.root}/extras/tokenize", {"input": "hello world"}, key)
    assert status == 200 and body["tokens"] and all(isinstance(t, int) for t in body["tokens"])
    count = post(f"{tiny_server.root}/extras/tokenize/count", {"input": "hello world"}, key)
    assert count == (200, {"count": len(body["tokens"])})
    text = post(f"{tiny_server.root}/extras/detokenize", {"tokens": body["tokens"]}, key)
    assert text == (200, {"text": "hello world"})
    assert post(f"{tiny_server.url}/extras/tokenize", {"input": "x"}, key)[0] == 404


def test_the_server_is_stopped_at_exit_and_its_port_freed(tiny_model_path: Path) -> None:
    with LlamaServer(tiny_model_path, n_ctx=256) as server:
        process, port = server.process, server.port
        assert not port_is_free(port)
    assert process.returncode is not None
    assert port_is_free(port)


def test_a_server_that_cannot_start_fails_with_its_log(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"GGUF not really")
    with pytest.raises(LlamaServerError, match="exited with code") as failed:
        LlamaServer(bogus, start_timeout=30).start()
    assert "bogus.gguf" in str(failed.value)


# --- what llama-cpp-python's server does (the remote backend relies on these) --------------


def test_a_prompt_longer_than_n_ctx_is_400_but_an_empty_stream(tiny_server: LlamaServer) -> None:
    # Only the prompt is checked (prompt tokens >= n_ctx); max_tokens past the window is
    # silently cut to what fits. Streaming, the error happens after the 200 headers: the
    # stream ends with no events at all (not even [DONE]), and the connection is reset (see
    # test_logprobs_without_logits_all_are_500_or_an_empty_stream).
    too_long = [{"role": "user", "content": "word " * 3000}]
    status, body = post(
        f"{tiny_server.url}/chat/completions",
        {"messages": too_long, "max_tokens": 5},
        tiny_server.api_key,
    )
    assert status == 400
    assert body["error"]["code"] == "context_length_exceeded"
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["param"] == "messages"
    assert body["error"]["message"].startswith("This model's maximum context length is 2048")
    chat = client(tiny_server).chat.completions
    with pytest.raises(openai.BadRequestError):
        chat.create(model="tiny", messages=too_long, max_tokens=5)
    assert list(chat.create(model="tiny", messages=too_long, max_tokens=5, stream=True)) == []


def test_an_unknown_model_name_is_answered_by_the_server_model(tiny_server: LlamaServer) -> None:
    reply = client(tiny_server).chat.completions.create(
        model="gpt-4o", messages=HELLO, max_tokens=3, temperature=0
    )
    assert reply.model == "gpt-4o"  # echoed back, though the tiny model answered
    assert reply.choices[0].message.content


def test_openai_json_schema_response_format_is_rejected_with_500(tiny_server: LlamaServer) -> None:
    # Only "text" and "json_object" (with an optional "schema") are accepted; the validation
    # error is reported as a 500 internal_server_error, not a 400/422.
    with pytest.raises(openai.InternalServerError) as rejected:
        client(tiny_server).chat.completions.create(
            model="tiny",
            messages=HELLO,
            max_tokens=5,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True},
            },
        )
    error = rejected.value.body
    assert rejected.value.status_code == 500 and error["type"] == "internal_server_error"
    assert "Input should be 'text' or 'json_object'" in error["message"]


def test_logprobs_without_logits_all_are_500_or_an_empty_stream(
    llama_server_factory: Callable[..., LlamaServer],
) -> None:
    server = llama_server_factory(n_ctx=512, logits_all=False)
    chat = client(server).chat.completions
    options: dict[str, Any] = dict(
        model="tiny", messages=HELLO, max_tokens=3, logprobs=True, top_logprobs=2
    )
    with pytest.raises(openai.InternalServerError) as refused:
        chat.create(**options)
    assert refused.value.body == {
        "message": "logprobs is not supported for models created with logits_all=False",
        "type": "internal_server_error",
        "param": None,
        "code": None,
    }
    assert list(chat.create(**options, stream=True)) == []
    # The server resets the connection that carried the failed stream: the client's next
    # request on it fails once with APIConnectionError (a retry works), so use a new client.
    # logprobs=True alone never asks llama.cpp for logprobs: 200, logprobs null.
    alone = client(server).chat.completions.create(
        model="tiny", messages=HELLO, max_tokens=2, logprobs=True
    )
    assert alone.choices[0].logprobs is None


def test_a_server_killed_mid_answer_raises_a_connection_error(
    llama_server_factory: Callable[..., LlamaServer],
) -> None:
    server = llama_server_factory(n_ctx=512)
    api = client(server)
    stream = api.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "Tell a long story."}],
        max_tokens=300, stream=True,
    )  # fmt: skip
    received = 0
    with pytest.raises(openai.APIConnectionError):
        for _ in stream:
            received += 1
            if received == 3:
                server.kill()
    assert received == 3 and server.process.returncode == -9
    with pytest.raises(openai.APIConnectionError):
        api.models.list()
