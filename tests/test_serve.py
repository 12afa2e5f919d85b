"""`rag serve` pipeline logic over a real HTTP server with a scripted model: the OpenAI
shape, sources in the stream, follow-ups, the queue, cancellation, ingest jobs, documents,
bad input, security, metrics. The real tiny model is in test_serve_openai.py."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from rag.serve import RagService, create_app
from rag.settings import Settings
from tests.live_app import get_json, running
from tests.scripted_model import ScriptedChatModel

pytestmark = pytest.mark.model

DOCS = {
    "kestrel.md": "# Kestrel K2\n\nThe Kestrel K2 weather station was launched on 12 March "
    "2023. Its warranty lasts two years from the date of purchase.\n",
    "heron.md": "# Heron H1\n\nThe Heron H1 rain gauge was launched on 4 May 2021. Its "
    "warranty lasts five years and covers the funnel and the tipping bucket.\n",
}
WARRANTY = "The Kestrel K2 warranty lasts two years [1]."
SHOWN = "The Kestrel K2 warranty lasts two years. [1]"  # verified: citations after the sentence


def scripted(delay_s: float = 0.0) -> ScriptedChatModel:
    return ScriptedChatModel(
        replies={  # the first needle found in the prompt wins
            # the follow-up rewrite prompt holds the conversation and "Last question:"
            "Last question: and the Heron H1?": "How long is the Heron H1 warranty?",
            "Kestrel K2 warranty": WARRANTY,
            "When was the Heron H1 launched": "The Heron H1 was launched on 4 May 2021 [1].",
            "Heron H1 warranty": "The Heron H1 warranty lasts five years [1].",
        },
        delay_s=delay_s,
    )


def make_service(tmp_path: Path, embedder, model: ScriptedChatModel, **serve: object):
    docs = tmp_path / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    for name, text in DOCS.items():
        (docs / name).write_text(text)
    serve.setdefault("cache", False)  # a repeated question must run the pipeline again here
    settings = Settings().replace(**{f"serve.{k}": v for k, v in serve.items()})
    from rag import Index

    Index(tmp_path / "index", settings=settings, embedder=embedder).ingest([docs])
    service = RagService(tmp_path / "index", settings, preset="test", chat_model=model,
                         embedder=embedder)  # fmt: skip
    service.start()
    return service


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, embedder):
    """One server for the module: (url, service, model)."""
    model = scripted()
    service = make_service(tmp_path_factory.mktemp("serve"), embedder, model)
    with running(create_app(service)) as url:
        yield url, service, model


def chat(url: str, question: str, **body: object) -> httpx.Response:
    payload = {"messages": [{"role": "user", "content": question}], **body}
    return httpx.post(f"{url}/v1/chat/completions", json=payload, timeout=60)


def sse_chunks(response: httpx.Response) -> list[dict | str]:
    chunks: list[dict | str] = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            data = line[len("data: ") :]
            chunks.append(data if data == "[DONE]" else json.loads(data))
    return chunks


# ---- answers -----------------------------------------------------------------------------


def test_completion_carries_the_verified_answer_and_its_sources(live):
    url, _, _ = live
    reply = chat(url, "How long is the Kestrel K2 warranty?").json()
    assert reply["object"] == "chat.completion"
    assert reply["choices"][0]["message"] == {"role": "assistant", "content": SHOWN}
    assert reply["choices"][0]["finish_reason"] == "stop"
    assert reply["abstained"] is False and reply["cached"] is False
    cited = reply["sentences"][0]["citations"][0]
    source = next(s for s in reply["sources"] if s["n"] == cited)
    assert source["path"].endswith("kestrel.md") and "two years" in source["text"]
    assert reply["usage"]["completion_tokens"] > 0
    assert reply["usage"]["total_tokens"] == (
        reply["usage"]["prompt_tokens"] + reply["usage"]["completion_tokens"]
    )


def test_include_sources_false_leaves_them_out(live):
    reply = chat(live[0], "How long is the Kestrel K2 warranty?", include_sources=False).json()
    assert "sources" not in reply and "sentences" not in reply
    assert reply["choices"][0]["message"]["content"] == SHOWN


def test_stream_sends_tokens_then_the_sources_before_done(live):
    url, _, _ = live
    body = {"stream": True, "messages": [
        {"role": "user", "content": "How long is the Kestrel K2 warranty?"}]}  # fmt: skip
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        chunks = sse_chunks(response)
    assert chunks[-1] == "[DONE]"
    final = chunks[-2]
    assert isinstance(final, dict)
    assert final["choices"][0]["finish_reason"] == "stop"
    assert final["answer"] == SHOWN
    assert any(s["path"].endswith("kestrel.md") for s in final["sources"])
    pieces = [c["choices"][0]["delta"].get("content", "") for c in chunks[:-2]
              if isinstance(c, dict) and c["choices"]]  # fmt: skip
    assert "".join(pieces).strip() == WARRANTY
    events = [c["event"] for c in chunks if isinstance(c, dict) and "event" in c]
    assert events[:2] == ["retrieving", "reading"]


def test_abstains_with_the_nearest_passages_when_the_model_finds_nothing(live):
    reply = chat(live[0], "What colour is the Kestrel K2 console?").json()
    assert reply["abstained"] is True
    assert reply["choices"][0]["message"]["content"] == "Not found in your documents."
    assert reply["abstain_reason"]
    assert reply["sources"] or reply["nearest"]


def test_follow_up_is_rewritten_from_the_history(live):
    url, _, model = live
    messages = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "When was the Heron H1 launched?"},
        {"role": "assistant", "content": "The Heron H1 was launched on 4 May 2021 [1]."},
        {"role": "user", "content": "and the Heron H1?"},
    ]
    reply = httpx.post(f"{url}/v1/chat/completions", json={"messages": messages},
                       timeout=60).json()  # fmt: skip
    assert reply["rewritten_question"] == "How long is the Heron H1 warranty?"
    answer = reply["choices"][0]["message"]["content"]
    assert answer == "The Heron H1 warranty lasts five years. [1]"
    rewrite_prompt = next(p for p in model.prompts if "Last question:" in p[-1]["content"])
    assert "4 May 2021" in rewrite_prompt[-1]["content"]  # the history was shown
    assert "You are helpful." not in json.dumps(rewrite_prompt)  # a client's system prompt is not


def test_filters_limit_the_passages(live):
    reply = chat(live[0], "How long is the Kestrel K2 warranty?",
                 filters={"path_glob": "*heron.md"}).json()  # fmt: skip
    assert all(s["path"].endswith("heron.md") for s in reply["sources"] + reply["nearest"])


def test_models_and_embeddings(live):
    url = live[0]
    models = get_json(f"{url}/v1/models")
    assert [m["id"] for m in models["data"]] == ["test", "rag"]
    reply = httpx.post(f"{url}/v1/embeddings", json={"input": ["warranty", "rain gauge"]},
                       timeout=30).json()  # fmt: skip
    vectors = [d["embedding"] for d in reply["data"]]
    assert len(vectors) == 2 and len(vectors[0]) == 384
    assert abs(sum(x * x for x in vectors[0]) - 1.0) < 1e-3


def test_search_returns_hits_with_scores_and_explain(live):
    url = live[0]
    reply = httpx.post(f"{url}/search", json={"query": "rain gauge warranty", "k": 2,
                                             "explain": True}, timeout=30).json()  # fmt: skip
    assert reply["hits"][0]["path"].endswith("heron.md")
    assert "dense_score" in reply["hits"][0]["explain"]
    assert reply["timings"]


# ---- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param", "status"),
    [
        ({"messages": []}, "messages", 400),
        ({"messages": [{"role": "user", "content": "   "}]}, "messages", 400),
        ({"messages": [{"role": "assistant", "content": "hi"}]}, "messages", 400),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role", 400),
        ({"messages": [{"role": "user", "content": "hi"}], "k": "5"}, "k", 400),
        ({"messages": [{"role": "user", "content": "hi"}], "k": 0}, "k", 400),
        ({"messages": [{"role": "user", "content": "hi"}], "strict": "yes"}, "strict", 400),
        ({"messages": [{"role": "user", "content": "hi"}], "filters": {"glob": "*"}},
         "filters.glob", 400),
        ({"messages": [{"role": "user", "content": "hi"}], "model": "gpt-4"}, "model", 404),
        ({"messages": [{"role": "user", "content": "hi"}], "temperature": 9}, "temperature", 400),
    ],
)
def test_bad_chat_requests_get_a_4xx_naming_the_field(live, body, param, status):
    response = httpx.post(f"{live[0]}/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param and param.split(".")[0] in error["message"]


def test_malformed_json_and_a_missing_body_are_400_and_the_server_stays_up(live):
    url = live[0]
    response = httpx.post(f"{url}/v1/chat/completions", content=b'{"messages": [',
                          headers={"content-type": "application/json"}, timeout=30)  # fmt: skip
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    response = httpx.post(f"{url}/search", timeout=30)
    assert response.status_code == 400
    assert get_json(f"{url}/health") == {"status": "ok"}


def test_unknown_endpoint_and_unknown_job_are_404_in_the_error_shape(live):
    url = live[0]
    assert httpx.get(f"{url}/nope", timeout=30).json()["error"]["type"] == "not_found_error"
    response = httpx.get(f"{url}/jobs/job-999", timeout=30)
    assert response.status_code == 404 and "job-999" in response.json()["error"]["message"]


# ---- ingest, documents -------------------------------------------------------------------


def wait_job(url: str, job_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = get_json(f"{url}/jobs/{job_id}")
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish")


def test_upload_ingests_in_the_background_then_search_finds_it_and_delete_removes_it(live):
    url, service, _ = live
    before = service.generation
    files = [("files", ("osprey.txt", b"The Osprey O3 anemometer measures gusts up to 60 m/s.",
                        "text/plain"))]  # fmt: skip
    response = httpx.post(f"{url}/ingest", files=files, timeout=30)
    assert response.status_code == 202
    job = wait_job(url, response.json()["id"])
    assert job["state"] == "done", job
    assert job["report"]["added"] == 1 and job["done"] == job["total"] == 1
    assert service.generation > before
    hits = httpx.post(f"{url}/search", json={"query": "Osprey anemometer gusts"},
                      timeout=30).json()["hits"]  # fmt: skip
    assert hits[0]["path"].endswith("uploads/osprey.txt")
    docs = get_json(f"{url}/documents")["documents"]
    osprey = next(d for d in docs if d["path"].endswith("osprey.txt"))
    assert osprey["chunks"] >= 1
    deleted = httpx.delete(f"{url}/documents/{osprey['id']}", timeout=30).json()
    assert deleted == {"deleted": osprey["id"], "path": osprey["path"]}
    assert not Path(osprey["path"]).exists()
    paths = [d["path"] for d in get_json(f"{url}/documents")["documents"]]
    assert osprey["path"] not in paths and len(paths) == 2
    assert httpx.delete(f"{url}/documents/{osprey['id']}", timeout=30).status_code == 404


@pytest.mark.parametrize("name", ["../escape.txt", "a/b.txt", "..\\evil.txt", ".hidden.txt"])
def test_upload_names_that_could_leave_the_upload_area_are_refused(live, name):
    url, service, _ = live
    files = [("files", (name, b"text", "text/plain"))]
    response = httpx.post(f"{url}/ingest", files=files, timeout=30)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "files"
    assert not (service.directory / "escape.txt").exists()
    assert not (service.directory.parent / "escape.txt").exists()


def test_a_failed_file_is_reported_and_the_rest_is_indexed(live):
    url = live[0]
    files = [
        ("files", ("good.txt", b"The Plover P2 hygrometer reads humidity.", "text/plain")),
        ("files", ("broken.pdf", b"%PDF-1.4 this is not a pdf", "application/pdf")),
    ]
    job = wait_job(url, httpx.post(f"{url}/ingest", files=files, timeout=30).json()["id"])
    assert job["report"]["added"] == 1
    assert [Path(f["path"]).name for f in job["report"]["failed"]] == ["broken.pdf"]


# ---- the queue, cancellation ---------------------------------------------------------------


def test_past_the_queue_requests_get_429_with_retry_after_and_the_rest_are_answered(
    tmp_path, embedder
):
    model = scripted(delay_s=0.15)  # 7 words ≈ 1 s per answer
    service = make_service(tmp_path, embedder, model, queue=1)
    results: list[int] = []
    headers: list[str | None] = []

    def ask() -> None:
        response = chat(url, "How long is the Kestrel K2 warranty?")
        results.append(response.status_code)
        headers.append(response.headers.get("retry-after"))

    with running(create_app(service)) as url:
        threads = [threading.Thread(target=ask) for _ in range(5)]
        for t in threads:
            t.start()
            time.sleep(0.05)
        for t in threads:
            t.join(60)
    assert sorted(results) == [200, 200, 429, 429, 429]
    assert all(int(h) >= 1 for h, r in zip(headers, results, strict=True) if r == 429)
    assert service.queue.snapshot()["refused"] == 3


def test_a_client_that_disconnects_stops_its_generation(tmp_path, embedder):
    model = scripted(delay_s=0.5)
    service = make_service(tmp_path, embedder, model)
    body = {"stream": True, "messages": [
        {"role": "user", "content": "How long is the Kestrel K2 warranty?"}]}  # fmt: skip
    with running(create_app(service)) as url:
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=body,
                          timeout=60) as response:  # fmt: skip
            for line in response.iter_lines():
                if '"content": "The"' in line:
                    break  # the first token: hang up
        deadline = time.monotonic() + 10
        while service.queue.running and time.monotonic() < deadline:
            time.sleep(0.1)
        assert service.queue.running == 0  # the slot is free long before 7 × 0.5 s
        reply = chat(url, "When was the Heron H1 launched?").json()  # the next one runs
    assert reply["choices"][0]["message"]["content"].startswith("The Heron H1")


# ---- security ----------------------------------------------------------------------------


def test_with_a_key_every_endpoint_but_health_needs_it(tmp_path, embedder):
    service = make_service(tmp_path, embedder, scripted())
    with running(create_app(service, api_key="s3cret")) as url:
        assert httpx.get(f"{url}/health", timeout=30).status_code == 200
        for method, path in [("GET", "/status"), ("GET", "/v1/models"), ("GET", "/documents"),
                             ("POST", "/search"), ("POST", "/v1/chat/completions"),
                             ("GET", "/metrics"), ("POST", "/ingest")]:  # fmt: skip
            response = httpx.request(method, f"{url}{path}", timeout=30)
            assert response.status_code == 401, path
            assert response.json()["error"]["code"] == "invalid_api_key"
        wrong = {"Authorization": "Bearer s3cres"}
        assert httpx.get(f"{url}/status", headers=wrong, timeout=30).status_code == 401
        right = {"Authorization": "Bearer s3cret"}
        assert httpx.get(f"{url}/status", headers=right, timeout=30).status_code == 200
        assert httpx.get(f"{url}/", timeout=30).status_code == 200  # the page has no data


def test_no_cors_unless_configured(tmp_path, embedder):
    service = make_service(tmp_path, embedder, scripted(), cors_origins="http://app.example")
    plain = create_app(service, close_service=False)
    origin = {"Origin": "http://evil.example"}
    with running(plain) as url:
        response = httpx.get(f"{url}/health", headers=origin, timeout=30)
        assert "access-control-allow-origin" not in response.headers
        allowed = httpx.get(f"{url}/health", headers={"Origin": "http://app.example"}, timeout=30)
        assert allowed.headers["access-control-allow-origin"] == "http://app.example"
    default = make_service(tmp_path / "other", embedder, scripted())
    with running(create_app(default)) as url:
        response = httpx.get(f"{url}/health", headers={"Origin": "http://app.example"},
                             timeout=30)  # fmt: skip
        assert "access-control-allow-origin" not in response.headers


def test_a_body_over_the_limit_is_413(tmp_path, embedder):
    service = make_service(tmp_path, embedder, scripted(), max_body_mb=0.01)
    with running(create_app(service)) as url:
        big = [("files", ("big.txt", b"word " * 4000, "text/plain"))]
        response = httpx.post(f"{url}/ingest", files=big, timeout=30)
        assert response.status_code == 413
        assert "serve.max_body_mb" in response.json()["error"]["message"]
        assert get_json(f"{url}/health") == {"status": "ok"}


def test_serve_refuses_a_public_address_without_a_key():
    from typer.testing import CliRunner

    from rag_cli.main import app

    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--preset", "tiny"])
    assert result.exit_code == 2
    assert "without an API key" in result.output and "--api-key" in result.output


# ---- observability -----------------------------------------------------------------------


def test_metrics_and_one_log_line_per_request(live, caplog):
    url = live[0]
    with caplog.at_level("INFO", logger="rag.serve"):
        chat(url, "How long is the Kestrel K2 warranty?")
        deadline = time.monotonic() + 5  # the line is written just after the last byte
        while time.monotonic() < deadline:
            lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "rag.serve"]
            if any(x["route"] == "/v1/chat/completions" for x in lines):
                break
            time.sleep(0.05)
    line = next(x for x in lines if x["route"] == "/v1/chat/completions")
    assert line["status"] == 200 and line["tokens_out"] > 0 and len(line["question_sha"]) == 16
    assert "Kestrel" not in json.dumps(line)  # the question's hash, not its text
    assert {"retrieval_s", "prefill_s", "decode_s", "abstained", "cached"} <= set(line)
    text = httpx.get(f"{url}/metrics", timeout=30).text
    assert 'rag_requests_total{route="/v1/chat/completions",status="200"}' in text
    assert "rag_queue_depth" in text and "rag_request_seconds_bucket" in text
    status = get_json(f"{url}/status")
    assert status["documents"] >= 2 and status["queue"]["concurrency"] == 1


class SlowBatches:
    """The real embedder, slowed down on the ingest worker's thread only."""

    def __init__(self, embedder, seconds: float) -> None:
        self._embedder, self.seconds = embedder, seconds
        self.info, self.counter = embedder.info, embedder.counter

    def encode(self, texts):  # type: ignore[no-untyped-def]
        if threading.current_thread().name == "rag-ingest":
            time.sleep(self.seconds)
        return self._embedder.encode(texts)


