"""The NumPy query encoder: the same vectors as the torch model, and no torch in a search."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from rag.embed import SentenceTransformerEmbedder
from rag.embed.numpy_bert import NumpyBertEncoder, unsupported_reason
from rag.embed.sentence_transformers import resolve_embedder
from tests.conftest import DEMO, ROOT

TEXTS = [
    "how do I reset the console",
    "What does error code E07 mean?",
    "Ünïcödé, emoji 🌧 and a very long sentence " + "about rain gauges " * 200,  # truncated
]


@pytest.mark.model
def test_numpy_vectors_match_the_torch_model():
    folder = resolve_embedder()
    assert unsupported_reason(folder) is None
    torch_fp32 = SentenceTransformerEmbedder(dtype="fp32", query_encoder="torch")
    ours = NumpyBertEncoder(folder, torch_fp32.info.max_tokens).encode(TEXTS)
    reference = torch_fp32.encode(TEXTS)
    assert ours.shape == reference.shape and ours.dtype == np.float32
    cosines = (ours * reference).sum(axis=1)
    assert cosines.min() >= 0.99999, cosines
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_other_architectures_are_refused_with_the_reason(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "xlm-roberta"}))
    assert unsupported_reason(tmp_path) == "model_type 'xlm-roberta' is not bert"


@pytest.mark.model
def test_a_search_in_a_fresh_process_never_imports_torch(tmp_path, embedder):
    from rag import Index

    Index(tmp_path / "idx", embedder=embedder).ingest([DEMO])
    code = (
        "import sys; from rag import Index; "
        f"hits = Index({str(tmp_path / 'idx')!r}).search('how do I reset the console', k=3); "
        "print(len(hits), 'torch' in sys.modules, 'sentence_transformers' in sys.modules)"
    )
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin", "RAG_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3", "False", "False"]
