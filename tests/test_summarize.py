"""Whole-document questions (`rag summarize`, `rag ask --document`): map-reduce in budget.

The pipeline is pinned with a scripted model that copies sentences out of its prompt with
their citation numbers, so where each final citation points is exact; one document is
long enough for many map steps and several reduce rounds at a tiny context window, and
every prompt the model receives is counted against that window. The real tiny generator
then reads a demo corpus file through the Python API and the CLI (structure, not wording).
"""

from __future__ import annotations

import json
import re
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag import Index
from rag.errors import DocumentNotIndexedError
from rag.settings import Settings, load_settings
from rag.summarize import DocumentSummary
from rag.text.sentences import split_sentences
from tests.conftest import DEMO
from tests.scripted_model import ScriptedChatModel

SOURCE_BLOCK = re.compile(r'<source id="(\d+)" from="[^"]*">\n(.*?)\n</source>', re.S)
PART_BLOCK = re.compile(r'<summary part="(\d+)">\n(.*?)\n</summary>', re.S)
SYLLABLES = ["ka", "lo", "mi", "ru", "te", "zo", "vi", "pa", "ne", "su", "fo", "gi"]
NEEDLE = "needlewort"  # the one word the document question is about (one sentence has it)


def word(i: int, salt: int) -> str:
    """A made-up word, different for every (i, salt): no two sentences share content words."""
    k = i * 7 + salt * 131
    return "".join(SYLLABLES[(k // 12**j + j * salt) % 12] for j in range(3)) + str(salt)


def sentence(i: int) -> str:
    w = [word(i, salt) for salt in range(6)]
    if i == 41:
        w[4] = NEEDLE
    return (f"The {w[0]} {w[1]} near {w[2]} stores {i * 7 + 3} {w[3]} for the {w[4]} "
            f"{w[5]} every {i + 2} days.")  # fmt: skip


SENTENCES = [sentence(i) for i in range(60)]


@dataclass
class EchoModel(ScriptedChatModel):
    """Map steps: the first sentence of every source block, cited by its block number (with
    `needle`: every sentence that has the needle, else NOT FOUND). Reduce steps: the first
    sentence of every partial text, with the numbers it carries. `extra` ends every reply."""

    needle: str = ""
    extra: str = ""

    def reply_for(self, messages) -> str:  # type: ignore[no-untyped-def]
        user = messages[-1]["content"]
        lines: list[str] = []
        for n, body in SOURCE_BLOCK.findall(user):
            for s, e in split_sentences(body):
                text = body[s:e]
                if self.needle and self.needle not in text:
                    continue
                lines.append(f"{text.rstrip('.')} [{n}].")
                if not self.needle:
                    break
        for _, body in PART_BLOCK.findall(user):
            spans = split_sentences(body)
            lines.append(body[spans[0][0] : spans[0][1]])
        reply = " ".join(lines) or "NOT FOUND"
        return f"{reply} {self.extra}".strip()


@pytest.fixture(scope="module")
def long_doc(tmp_path_factory, embedder, one_torch_thread) -> tuple[Path, str]:
    """An index holding one long document in chunks of at most 200 word pieces."""
    docs = tmp_path_factory.mktemp("docs")
    (docs / "long.txt").write_text(" ".join(SENTENCES) + "\n")
    (docs / "other.txt").write_text("An unrelated short note.\n")
    index_dir = tmp_path_factory.mktemp("index")
    settings = Settings().replace(**{"chunk.max_tokens": 200})
    index = Index(index_dir, settings=settings, embedder=embedder, chat_model=EchoModel())
    assert index.ingest([docs]).failed == []
    index.close()
    return index_dir, str(docs / "long.txt")


def open_index(long_doc, embedder, model: ScriptedChatModel, **answer: object) -> Index:
    settings = Settings().replace(**{"chunk.max_tokens": 200},
                                  **{f"answer.{k}": v for k, v in answer.items()})  # fmt: skip
    return Index(long_doc[0], settings=settings, embedder=embedder, chat_model=model)


def chunk_texts(index: Index, key: str) -> list[str]:
    return [c.text for c in index.pipeline.store().iter_chunks(key)]


def assert_every_prompt_fits(model: ScriptedChatModel, summary: DocumentSummary) -> None:
    assert len(model.prompts) == len(summary.steps) > 0
    for messages, options, step in zip(model.prompts, model.options, summary.steps,
                                       strict=True):  # fmt: skip
        sent = model.chat_prompt_tokens(messages)
        assert sent + options.max_tokens <= model.n_ctx
        assert step.prompt_tokens == sent and step.max_tokens == options.max_tokens


def assert_citations_point_at_their_chunks(summary: DocumentSummary, texts: list[str]) -> None:
    assert summary.sentences
    for s in summary.sentences:
        assert s.citations and s.supported
        for n in s.citations:
            assert s.text.rstrip(".") in texts[n - 1], (s.text, n)
    assert [src.n for src in summary.sources] == sorted({n for s in summary.sentences
                                                         for n in s.citations})  # fmt: skip
    assert all(src.text == texts[src.n - 1] for src in summary.sources)


# ---- the budget and the recursion -----------------------------------------------------------


@pytest.mark.model
def test_a_tiny_window_is_never_exceeded_and_partials_are_reduced_in_rounds(long_doc, embedder):
    model = EchoModel(n_ctx=200)
    calls: list[tuple[int, int]] = []
    with closing(open_index(long_doc, embedder, model)) as index:
        summary = index.summarize(long_doc[1], progress=lambda d, t: calls.append((d, t)))
        texts = chunk_texts(index, summary.path)
    assert_every_prompt_fits(model, summary)
    maps = [s for s in summary.steps if s.kind == "map"]
    assert len(maps) > len(texts) > 3, "every chunk is too long for one step: each is cut"
    assert any("cut to fit a step" in note for note in summary.notes)
    assert max(s.level for s in summary.steps) >= 2, "the partial texts took several rounds"
    assert summary.steps[-1].kind == "reduce" and summary.steps[-1].inputs >= 2
    assert_citations_point_at_their_chunks(summary, texts)
    assert summary.reply_tokens < 256 and any("each step could write" in n for n in summary.notes)
    assert calls[0][0] == 0 and calls[-1] == (len(summary.steps), len(summary.steps))
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert all(d <= t for d, t in calls)


@pytest.mark.model
def test_step_local_citations_are_remapped_to_the_documents_chunks(long_doc, embedder):
    model = EchoModel(n_ctx=600)
    with closing(open_index(long_doc, embedder, model)) as index:
        summary = index.summarize(long_doc[1])
        texts = chunk_texts(index, summary.path)
    assert_every_prompt_fits(model, summary)
    maps = [s for s in summary.steps if s.kind == "map"]
    assert all(s.inputs >= 2 for s in maps[:-1]), "several chunks per map step"
    for messages, step in zip(model.prompts, summary.steps, strict=True):
        ids = [int(n) for n, _ in SOURCE_BLOCK.findall(messages[-1]["content"])]
        if step.kind == "map":
            assert ids == list(range(1, step.inputs + 1)), "numbered from 1 in every step"
    assert_citations_point_at_their_chunks(summary, texts)
    assert max(n for s in summary.sentences for n in s.citations) > maps[0].inputs
    assert summary.path == long_doc[1]
    data = summary.to_dict()
    assert data["chunks"] == len(texts) and len(data["steps"]) == len(summary.steps)
    assert {"n", "chunk_id", "path", "start", "end", "text"} <= data["sources"][0].keys()
    json.dumps(data)


@pytest.mark.model
def test_a_sentence_no_chunk_supports_is_flagged_or_left_out_when_strict(long_doc, embedder):
    invented = "The moon is made of green cheese [1]."
    model = EchoModel(n_ctx=600, extra=invented)
    with closing(open_index(long_doc, embedder, model)) as index:
        summary = index.summarize(long_doc[1])
    flagged = [s for s in summary.sentences if "green cheese" in s.text]
    assert flagged and not any(s.supported for s in flagged)
    assert summary.unsupported == flagged
    assert all(s.supported for s in summary.sentences if s not in flagged)
    strict = EchoModel(n_ctx=600, extra=invented)
    with closing(open_index(long_doc, embedder, strict, strict=True)) as index:
        kept = index.summarize(long_doc[1])
    assert kept.sentences and all(s.supported for s in kept.sentences)
    assert "green cheese" not in kept.text


@pytest.mark.model
def test_a_document_question_is_answered_from_the_chunk_that_says_it(long_doc, embedder):
    model = EchoModel(n_ctx=600, needle=NEEDLE)
    with closing(open_index(long_doc, embedder, model)) as index:
        answer = index.summarize(long_doc[1], question=f"What is stored for the {NEEDLE}?")
        texts = chunk_texts(index, answer.path)
    assert_every_prompt_fits(model, answer)
    assert all(f"Question: What is stored for the {NEEDLE}?" in p[-1]["content"]
               for p in model.prompts)  # fmt: skip
    assert not answer.abstained and answer.question
    assert [s.found for s in answer.steps].count(True) >= 1
    assert [s.found for s in answer.steps].count(False) >= 1, "the other parts said NOT FOUND"
    assert_citations_point_at_their_chunks(answer, texts)
    assert all(NEEDLE in texts[n - 1] for s in answer.sentences for n in s.citations)
    assert all(NEEDLE in s.text for s in answer.sentences)


@pytest.mark.model
def test_a_document_that_does_not_answer_the_question_abstains(long_doc, embedder):
    model = EchoModel(n_ctx=600, needle="nowhere-in-it")
    with closing(open_index(long_doc, embedder, model)) as index:
        answer = index.summarize(long_doc[1], question="What is nowhere-in-it?")
    assert answer.abstained and answer.text == "Not found in your documents."
    assert answer.abstain_reason == "no part of the document answers the question"
    assert answer.sentences == [] and answer.sources == []
    assert all(s.kind == "map" and not s.found for s in answer.steps), "nothing to reduce"


@pytest.mark.model
def test_a_file_not_in_the_index_is_a_typed_error_before_any_model_runs(long_doc, embedder,
                                                                        tmp_path):  # fmt: skip
    model = EchoModel()
    missing = tmp_path / "never-ingested.md"
    with closing(open_index(long_doc, embedder, model)) as index:
        with pytest.raises(DocumentNotIndexedError) as raised:
            index.summarize(missing)
        other = index.summarize(Path(long_doc[1]).parent / "other.txt")
    assert raised.value.path == str(missing)
    message = str(raised.value)
    assert str(missing) in message and f"rag ingest {missing}" in message
    assert len(model.prompts) == 1 and other.chunks == 1, "only the indexed file was read"


@pytest.mark.model
def test_a_window_too_small_for_two_partials_and_a_reply_is_a_config_error(long_doc, embedder):
    from rag.errors import ConfigError

    model = EchoModel(n_ctx=150)
    too_small = pytest.raises(ConfigError, match="too small to read a document in steps")
    with closing(open_index(long_doc, embedder, model)) as index, too_small:
        index.summarize(long_doc[1])
    assert model.prompts == []


def test_citation_markers_after_the_full_stop_belong_to_the_sentence_before():
    from rag.cite import cited_sentences

    assert cited_sentences("It lasts 41 months. [3] It has a clip. [4, 5]") == [
        ("It lasts 41 months.", [3]), ("It has a clip.", [4, 5]),
    ]  # fmt: skip
    assert cited_sentences("It lasts 41 months [3]. [4]") == [("It lasts 41 months.", [3, 4])]


# ---- the real tiny generator: the Python API and the CLI -------------------------------------


@pytest.fixture(scope="module")
def demo_index(tmp_path_factory, embedder, one_torch_thread) -> tuple[Index, str]:
    from rag.models import resolve_model

    try:
        resolve_model("tiny")
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"tiny generator not installed: {exc}")
    settings = tiny_settings()
    index = Index(tmp_path_factory.mktemp("demo-idx"), settings=settings, embedder=embedder)
    assert index.ingest([DEMO / "warranty.txt"]).failed == []
    yield index, str(DEMO / "warranty.txt")
    index.close()


def tiny_settings() -> Settings:
    settings = load_settings(preset="tiny", env={}).settings
    return settings.replace(**{"generation.n_ctx": 768, "answer.document_max_tokens": 40})


@pytest.mark.llm
def test_the_tiny_model_summarises_a_demo_document_with_valid_citations(demo_index):
    index, path = demo_index
    calls: list[tuple[int, int]] = []
    summary = index.summarize(path, progress=lambda d, t: calls.append((d, t)))
    texts = chunk_texts(index, summary.path)
    n_ctx = index.chat_model().n_ctx
    assert summary.chunks == len(texts) >= 2
    assert sum(s.kind == "map" for s in summary.steps) >= 2, "the file takes several steps"
    assert all(s.prompt_tokens + s.max_tokens <= n_ctx for s in summary.steps)
    assert calls[-1] == (len(summary.steps), len(summary.steps))
    if summary.abstained:  # a 135M model may write nothing usable; it must say so
        assert summary.abstain_reason and summary.sentences == []
        return
    assert summary.sentences and summary.text
    for s in summary.sentences:
        assert all(1 <= n <= len(texts) for n in s.citations)
        assert s.supported or not s.citations or s.support < 0.6
    for src in summary.sources:
        assert src.path == summary.path and src.text == texts[src.n - 1]


@pytest.mark.llm
def test_cli_summarize_and_ask_document(demo_index, monkeypatch):
    from rag_cli.main import app

    index, path = demo_index
    monkeypatch.setenv("RAG_HOME", str(Path(index.path).parent))
    common = ["--index", str(index.path), "--preset", "tiny", "--set", "generation.n_ctx=768",
              "--max-tokens", "24"]  # fmt: skip
    runner = CliRunner()
    result = runner.invoke(app, ["summarize", path, *common, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"answer", "sentences", "sources", "steps", "chunks", "usage", "notes"} <= data.keys()
    assert data["path"] == path and data["question"] is None
    assert all(step["prompt_tokens"] + step["max_tokens"] <= 768 for step in data["steps"])
    ask = ["ask", "How long is the warranty?", "--document", path, *common[:-2],
           "--set", "answer.document_max_tokens=24"]  # fmt: skip
    shown = runner.invoke(app, ask)
    assert shown.exit_code == 0, shown.output
    assert "chunks read in" in shown.stdout
    assert "Sources:" in shown.stdout or "Not found in your documents." in shown.stdout
    missing = runner.invoke(app, ["summarize", str(DEMO / "faq.md"), "--index", str(index.path)])
    assert missing.exit_code == 2
    assert "is not in the index" in missing.output and "rag ingest" in missing.output


def test_answer_settings_name_the_document_prompts():
    answer = Settings().answer
    assert (answer.document_map_prompt, answer.document_reduce_prompt) == (
        "document-map-v1", "document-reduce-v1",
    )  # fmt: skip
    assert answer.document_question_map_prompt == "document-question-map-v1"
    assert answer.document_question_reduce_prompt == "document-question-reduce-v1"
    with pytest.raises(Exception, match="document_max_tokens"):
        replace(answer, document_max_tokens=4)
