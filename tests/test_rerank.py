"""Rerankers: the embedder-only sentence reranker and a tiny real cross-encoder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rag.errors import ConfigError, ModelNotFoundError
from rag.rerank import CrossEncoderReranker, Reranker, SentenceReranker
from rag.retrieve import Hit, Stages


def hit(text: str, fused: float, heading: str = "", chunk_id: int = 0) -> Hit:
    return Hit(rank=0, score=fused, path="doc.md", page=None, start=0, end=len(text),
               heading=heading, text=text, chunk_id=chunk_id,
               stages=Stages(fused_score=fused))  # fmt: skip


ANSWER = (
    "The tower was painted in 1889. Visitors queue for hours in summer. "
    "The Eiffel Tower is 330 metres tall. Tickets can be bought online."
)
TOPICAL = (
    "Paris has many monuments. Its museums attract millions of tourists. "
    "The city is known for food and fashion. The river Seine crosses it."
)


def test_sentence_reranker_lifts_the_chunk_whose_sentence_answers(embedder) -> None:
    reranker: Reranker = SentenceReranker(embedder)
    hits = [hit(TOPICAL, 1.0, "Paris", 1), hit(ANSWER, 1.0, "Eiffel Tower", 2)]
    scores = reranker.score("How tall is the Eiffel Tower?", hits)
    assert scores[1] > scores[0]
    assert reranker.name == "sentence-max"


def test_sentence_reranker_weight_zero_keeps_the_fused_order(embedder) -> None:
    hits = [hit(ANSWER, 0.2), hit(TOPICAL, 0.9), hit("Bread needs yeast.", 0.5)]
    scores = SentenceReranker(embedder, weight=0.0).score("Eiffel Tower height", hits)
    assert sorted(range(3), key=lambda i: -scores[i]) == [1, 2, 0]
    assert sum(scores) == pytest.approx(0.0, abs=1e-9)  # standardised fused scores


def test_sentence_reranker_mixes_standardised_scores(embedder) -> None:
    hits = [hit(ANSWER, 3.0), hit(TOPICAL, 1.0)]
    scores = SentenceReranker(embedder, weight=0.35).score("Eiffel Tower height", hits)
    # two hits standardise to +1 / -1 on each signal; the answer leads on both
    assert scores == pytest.approx([1.0, -1.0])
    assert SentenceReranker(embedder).score("anything", []) == []


def test_sentence_reranker_embeds_each_chunk_once(embedder) -> None:
    calls: list[int] = []

    class Counting:
        def encode(self, texts):
            calls.append(len(texts))
            return embedder.encode(texts)

    reranker = SentenceReranker(Counting(), cache_size=1)  # type: ignore[arg-type]
    hits = [hit(ANSWER, 1.0)]
    reranker.score("Eiffel Tower height", hits)
    reranker.score("Eiffel Tower tickets", hits)
    assert calls == [1, 4, 1]  # query, 4 sentences, then the query alone
    reranker.score("x", [hit(TOPICAL, 1.0)])
    reranker.score("x", hits)  # evicted by the cache limit: embedded again
    assert calls[-1] == 4


def test_sentence_reranker_rejects_a_bad_weight(embedder) -> None:
    with pytest.raises(ConfigError, match="weight=1.5"):
        SentenceReranker(embedder, weight=1.5)


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-layer BERT sequence classifier with the MiniLM tokenizer, built here, untrained."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from rag.embed import SentenceTransformerEmbedder

    folder = tmp_path_factory.mktemp("tiny-cross-encoder")
    source = SentenceTransformerEmbedder().folder
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json"):  # fmt: skip
        shutil.copy(source / name, folder / name)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, num_labels=1,
                        max_position_embeddings=512)  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(folder)
    return folder


def test_cross_encoder_reranker_scores_hits_from_a_local_folder(tiny_cross_encoder: Path):
    reranker: Reranker = CrossEncoderReranker(tiny_cross_encoder, batch_size=2)
    hits = [hit(ANSWER, 1.0, "Eiffel Tower"), hit(TOPICAL, 1.0), hit("Bread needs yeast.", 1.0)]
    scores = reranker.score("How tall is the Eiffel Tower?", hits)
    assert len(scores) == 3 and all(isinstance(s, float) for s in scores)
    assert len(set(scores)) == 3  # different passages, different scores
    assert reranker.score("How tall is the Eiffel Tower?", hits) == pytest.approx(scores)
    assert reranker.name == f"cross-encoder:{tiny_cross_encoder.name}"


def test_cross_encoder_reranker_needs_a_model_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        CrossEncoderReranker(tmp_path)


def test_load_reranker_by_name_or_folder(embedder, tiny_cross_encoder: Path, tmp_path: Path):
    from rag.rerank import load_reranker

    assert load_reranker(None, embedder) is None and load_reranker("none", embedder) is None
    assert isinstance(load_reranker("sentence", embedder), SentenceReranker)
    assert isinstance(load_reranker(str(tiny_cross_encoder), embedder), CrossEncoderReranker)
    with pytest.raises(ConfigError, match="'none', 'sentence' or the path"):
        load_reranker(str(tmp_path / "missing"), embedder)


def test_search_cli_json_and_named_reranker(tmp_path: Path, embedder) -> None:
    import json

    from typer.testing import CliRunner

    from rag_cli.main import app

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "eiffel.md").write_text("# Eiffel Tower\n\n" + ANSWER)
    (docs / "paris.md").write_text("# Paris\n\n" + TOPICAL)
    index = str(tmp_path / "index")
    assert CliRunner().invoke(app, ["ingest", str(docs), "--index", index]).exit_code == 0
    args = ["search", "How tall is the Eiffel Tower?", "--index", index, "--json"]
    plain = json.loads(CliRunner().invoke(app, args).stdout)
    assert plain[0]["path"].endswith("eiffel.md")
    for key in ("path", "page", "start", "end", "text", "score", "bm25_rank", "dense_rank",
                "fused_rank"):  # fmt: skip
        assert key in plain[0]
    assert all(h["rerank_score"] is None for h in plain)
    reranked = json.loads(CliRunner().invoke(app, [*args, "--reranker", "sentence"]).stdout)
    assert all(h["rerank_score"] is not None for h in reranked)
    rrf = json.loads(CliRunner().invoke(app, [*args, "--fusion", "rrf"]).stdout)
    assert rrf[0]["score"] < 0.1  # reciprocal-rank scores, not z-scores
    bad = CliRunner().invoke(app, [*args, "--reranker", str(tmp_path / "nope")])
    assert bad.exit_code == 2 and "unknown reranker" in bad.output
