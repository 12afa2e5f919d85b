"""Named indexes and several indexes searched as one: what `--index` means, `rag indexes`,
merged search and answers whose sources say which collection they came from."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag import Index
from rag.collections import collection_names, list_indexes, resolve_index
from rag.errors import ConfigError, IndexFormatError, IndexNotFoundError
from rag.multi import MultiIndex
from rag.settings import Settings
from rag_cli.main import app
from tests.scripted_model import ScriptedChatModel

ROOT = Path(__file__).resolve().parents[1]
DOCS = {  # collection "docs": product facts
    "battery.txt": "The Kestrel K9 battery lasts 41 months on two AA lithium cells.",
    "radio.txt": "The Kestrel K9 radio transmits on the 868 MHz band in Europe.",
    "mast.txt": "The Kestrel K9 mast is mounted with one M6 stainless steel bracket.",
    "warranty.txt": "The Kestrel K9 warranty covers repairs for three full years after purchase.",
    "display.txt": "The Kestrel K9 display shows the wind speed in nautical knots only.",
}
MAIL = {  # collection "mail": things from an inbox
    "invoice.txt": "The March invoice from Zephyr Plumbing is due on the 14th of April.",
    "lunch.txt": "Lunch with Bob moved to Thursday at noon at the Blue Door cafe.",
    "alarm.txt": "The office alarm code changes to 4711 on Monday morning.",
}
BATTERY = "How long does the Kestrel K9 battery last?"
INVOICE = "When is the Zephyr Plumbing invoice due?"


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


# ---- what --index VALUE means -------------------------------------------------------------


def test_a_bare_name_is_a_named_index_in_the_data_dir(isolated_home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_index("mail") == isolated_home / "indexes" / "mail"
    assert resolve_index("notes.2024_v-1") == isolated_home / "indexes" / "notes.2024_v-1"
    assert resolve_index("default") == isolated_home / "index"
    assert resolve_index(None) == isolated_home / "index"


def test_anything_with_a_separator_stays_a_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_index("./mail") == Path("mail")
    assert resolve_index("dir/mail") == Path("dir/mail")
    assert resolve_index("/abs/mail") == Path("/abs/mail")
    assert resolve_index("~/mail") == Path.home() / "mail"
    assert resolve_index(".") == Path(".") and resolve_index("..") == Path("..")
    assert resolve_index(Path("mail")) == Path("mail"), "a Path object is always a path"


def test_a_bare_name_that_is_an_index_folder_here_still_means_the_folder(
    isolated_home, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "idx").mkdir()
    (tmp_path / "idx" / "index.sqlite").write_bytes(b"")
    notes: list[str] = []
    assert resolve_index("idx", note=notes.append) == Path("idx")
    assert len(notes) == 1 and "write --index ./idx" in notes[0] and "\n" not in notes[0]
    assert resolve_index("./idx", note=notes.append) == Path("idx") and len(notes) == 1

    named = isolated_home / "indexes" / "idx"
    named.mkdir(parents=True)
    (named / "index.sqlite").write_bytes(b"")
    assert resolve_index("idx", note=notes.append) == Path("idx")
    assert f"the named index {named} is not used" in notes[-1]


def test_a_folder_here_that_is_not_an_index_does_not_shadow_the_named_index(
    isolated_home, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mail").mkdir()  # e.g. the documents: rag ingest mail --index mail
    notes: list[str] = []
    assert resolve_index("mail", note=notes.append) == isolated_home / "indexes" / "mail"
    assert notes == []


@pytest.mark.parametrize("bad", ["my docs", ".hidden", "-x", "a:b", "naïve?", " "])
def test_invalid_names_get_a_clear_error(bad, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        resolve_index(bad)
    message = str(caught.value)
    assert "is not a valid index name" in message or "--index is empty" in message


def test_the_cli_refuses_an_invalid_name_as_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("status", "--index", "my docs")
    assert result.exit_code == 2
    assert "not a valid index name" in result.output and "./my docs" in result.output
    assert "Traceback" not in result.output


def test_collection_names_are_index_names_else_folder_names(isolated_home, tmp_path):
    paths = [isolated_home / "indexes" / "mail", isolated_home / "index", tmp_path / "x" / "mail"]
    assert collection_names(paths) == ["mail", "default", str(tmp_path / "x" / "mail")]
    assert collection_names([tmp_path / "a", tmp_path / "b"]) == ["a", "b"]


# ---- two small real indexes ----------------------------------------------------------------


@pytest.fixture(scope="module")
def home(tmp_path_factory, embedder, one_torch_thread) -> Path:
    """A RAG_HOME holding the named indexes "docs" and "mail"."""
    home = tmp_path_factory.mktemp("home")
    for name, facts in (("docs", DOCS), ("mail", MAIL)):
        folder = tmp_path_factory.mktemp(f"{name}-files")
        for file, fact in facts.items():
            (folder / file).write_text(fact + "\n")
        index = Index(home / "indexes" / name, settings=Settings(), embedder=embedder)
        assert index.ingest([folder]).failed == []
        index.close()
    return home


@pytest.fixture
def named(home, monkeypatch, embedder):
    """RAG_HOME is `home`; an index opened by path or name embeds with the session embedder."""
    monkeypatch.setenv("RAG_HOME", str(home))
    monkeypatch.setattr("rag.embed.factory.SentenceTransformerEmbedder", lambda *a, **k: embedder)
    return home


def open_many(home: Path, embedder, **options) -> MultiIndex:
    paths = {"docs": home / "indexes" / "docs", "mail": home / "indexes" / "mail"}
    return MultiIndex(paths, settings=Settings(), embedder=embedder, **options)


def test_rag_indexes_lists_each_named_index_from_sqlite_alone(named, embedder):
    shutil.copytree(named / "indexes" / "mail", named / "index")  # a default index too
    try:
        result = invoke("indexes", "--json")
        assert result.exit_code == 0, result.output
        listed = {c["name"]: c for c in json.loads(result.stdout)}
        assert list(listed) == ["default", "docs", "mail"]
        assert (listed["docs"]["documents"], listed["mail"]["documents"]) == (5, 3)
        assert listed["docs"]["chunks"] == 5 and listed["mail"]["chunks"] == 3
        docs = listed["docs"]
        assert docs["path"] == str(named / "indexes" / "docs") and docs["bytes"] > 0
        assert docs["last_ingest"] > 0 and docs["problem"] is None
        assert docs["embedder"] == embedder.info.name
        assert docs["embedder_fingerprint"] == embedder.info.fingerprint

        table = invoke("indexes").stdout.splitlines()
        assert table[0].split() == ["NAME", "DOCS", "CHUNKS", "SIZE", "LAST", "INGEST",
                                    "EMBEDDER", "PATH"]  # fmt: skip
        assert table[2].split()[:3] == ["docs", "5", "5"]
        assert table[2].endswith(str(named / "indexes" / "docs"))
    finally:
        shutil.rmtree(named / "index")


def test_listing_indexes_loads_no_model(named):
    code = ("import sys; from rag.collections import list_indexes; "
            "assert [c.name for c in list_indexes()] == ['docs', 'mail']; "
            "print(sorted(m for m in ('torch', 'sentence_transformers', 'faiss', 'bm25s') "
            "if m in sys.modules))")  # fmt: skip
    env = {"RAG_HOME": str(named), "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True)  # fmt: skip
    assert done.stdout.strip() == "[]"


def test_rag_indexes_says_how_to_make_one_when_there_is_none():
    result = invoke("indexes")
    assert result.exit_code == 0 and "no indexes yet" in result.stdout
    assert invoke("indexes", "--json").stdout.strip() == "[]"
    assert list_indexes() == []


def test_each_fact_is_found_first_and_tagged_with_its_collection(home, embedder):
    many = open_many(home, embedder)
    try:
        battery = many.search(BATTERY, k=8)
        invoice = many.search(INVOICE, k=8)
    finally:
        many.close()
    assert (Path(battery[0].path).name, battery[0].collection) == ("battery.txt", "docs")
    assert (Path(invoice[0].path).name, invoice[0].collection) == ("invoice.txt", "mail")
    for hits in (battery, invoice):
        assert [h.rank for h in hits] == list(range(1, 9)), "all 8 chunks of both, ranked"
        assert {h.collection for h in hits} == {"docs", "mail"}
        assert all(Path(h.path).name in (DOCS if h.collection == "docs" else MAIL) for h in hits)
        assert hits[0].score > hits[1].score
    # ranks in the pooled lists: the exact match leads both BM25 and the fused ranking
    assert battery[0].stages.bm25_rank == 1 and invoice[0].stages.bm25_rank == 1
    assert battery[0].stages.fused_rank == 1 and invoice[0].stages.fused_rank == 1


def test_the_merged_ranking_matches_one_index_holding_both(home, embedder, tmp_path):
    """Dense-only, the pooled ranking is exactly that of one index with every document."""
    both = tmp_path / "both"
    for name, facts in (("docs", DOCS), ("mail", MAIL)):
        for file, fact in facts.items():
            (both / name).mkdir(parents=True, exist_ok=True)
            (both / name / file).write_text(fact + "\n")
    one = Index(tmp_path / "one", settings=Settings(), embedder=embedder)
    one.ingest([both])
    many = open_many(home, embedder)
    try:
        for query in (BATTERY, INVOICE, "lunch on Thursday"):
            merged = [Path(h.path).name for h in many.search(query, k=8, mode="dense")]
            single = [Path(h.path).name for h in one.search(query, k=8, mode="dense")]
            assert merged == single, query
    finally:
        many.close()
        one.close()


def test_the_query_is_embedded_once_for_all_the_indexes(home, embedder):
    class Counting:
        def __init__(self) -> None:
            self.calls = 0

        def __getattr__(self, name: str):
            return getattr(embedder, name)

        def encode(self, texts, **kw):
            self.calls += 1
            return embedder.encode(texts, **kw)

    counting = Counting()
    many = open_many(home, counting)
    try:
        assert len(many.search(INVOICE, k=3)) == 3
    finally:
        many.close()
    assert counting.calls == 1


def test_filters_apply_to_every_index_and_rrf_fusion_works(home, embedder):
    many = open_many(home, embedder)
    try:
        only = many.search(INVOICE, k=8, path_glob="*/lunch.txt")
        assert [(Path(h.path).name, h.collection) for h in only] == [("lunch.txt", "mail")]
    finally:
        many.close()
    rrf = MultiIndex({"docs": home / "indexes" / "docs", "mail": home / "indexes" / "mail"},
                     settings=Settings().replace(**{"retrieval.fusion": "rrf"}),
                     embedder=embedder)  # fmt: skip
    try:
        assert Path(rrf.search(INVOICE, k=3)[0].path).name == "invoice.txt"
    finally:
        rrf.close()


def test_indexes_embedded_differently_are_refused_before_any_model_loads(home, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(home / "indexes" / "mail", other)
    with sqlite3.connect(other / "index.sqlite") as db:
        (info,) = db.execute("SELECT value FROM meta WHERE key='embedder'").fetchone()
        changed = {**json.loads(info), "fingerprint": "0123456789abcdef", "dim": 768}
        db.execute("UPDATE meta SET value=? WHERE key='embedder'", (json.dumps(changed),))
    with pytest.raises(IndexFormatError) as caught:
        MultiIndex([home / "indexes" / "docs", other], settings=Settings())
    message = str(caught.value)
    assert "cannot search docs and other together" in message
    assert "0123456789abcdef" in message and "one at a time" in message
    with pytest.raises(IndexNotFoundError, match="rag ingest"):
        MultiIndex([home / "indexes" / "docs", tmp_path / "missing"], settings=Settings())


def test_cli_search_merges_several_indexes_and_shows_the_collection(named):
    result = invoke("search", INVOICE, "--index", "docs", "--index", "mail", "--k", "3")
    assert result.exit_code == 0, result.output
    first = result.stdout.splitlines()[0]
    assert first.startswith("1. mail: ") and first.split()[2].endswith("invoice.txt")
    hits = json.loads(invoke("search", BATTERY, "--index", "docs", "--index", "mail",
                             "--json").stdout)  # fmt: skip
    assert (Path(hits[0]["path"]).name, hits[0]["collection"]) == ("battery.txt", "docs")
    single = json.loads(invoke("search", BATTERY, "--index", "docs", "--json").stdout)
    assert {h["collection"] for h in single} == {""}, "one index: no collection label"


def test_a_bare_name_that_is_an_index_here_is_used_with_a_note(named, monkeypatch):
    monkeypatch.chdir(named / "indexes")  # ./docs is an index folder here
    result = invoke("status", "--index", "docs", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["documents"] == 5
    assert "note: --index docs is the index in the folder ./docs" in result.stderr


def test_cli_ask_over_two_indexes_cites_a_source_from_the_second(named, monkeypatch):
    model = ScriptedChatModel(replies={"Zephyr": "The invoice is due on the 14th of April [1]."})
    monkeypatch.setattr("rag.pipeline.load_chat_model", lambda settings: model)
    args = ("ask", INVOICE, "--index", "docs", "--index", "mail", "--output", "text")
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["abstained"] is False, answer
    cited = {n for s in answer["sentences"] for n in s["citations"]}
    sources = {s["n"]: s for s in answer["sources"]}
    assert cited == {1}
    assert (Path(sources[1]["path"]).name, sources[1]["collection"]) == ("invoice.txt", "mail")
    assert {s["collection"] for s in answer["sources"]} <= {"docs", "mail"}
    # the model read each source under its collection's name
    prompt = model.prompts[-1][-1]["content"]
    assert f'<source id="1" from="mail: {sources[1]["path"]}">' in prompt

    shown = invoke(*args).stdout
    assert f"\n [1] mail: {sources[1]['path']}\n" in shown, "a cited source, under its collection"


def test_one_index_keeps_the_prompt_labels_it_had(home, embedder):
    model = ScriptedChatModel(replies={"Zephyr": "The invoice is due on the 14th of April [1]."})
    index = Index(home / "indexes" / "mail", settings=Settings(), embedder=embedder,
                  chat_model=model)  # fmt: skip
    try:
        answer = index.ask(INVOICE)
    finally:
        index.close()
    assert not answer.abstained and {s.collection for s in answer.sources} == {""}
    prompt = model.prompts[-1][-1]["content"]
    assert f'<source id="1" from="{answer.sources[0].path}">' in prompt


def test_a_follow_up_is_made_standalone_before_searching_every_index(home, embedder):
    rewritten = "Who sent the Zephyr Plumbing invoice?"
    model = ScriptedChatModel(replies={
        "Last question: and who sent it?": rewritten,
        "Who sent the Zephyr": "Zephyr Plumbing sent the March invoice [1].",
    })  # fmt: skip
    many = open_many(home, embedder, chat_model=model)
    history = [("user", INVOICE), ("assistant", "On the 14th of April [1].")]
    try:
        answer = many.ask("and who sent it?", history=history)
    finally:
        many.close()
    assert (answer.question, answer.rewritten_question) == ("and who sent it?", rewritten)
    assert "rewrite" in answer.usage.stages_s and not answer.abstained
    assert (Path(answer.sources[0].path).name, answer.sources[0].collection) == (
        "invoice.txt", "mail")  # fmt: skip
