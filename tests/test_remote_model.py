"""The OpenAI-compatible backend against a real llama-cpp-python server with the tiny model:
streaming, parity with the in-process model, P(found) from top_logprobs, fallbacks, and every
error a user will hit, provoked for real (nothing is mocked)."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from rag import Index
from rag.ask import (
    NOT_FOUND,
    OUTPUT_JSON,
    OUTPUT_TEXT_NO_SCHEMA,
    SIGNAL_NO_PROBABILITIES,
    SIGNAL_P_FOUND_LOGPROBS,
    _answer_schema,
    _found_from_logprobs,
    _found_probability,
)
from rag.errors import ContextOverflowError, ServerError
from rag.llm.base import GenerationOptions, capabilities_of, generate
from rag.llm.openai_server import OpenAIChatModel
from rag.prompts import format_source, load_prompt
from rag.remote.tokens import EstimatedTokenCounter
from rag.remote.urls import api_root
from rag.settings import LlmSettings, load_settings
from rag_cli.main import app

pytestmark = pytest.mark.llm
KEY = "test-key"
QUESTION = "How long does the K9 battery last?"


def remote(server, **changes) -> OpenAIChatModel:
    return OpenAIChatModel(LlmSettings(url=server.url, **changes), api_key=server.api_key or "")


@pytest.fixture(scope="module")
def docs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("docs")
    (folder / "battery.md").write_text(
        "# Battery\n\nThe Kestrel K9 battery lasts 41 months on two AA lithium cells.\n"
    )
    (folder / "radio.txt").write_text("The K9 radio uses the 868 MHz band in Europe.\n")
    return folder


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, docs, embedder):
    path = tmp_path_factory.mktemp("idx")
    idx = Index(path, settings=load_settings(preset="tiny", env={}).settings, embedder=embedder)
    idx.ingest([docs])
    idx.close()
    return path


def ask(index_dir, embedder, server, *, model=None, **answer):
    settings = load_settings(preset="tiny", env={}).settings
    settings = settings.replace(**{f"answer.{k}": v for k, v in answer.items()})
    chat = model or remote(server)
    idx = Index(index_dir, settings=settings, embedder=embedder, chat_model=chat)
    try:
        pieces: list[str] = []
        return idx.ask(QUESTION, on_token=pieces.append), pieces
    finally:
        idx.close()
        if model is None:
            chat.close()


def json_messages(source: str, question: str):
    return load_prompt("answer-json-v1").messages(format_source(1, "a.md", source), question)


def test_api_root_adds_v1_to_a_bare_host():
    assert api_root("http://127.0.0.1:8080") == "http://127.0.0.1:8080/v1"
    assert api_root("http://h:1/v1/") == "http://h:1/v1"
    assert api_root("https://h/openai/v1") == "https://h/openai/v1"


def test_connects_lists_the_model_and_detects_what_the_server_can_do(tiny_server):
    with remote(tiny_server) as model:
        assert model.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
        assert model.info.n_ctx == 2048 and model.info.n_ctx_source.startswith("assumed")
        caps = model.capabilities()
        assert caps.json_schema and caps.stream_logprobs  # the fixture runs --logits_all true
        assert model.json_flavour == "json_object"  # llama-cpp-python rejects OpenAI's json_schema
        assert caps.tokenizer == f"server ({tiny_server.root}/extras/tokenize)"
        assert any("n_ctx 2048 assumed" in note for note in caps.notes)


def test_streams_the_same_greedy_text_and_token_counts_as_in_process(tiny_server, tiny_model_path):
    from rag.llm.llamacpp import LlamaCppChatModel

    messages = json_messages("The Kestrel K9 battery lasts 41 months.", QUESTION)
    options = GenerationOptions(max_tokens=40, response_format=_answer_schema(1))
    # the fixture's server runs without flash attention; so does this model
    with LlamaCppChatModel(tiny_model_path, n_ctx=2048, flash_attn=False) as local, \
            remote(tiny_server) as server_model:  # fmt: skip
        here = generate(local, messages, options)
        stream = server_model.stream(messages, options)
        pieces = list(stream)
        there = stream.generation
        assert len(pieces) > 1  # streamed, not one block
        assert there is not None and there.text == here.text == "".join(pieces)
        assert there.stop_reason == here.stop_reason == "complete"
        assert there.completion_tokens == here.completion_tokens
        assert there.ttft_s > 0 and there.usage_source == "estimated"  # no usage when streaming
        # the prompt estimate never undercounts: contents exact, template with slack
        assert 0 <= there.prompt_tokens - here.prompt_tokens <= 40
        text = "The K9 radio uses the 868 MHz band in Europe."
        assert server_model.count_tokens(text) == local.count_tokens(text)
        # P(found) from the server's top_logprobs at the found token equals the in-process
        # logits when the model writes '{"found":' as the in-process probe does
        stream = server_model.stream(messages, replace(options, top_logprobs=20))
        reply = "".join(stream)
        p_server = _found_from_logprobs(stream.token_logprobs)
        p_local = _found_probability(local, messages)
        assert p_server is not None and 0.0 <= p_server <= 1.0
        if reply.startswith('{"found":'):
            assert p_server == pytest.approx(p_local, abs=0.02)


def test_index_ask_through_the_server_verifies_citations(tiny_server, index_dir, embedder):
    answer, pieces = ask(index_dir, embedder, tiny_server, max_tokens=64)
    assert pieces and answer.generation is not None
    assert answer.model == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert answer.token_count.startswith("server (")
    assert answer.usage.source == "estimated" and answer.usage.completion_tokens > 0
    assert answer.stop_reason in ("complete", "truncated")
    if not answer.abstained:
        valid = {s.n for s in answer.sources}
        assert all(n in valid for s in answer.sentences for n in s.citations)
        assert all(s.supported for s in answer.sentences if s.citations) or not answer.sentences


def test_json_answers_read_p_found_from_top_logprobs_and_gate_on_it(
    tiny_server, index_dir, embedder
):
    answer, _ = ask(index_dir, embedder, tiny_server, output="json", max_tokens=64)
    assert answer.output_mode == OUTPUT_JSON
    assert answer.abstention_signal == SIGNAL_P_FOUND_LOGPROBS
    assert answer.found_p is not None and 0.0 <= answer.found_p <= 1.0
    gated, _ = ask(index_dir, embedder, tiny_server, output="json", min_found=1.0, max_tokens=64)
    if gated.found_p is not None and gated.found_p < 1.0:
        assert gated.abstained and gated.answer == NOT_FOUND
        assert gated.abstain_reason == "the model is not confident the sources answer it"
        assert gated.generation is not None  # the stream was stopped right after "found"
        assert gated.generation.completion_tokens < 16


def test_a_server_without_logprobs_or_schema_falls_back_and_says_so(
    llama_server_factory, index_dir, embedder
):
    server = llama_server_factory(logits_all=False)
    with remote(server) as model:
        assert not capabilities_of(model).stream_logprobs  # detected, not declared
        answer, _ = ask(index_dir, embedder, server, model=model, output="json", max_tokens=48)
        assert answer.output_mode == OUTPUT_JSON
        assert answer.abstention_signal == SIGNAL_NO_PROBABILITIES and answer.found_p is None
    with remote(server, json_schema="none") as model:
        answer, _ = ask(index_dir, embedder, server, model=model, output="json", max_tokens=48)
        assert answer.output_mode == OUTPUT_TEXT_NO_SCHEMA
        data = answer.to_dict()
        assert data["output_mode"] == OUTPUT_TEXT_NO_SCHEMA and data["token_count"]


def test_estimated_tokens_never_undercount(tiny_server, tiny_model_path):
    from rag.llm.llamacpp import LlamaCppChatModel

    texts = ["The K9 radio uses the 868 MHz band.", "Ünïcödé — ça marche ? 41 €", "温度传感器故障",
             "def f(x):\n    return x ** 2  # squared"]  # fmt: skip
    with LlamaCppChatModel(tiny_model_path, n_ctx=256) as local, \
            remote(tiny_server, tokenizer="estimate") as model:  # fmt: skip
        assert model.capabilities().tokenizer.startswith("estimate")
        for text in texts:
            assert model.count_tokens(text) == EstimatedTokenCounter().count(text)
            assert model.count_tokens(text) >= local.count_tokens(text), text


def test_a_local_gguf_tokenizer_counts_exactly(tiny_server, tiny_model_path):
    from rag.llm.llamacpp import LlamaCppChatModel

    text = "The K9 radio uses the 868 MHz band in Europe."
    with LlamaCppChatModel(tiny_model_path, n_ctx=256) as local, \
            remote(tiny_server, tokenizer=str(tiny_model_path)) as model:  # fmt: skip
        assert model.info.tokenizer == f"local {tiny_model_path}"
        assert model.count_tokens(text) == local.count_tokens(text)


# ---- errors, provoked for real --------------------------------------------------------------


def run_ask(index_dir, *args: str, env: dict[str, str] | None = None):
    started = time.monotonic()
    result = CliRunner().invoke(
        app, ["ask", QUESTION, "--index", str(index_dir), "--preset", "tiny", *args],
        env={"RAG_LLM_API_KEY": KEY, **(env or {})},
    )  # fmt: skip
    return result, time.monotonic() - started


def one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert "Traceback" not in result.output
    assert lines and lines[-1].startswith("error:"), result.output
    return " ".join(lines)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_no_server_on_the_port(index_dir):
    port = free_port()
    result, took = run_ask(index_dir, "--llm-url", f"http://127.0.0.1:{port}",
                           "--set", "llm.max_retries=1")  # fmt: skip
    message = one_line_error(result)
    assert f"cannot reach the model server at http://127.0.0.1:{port}/v1" in message
    assert "Connection refused" in message and "python -m llama_cpp.server" in message
    assert took < 30


def test_wrong_path_unknown_model_and_missing_key(tiny_server, index_dir):
    result, _ = run_ask(index_dir, "--llm-url", tiny_server.url.replace("/v1", "/api/v1"))
    assert "has no OpenAI-compatible API there (404" in one_line_error(result)
    result, _ = run_ask(index_dir, "--llm-url", tiny_server.url, "--llm-model", "gpt-9")
    message = one_line_error(result)
    assert "model 'gpt-9' is not served by" in message and "SmolLM2-135M" in message
    result, _ = run_ask(index_dir, "--llm-url", tiny_server.url, env={"RAG_LLM_API_KEY": ""})
    message = one_line_error(result)
    assert "refused the request (401" in message and "RAG_LLM_API_KEY" in message
    assert KEY not in message


def test_a_server_that_never_answers_times_out(index_dir):
    with socket.socket() as listener:  # accepts connections, never replies
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        result, took = run_ask(index_dir, "--llm-url", f"http://127.0.0.1:{port}",
                               "--set", "llm.timeout=1", "--set", "llm.max_retries=0")  # fmt: skip
    assert "did not answer within 1 s (llm.timeout)" in one_line_error(result)
    assert took < 20


def test_a_context_the_server_cannot_hold_is_a_context_error(
    llama_server_factory, index_dir
):
    server = llama_server_factory(n_ctx=256)  # settings claim more than the server has
    long_question = QUESTION + " Answer in full, citing the manual." * 30
    result = CliRunner().invoke(app, ["ask", long_question, "--index", str(index_dir),
                                      "--preset", "tiny", "--llm-url", server.url,
                                      "--set", "llm.n_ctx=4096"])  # fmt: skip
    message = one_line_error(result)
    assert "says the prompt does not fit its context" in message
    assert "maximum context length is 256 tokens" in message and "llm.n_ctx" in message
    # told the right n_ctx, the backend refuses before sending anything
    with pytest.raises(ContextOverflowError, match="exceeds the server's context window"), \
            OpenAIChatModel(LlmSettings(url=server.url, n_ctx=256)) as model:  # fmt: skip
        model.stream(json_messages("x " * 200, QUESTION), GenerationOptions(max_tokens=16))


def test_a_server_killed_mid_answer_is_a_clear_error(
    llama_server_factory, index_dir, embedder
):
    server = llama_server_factory()
    killed = threading.Event()

    def kill_on_first_token(piece: str) -> None:
        if not killed.is_set():
            killed.set()
            server.kill()

    settings = load_settings(preset="tiny", env={}).settings.replace(**{"answer.max_tokens": 200})
    with remote(server) as model:
        idx = Index(index_dir, settings=settings, embedder=embedder, chat_model=model)
        started = time.monotonic()
        with pytest.raises(ServerError, match="broke off the answer after"):
            idx.ask(QUESTION, on_token=kill_on_first_token)
        idx.close()
    assert killed.is_set() and time.monotonic() - started < 180  # it ends, not hangs


def test_json_output_of_rag_ask_names_the_modes(tiny_server, index_dir):
    result, _ = run_ask(index_dir, "--llm-url", tiny_server.url, "--json", "--output", "json",
                        "--max-tokens", "48", env={"RAG_LLM_TIMEOUT": "300"})  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["output_mode"] == OUTPUT_JSON
    assert data["abstention_signal"] == SIGNAL_P_FOUND_LOGPROBS
    assert data["token_count"].startswith("server") and data["model"].endswith(".gguf")
    assert KEY not in result.stdout
