"""Shared fixtures: an isolated RAG_HOME per test, the hub offline, one embedder per session."""

from __future__ import annotations

import os
from pathlib import Path

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
