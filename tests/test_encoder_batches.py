"""The ingest encoder's length-sorted token-budget batches: the same vectors, in input order."""

from __future__ import annotations

import numpy as np
import pytest

from rag.embed import SentenceTransformerEmbedder
from rag.embed.sentence_transformers import TOKEN_BUDGET
from tests.conftest import DEMO


def _demo_texts() -> list[str]:
    texts = []
    for path in sorted(DEMO.rglob("*.md")) + sorted(DEMO.rglob("*.txt")):
        texts += [p for p in path.read_text().split("\n\n") if p.strip()]
    # short and long texts mixed, out of length order, plus one longer than the model reads
    return texts + ["rain " * 600, "E07"]


@pytest.mark.model
def test_token_budget_batches_match_sentence_transformers_in_input_order():
    embedder = SentenceTransformerEmbedder(dtype="fp32", query_encoder="torch")
    texts = _demo_texts()
    assert sum(embedder.counter.count_many(texts)) > 2 * TOKEN_BUDGET  # several batches
    ours = embedder.encode(texts)
    reference = embedder.model.encode(texts, batch_size=64, convert_to_numpy=True)
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    assert ours.shape == reference.shape and ours.dtype == np.float32
    cosines = (ours * reference).sum(axis=1)
    assert cosines.min() >= 0.9999, cosines.min()
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