def test_questions_are_answered_from_the_old_index_while_an_ingest_runs(tmp_path, embedder):
    service = make_service(tmp_path, SlowBatches(embedder, 8.0), scripted())
    with running(create_app(service)) as url:
        text = " ".join(f"The Osprey O3 anemometer note {i} says gusts matter." for i in range(80))
        files = [("files", ("osprey.txt", text.encode(), "text/plain"))]
        job_id = httpx.post(f"{url}/ingest", files=files, timeout=30).json()["id"]
        time.sleep(0.5)
        assert get_json(f"{url}/jobs/{job_id}")["state"] == "running"
        reply = chat(url, "How long is the Kestrel K2 warranty?").json()
        assert reply["choices"][0]["message"]["content"] == SHOWN
        assert get_json(f"{url}/jobs/{job_id}")["state"] == "running"  # answered meanwhile
        assert wait_job(url, job_id)["state"] == "done"
        hits = httpx.post(f"{url}/search", json={"query": "Osprey anemometer gusts"},
                          timeout=30).json()["hits"]  # fmt: skip
        assert hits[0]["path"].endswith("osprey.txt")  # the new generation, once it is done


def test_mcp_under_serve_lists_and_calls_both_tools_with_the_key(tmp_path, embedder):
    anyio = pytest.importorskip("anyio")
    mcp = pytest.importorskip("mcp")
    service = make_service(tmp_path, embedder, scripted())

    async def converse(url: str) -> tuple[list[str], dict, dict]:
        with anyio.fail_after(60):
            auth = httpx.AsyncClient(headers={"Authorization": "Bearer k3y"}, timeout=60)
            from mcp.client.streamable_http import streamable_http_client

            async with auth, streamable_http_client(f"{url}/mcp", http_client=auth) as (
                read, write, *_
            ), mcp.ClientSession(read, write) as session:  # fmt: skip
                await session.initialize()
                tools = sorted(t.name for t in (await session.list_tools()).tools)
                found = await session.call_tool("search", {"query": "rain gauge", "k": 2})
                asked = await session.call_tool(
                    "ask", {"question": "How long is the Kestrel K2 warranty?"}
                )
                return tools, found.structured_content, asked.structured_content

    with running(create_app(service, api_key="k3y")) as url:
        assert httpx.post(f"{url}/mcp", json={}, timeout=30).status_code == 401
        tools, found, asked = anyio.run(converse, url)
    assert tools == ["ask", "search"]
    assert found["hits"][0]["path"].endswith("heron.md")
    assert asked["answer"] == SHOWN and asked["sources"][0]["path"].endswith("kestrel.md")


