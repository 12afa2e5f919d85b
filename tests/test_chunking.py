"""Chunking with the embedder's own tokenizer: limits, spans, headings, pages and overlap."""

from __future__ import annotations

import pytest

from rag.chunking import chunk_document
from rag.loaders import Document, load_document, markdown_blocks
from tests.conftest import DEMO


def _demo_documents() -> list[Document]:
    from rag.loaders import kind_of

    docs = []
    for path in sorted(DEMO.iterdir()):
        kind = kind_of(path)
        if kind in ("txt", "md", "html", "pdf"):
            docs.append(load_document(str(path), kind, path.read_bytes()))
    return docs


@pytest.mark.parametrize("max_tokens", [32, 64, 254])
def test_no_chunk_exceeds_the_model_limit_with_special_tokens(embedder, max_tokens):
    tokenizer = embedder.counter._tokenizer
    long_sentence = "word " * 700 + "and a supercalifragilisticexpialidocious" * 40
    extra = Document("x.txt", "txt", long_sentence, markdown_blocks(long_sentence))
    for doc in [*_demo_documents(), extra]:
        for chunk in chunk_document(doc, embedder.counter, max_tokens):
            ids = tokenizer.encode(chunk.embed_text, add_special_tokens=True).ids
            assert len(ids) <= max_tokens + 2, (doc.key, chunk.ord, len(ids))


def test_chunk_text_is_the_exact_source_span(embedder):
    for doc in _demo_documents():
        for chunk in chunk_document(doc, embedder.counter, 64):
            assert doc.text[chunk.start : chunk.end] == chunk.text
            assert chunk.text.strip()


def test_chunks_keep_heading_path_and_never_cross_headings(embedder):
    text = (
        "# Manual\n\n## Battery\n\n"
        + "The battery lasts two years. " * 30
        + "\n\n## Radio\n\nIt uses 868 MHz."
    )
    doc = Document("m.md", "md", text, markdown_blocks(text))
    chunks = chunk_document(doc, embedder.counter, 64)
    assert {c.heading for c in chunks} == {"Manual > Battery", "Manual > Radio"}
    radio = [c for c in chunks if c.heading.endswith("Radio")]
    assert len(radio) == 1 and radio[0].text == "It uses 868 MHz."
    assert all("868" not in c.text for c in chunks if c.heading.endswith("Battery"))


def test_pdf_chunks_carry_their_page(embedder):
    path = DEMO / "kestrel-k2-service-manual.pdf"
    doc = load_document(str(path), "pdf", path.read_bytes())
    chunks = chunk_document(doc, embedder.counter, 128)
    assert {c.page for c in chunks} == {1, 2, 3, 4, 5}
    assert {c.page for c in chunks if "38 microamps" in c.text} == {3}


def test_consecutive_chunks_overlap_by_a_sentence_within_budget(embedder):
    sentences = [f"Sentence number {i} talks about topic {i % 7}." for i in range(60)]
    text = " ".join(sentences)
    doc = Document("o.txt", "txt", text, markdown_blocks(text))
    chunks = chunk_document(doc, embedder.counter, 100, overlap=0.15)
    assert len(chunks) > 3
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert b.start < a.end, "consecutive chunks should share trailing sentences"
        shared = embedder.counter.count(doc.text[b.start : a.end])
        assert 0 < shared <= 15 + 1


def test_zero_overlap_gives_disjoint_chunks(embedder):
    text = " ".join(f"Fact {i} is stated here." for i in range(80))
    doc = Document("o.txt", "txt", text, markdown_blocks(text))
    chunks = chunk_document(doc, embedder.counter, 50, overlap=0.0)
    assert all(b.start >= a.end for a, b in zip(chunks, chunks[1:], strict=False))


def test_without_repeat_heading_only_a_sections_first_chunk_embeds_it(embedder):
    from rag.settings import ChunkSettings, content_hash

    text = "# Title\n\n" + "The battery lasts two years. " * 40
    doc = Document("t.md", "md", text, markdown_blocks(text))
    every = chunk_document(doc, embedder.counter, 64)
    first = chunk_document(doc, embedder.counter, 64, repeat_heading=False)
    assert len(every) > 2 and [(c.start, c.end) for c in every] == [(c.start, c.end) for c in first]
    assert all(c.embed_text.startswith("Title\n") for c in every)
    assert first[0].embed_text.startswith("Title\n")
    assert all(c.embed_text == c.text and c.heading == "Title" for c in first[1:])
    # the setting is part of the documents' content hash only when it is switched off
    assert content_hash(ChunkSettings(repeat_heading=False), "e") != content_hash(
        ChunkSettings(), "e")  # fmt: skip
