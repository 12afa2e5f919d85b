"""Shared fixtures: an isolated RAG_HOME per test, the hub offline, one embedder and one tiny
llama_cpp.server per session (plus a factory for short-lived servers)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DEMO = ROOT / "corpora" / "demo"

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    home = tmp_path_factory.mktemp("rag-home")
    monkeypatch.setenv("RAG_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


@pytest.fixture(scope="session")
def embedder():
    """The real packaged embedder, loaded once for the whole session."""
    from rag.embed import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


@pytest.fixture
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared (datasets beside the repo) is not present")
    return SHARED


@pytest.fixture(scope="module")
def one_torch_thread():
    """Encode on one thread: a few sentences gain nothing from a second, which on a busy
    shared machine only waits for a core."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


SERVER_MODULES = ("llama_cpp", "fastapi", "uvicorn", "sse_starlette", "starlette_context",
                  "pydantic_settings")  # fmt: skip


@pytest.fixture(scope="session")
def tiny_model_path() -> Path:
    """The packaged tiny GGUF generator, and the server's packages; skip when either is absent."""
    import importlib.util

    from rag.models import resolve_model

    missing = [m for m in SERVER_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"llama-cpp-python[server] is not installed (no {', '.join(missing)})")
    try:
        return resolve_model(preset="tiny")
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"tiny generator not installed: {exc}")


@pytest.fixture(scope="session")
def tiny_server(tiny_model_path: Path):
    """One llama_cpp.server on the tiny model for the session: n_ctx 2048, logits_all, key
    "test-key" (also `tiny_server.api_key`). Mark tests that use it `llm`."""
    from rag.llm.llama_server import LlamaServer

    with LlamaServer(tiny_model_path, n_ctx=2048, logits_all=True, api_key="test-key") as server:
        yield server


@pytest.fixture
def llama_server_factory(tiny_model_path: Path):
    """Start short-lived servers (default: the tiny model) stopped when the test ends.

    `make(n_ctx=512)`, `make(api_key="k")`, `make(model_path=..., extra_args=["--seed", "1"])`
    all return a started `LlamaServer`; kill one with `.kill()`.
    """
    from rag.llm.llama_server import LlamaServer

    servers: list[LlamaServer] = []

    def make(model_path: Path | None = None, **options: Any) -> LlamaServer:
        server = LlamaServer(model_path or tiny_model_path, **options)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.stop()