def test_a_repeated_or_reworded_question_is_served_from_the_cache_until_an_ingest(
    tmp_path, embedder
):
    model = scripted()
    service = make_service(tmp_path, embedder, model, cache=True)
    with running(create_app(service)) as url:
        first = chat(url, "How long is the Kestrel K2 warranty?").json()
        asked = len(model.prompts)
        again = chat(url, "how long is the kestrel K2 warranty").json()
        reworded = chat(url, "Can you tell me how long the Kestrel K2 warranty is?").json()
        other = chat(url, "How long is the Heron H1 warranty?").json()  # a near miss: not cached
        assert first["cached"] is False and again["cached"] is True
        assert again["choices"][0]["message"] == first["choices"][0]["message"]
        assert again["sources"] == first["sources"]
        assert reworded["cached"] is True
        assert other["cached"] is False and "Heron" in other["choices"][0]["message"]["content"]
        assert len(model.prompts) == asked + 1  # only the near miss reached the model
        body = {"stream": True, "messages": [
            {"role": "user", "content": "How long is the Kestrel K2 warranty?"}]}  # fmt: skip
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=60) as r:
            final = [c for c in sse_chunks(r) if isinstance(c, dict)][-1]
        assert final["cached"] is True and final["answer"] == SHOWN
        assert get_json(f"{url}/status")["cache"]["hits"] == 3
        sampled = [chat(url, "How long is the Kestrel K2 warranty?", temperature=0.7).json()
                   for _ in range(2)]  # fmt: skip
        assert [r["cached"] for r in sampled] == [False, False]  # meant to vary: not cached
        files = [("files", ("more.txt", b"The Kestrel K2 console shows the time.", "text/plain"))]
        wait_job(url, httpx.post(f"{url}/ingest", files=files, timeout=30).json()["id"])
        after = chat(url, "How long is the Kestrel K2 warranty?").json()
        assert after["cached"] is False  # a new index generation: asked again
