"""One answer on screen: `rag ask` and `rag chat` show the verified answer once, with every
citation the checker changed marked, the cited sources (location and quote) before a folded
"also read" line; on a terminal the streamed words are replaced in place by that answer.

The CLI runs for real on a real index and embedder; the chat model is scripted (its replies
are written in advance, so each citation change is exact) or the real tiny generator.
"""

from __future__ import annotations

import json
import re
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from rag import Index
from rag.settings import Settings, load_settings
from rag_cli.answer_display import AnswerDisplay, answer_text, render_answer
from rag_cli.main import app
from tests.scripted_model import ScriptedChatModel

FACTS = {
    "battery.txt": "The Kestrel K9 battery lasts 41 months on two AA lithium cells.",
    "radio.txt": "The Kestrel K9 radio transmits on the 868 MHz band in Europe.",
    "mast.txt": "The Kestrel K9 mast is mounted with one M6 stainless steel bracket.",
    "warranty.txt": "The Kestrel K9 warranty covers repairs for three full years after purchase.",
    "display.txt": "The Kestrel K9 display shows the wind speed in nautical knots only.",
    "sensor.txt": "The Kestrel K9 humidity sensor is calibrated at the factory in Oslo.",
}
BATTERY = "How long does the Kestrel K9 battery last?"
ANSWER = "The battery of the Kestrel K9 lasts 41 months"  # worded unlike its source
RADIO = "The radio transmits on the 868 MHz band"
QUOTE = "“The Kestrel K9 battery lasts 41 months on two AA lithium cells.”"
ESCAPE = "\x1b"


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, embedder, one_torch_thread) -> Path:
    docs = tmp_path_factory.mktemp("docs")
    for name, fact in FACTS.items():
        (docs / name).write_text(fact + "\n")
    path = tmp_path_factory.mktemp("index")
    index = Index(path, settings=Settings(), embedder=embedder)
    assert index.ingest([docs]).failed == []
    index.close()
    return path


@pytest.fixture
def model(monkeypatch, embedder) -> ScriptedChatModel:
    """The scripted model every `rag ask`/`rag chat` in the test answers with."""
    scripted = ScriptedChatModel()
    monkeypatch.setattr("rag.pipeline.load_chat_model", lambda settings: scripted)
    monkeypatch.setattr("rag.embed.factory.SentenceTransformerEmbedder", lambda *a, **k: embedder)
    return scripted


def ask(index_dir: Path, *args: str, question: str = BATTERY):
    args = ("ask", question, "--index", str(index_dir), "--output", "text", *args)
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def numbers(index_dir, model) -> dict[str, int]:
    """The source number each file gets for BATTERY (retrieval does not depend on the reply)."""
    model.default = f"{ANSWER} [1]."
    data = json.loads(ask(index_dir, "--json").stdout)
    return {Path(s["path"]).name: s["n"] for s in data["sources"]}


# ---- not a terminal: the verified answer alone, once --------------------------------------


@pytest.mark.model
def test_piped_output_is_the_verified_answer_once_then_cited_sources_then_also_read(
    index_dir, model, numbers
):
    battery, radio = numbers["battery.txt"], numbers["radio.txt"]
    model.default = f"{ANSWER} [{radio}]."  # the model cites the wrong source
    shown = ask(index_dir).stdout
    assert ESCAPE not in shown, "no control codes when stdout is not a terminal"
    lines = shown.splitlines()
    assert lines[0] == f"{ANSWER}. [{radio}→{battery}]"
    assert shown.count(ANSWER) == 1, "the streamed words are not printed as well"
    assert f"[{radio}]." not in shown, "the model's own citation is not shown unmarked"
    assert lines[1] == (f"citations checked: [{radio}→{battery}] moved: source {battery} "
                        f"states it, not source {radio}")  # fmt: skip
    sources = lines.index("Sources:")
    assert lines[sources + 1].startswith(f" [{battery}] /")  # the full location
    assert lines[sources + 1].endswith("battery.txt")
    assert lines[sources + 2] == f"     {QUOTE}"
    also = [line for line in lines if line.startswith("also read: ")]
    assert len(also) == 1 and lines.index(also[0]) == sources + 3
    others = len(numbers) - 1
    assert also[0].endswith(f", +{others - 3} more") and also[0].count(".txt") == 3
    assert "battery.txt" not in also[0], "a cited source is not listed again"


@pytest.mark.model
def test_json_marks_moved_and_dropped_citations_and_the_screen_shows_them(
    index_dir, model, numbers
):
    battery, radio = numbers["battery.txt"], numbers["radio.txt"]
    missing = len(numbers) + 3
    model.default = f"{ANSWER} [{radio}]. {RADIO} [{radio}] [{battery}] [{missing}]."
    data = json.loads(ask(index_dir, "--json").stdout)
    first, second = data["sentences"]
    assert (first["citations"], first["repaired_from"], first["dropped"]) == ([battery], [radio],
                                                                             [])  # fmt: skip
    assert (second["citations"], second["repaired_from"]) == ([radio], [])
    assert second["dropped"] == [battery, missing]
    assert {"answer", "abstained", "sources", "nearest", "usage"} <= data.keys()

    lines = ask(index_dir).stdout.splitlines()
    assert lines[0] == (f"{ANSWER}. [{radio}→{battery}] {RADIO}. [{radio}] [{battery}✗] "
                        f"[{missing}✗]")  # fmt: skip
    assert lines[1] == (
        f"citations checked: [{radio}→{battery}] moved: source {battery} states it, not source "
        f"{radio} · [{battery}✗] dropped: source {battery} does not state it · [{missing}✗] "
        f"removed: there is no source {missing}"
    )
    cited = [line for line in lines if re.match(r" \[\d+\] ", line)]
    assert [int(line.split("]")[0][2:]) for line in cited] == [battery, radio], "in cited order"
    assert "“The Kestrel K9 radio transmits on the 868 MHz band in Europe.”" in "\n".join(lines)


@pytest.mark.model
def test_an_added_citation_and_an_unsupported_sentence_are_marked(index_dir, model, numbers):
    battery = numbers["battery.txt"]
    model.default = f"{ANSWER}. The moon is made of green cheese [{battery}]."
    lines = ask(index_dir).stdout.splitlines()
    moon = f"The moon is made of green cheese. [{battery}] [unsupported]"
    assert lines[0] == f"{ANSWER}. [→{battery}] {moon}"
    assert lines[1] == (
        f"citations checked: [→{battery}] added: source {battery} states it · "
        "[unsupported] no source states this sentence (--strict leaves it out)"
    )
    strict = ask(index_dir, "--strict").stdout.splitlines()
    assert strict[0] == f"{ANSWER}. [→{battery}]"


@pytest.mark.model
def test_quotes_flag_shows_support_and_every_passage_read(index_dir, model, numbers):
    battery = numbers["battery.txt"]
    model.default = f"{ANSWER} [{battery}]."
    shown = ask(index_dir, "--quotes").stdout
    assert re.search(rf"     {QUOTE}  support 1\.00", shown)
    assert "Also read, not cited:" in shown and "also read: " not in shown
    listed = re.findall(r"^ \[(\d+)\] ", shown, flags=re.M)
    assert sorted(map(int, listed)) == sorted(numbers.values()), "each source once"


@pytest.mark.model
def test_not_found_is_its_own_state_with_the_nearest_passages(index_dir, model):
    model.default = "NOT FOUND"
    shown = ask(index_dir).stdout
    lines = shown.splitlines()
    assert lines[0] == "Not found in your documents.  (the model found no answer in the sources)"
    assert lines[1] == "Nearest passages:"
    assert lines[2].startswith(" 1. ") and ".txt: The Kestrel K9" in lines[2]
    assert "Sources:" not in shown and "NOT FOUND" not in shown and ESCAPE not in shown


@pytest.mark.model
def test_chat_shows_each_answer_once(index_dir, model, numbers):
    battery = numbers["battery.txt"]
    model.default = f"{ANSWER} [{battery}]."
    result = CliRunner().invoke(app, ["chat", "--index", str(index_dir), "--set",
                                      "answer.output=text"], input=f"{BATTERY}\n")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.count(ANSWER) == 1 and ESCAPE not in result.stdout
    assert f"{ANSWER}. [{battery}]\n" in result.stdout and "also read: " in result.stdout


# ---- a terminal: the words stream, then the verified answer replaces them -------------------


def terminal(width: int = 80, height: int = 24) -> Console:
    """A console that believes it is a terminal, writing into a string (as `out` is made)."""
    return Console(file=StringIO(), force_terminal=True, width=width, height=height,
                   highlight=False, soft_wrap=True, color_system="standard")  # fmt: skip


CSI = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])")


def screen(raw: str) -> list[str]:
    """What a terminal shows after `raw`: text written at the cursor, CR, LF, cursor up or
    down, erase line; colours and cursor visibility ignored."""
    rows: list[list[str]] = [[]]
    r = c = 0
    i = 0
    while i < len(raw):
        match = CSI.match(raw, i)
        if match:
            arg, command = match.groups()
            n = int(arg) if arg.isdigit() else 1
            if command == "A":
                r = max(0, r - n)
            elif command == "B":
                r += n
            elif command == "K":
                rows[r] = [] if arg == "2" else rows[r][:c]
            i = match.end()
            continue
        char = raw[i]
        if char == "\n":
            r, c = r + 1, 0
        elif char == "\r":
            c = 0
        else:
            rows[r] += [" "] * (c + 1 - len(rows[r]))
            rows[r][c] = char
            c += 1
        while len(rows) <= r:
            rows.append([])
        i += 1
    return ["".join(row).rstrip() for row in rows]


def show_on_terminal(index: Index, question: str, console: Console):
    with AnswerDisplay(console, console) as display:
        answer = index.ask(question, on_token=display.token, on_event=display.event)
    console.print(render_answer(answer))
    raw = console.file.getvalue()  # type: ignore[attr-defined]
    return answer, raw, screen(raw)


@pytest.mark.model
def test_terminal_replaces_the_streamed_words_with_the_verified_answer(
    index_dir, embedder, numbers, monkeypatch
):
    monkeypatch.setenv("TERM", "xterm-256color")
    battery, radio = numbers["battery.txt"], numbers["radio.txt"]
    model = ScriptedChatModel(default=f"{ANSWER} [{radio}].", delay_s=0.05)
    index = Index(index_dir, settings=Settings().replace(**{"answer.output": "text"}),
                  embedder=embedder, chat_model=model)  # fmt: skip
    try:
        answer, raw, final = show_on_terminal(index, BATTERY, terminal())
    finally:
        index.close()
    drawn = CSI.sub("", raw)
    assert f"{ANSWER} [{radio}]." in drawn, "the model's words were streamed"
    assert "checking the citations" in drawn, "and the stage shown under them"
    text = "\n".join(final)
    assert text.count(ANSWER) == 1, text
    assert final[0] == f"{ANSWER}. [{radio}→{battery}]", "the final frame starts with it"
    assert f"[{radio}]." not in text and "checking the citations" not in text
    assert answer.answer in drawn.replace(f"[{radio}→{battery}]", f"[{battery}]")


@pytest.mark.model
def test_a_long_stream_keeps_the_live_area_on_screen(index_dir, embedder, monkeypatch):
    """Words that need more lines than the screen has show their tail, so the live area can
    always be erased whole: nothing streamed stays behind, above the answer."""
    monkeypatch.setenv("TERM", "xterm-256color")
    long = " ".join(f"word{i}" for i in range(300)) + " NOT FOUND"
    index = Index(index_dir, settings=Settings().replace(**{"answer.output": "text",
                                                            "answer.max_tokens": 400}),
                  embedder=embedder, chat_model=ScriptedChatModel(default=long))  # fmt: skip
    try:
        answer, raw, final = show_on_terminal(index, BATTERY, terminal(width=40, height=10))
    finally:
        index.close()
    assert answer.abstained and "word299" in CSI.sub("", raw)
    assert not any("word" in line for line in final), final
    assert final[0].startswith("Not found in your documents.")


# ---- the real tiny generator ----------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_index(index_dir, embedder, tiny_model_path):
    settings = load_settings(preset="tiny", env={}).settings
    index = Index(index_dir, settings=settings, embedder=embedder)
    yield index
    index.close()


@pytest.mark.llm
def test_tiny_model_answer_is_shown_once_on_a_terminal_and_in_a_pipe(
    tiny_index, monkeypatch, isolated_home, embedder
):
    monkeypatch.setenv("TERM", "xterm-256color")
    answer, raw, final = show_on_terminal(tiny_index, BATTERY, terminal(width=100))
    text = "\n".join(final)
    if answer.abstained:
        assert final[0].startswith("Not found in your documents.")
        assert text.count("Not found in your documents.") == 1
    else:
        shown = answer_text(answer)[0].plain
        assert final[0] == shown.splitlines()[0] and text.count(shown) == 1, text
    assert len(CSI.sub("", raw)) > len(text), "the streamed words were drawn, then erased"

    piped = StringIO()
    Console(file=piped, highlight=False, soft_wrap=True).print(render_answer(answer))
    assert ESCAPE not in piped.getvalue()
    assert piped.getvalue().splitlines()[0] == final[0]


@pytest.mark.llm
def test_tiny_model_through_the_cli_prints_its_verified_answer_once(
    index_dir, tiny_model_path, monkeypatch, embedder
):
    monkeypatch.setattr("rag.embed.factory.SentenceTransformerEmbedder", lambda *a, **k: embedder)
    question = "What band does the Kestrel K9 radio use?"
    data = json.loads(ask(index_dir, "--preset", "tiny", "--json", question=question).stdout)
    shown = ask(index_dir, "--preset", "tiny", question=question).stdout
    assert ESCAPE not in shown
    first = shown.splitlines()[0]
    if data["abstained"]:
        assert first.startswith("Not found in your documents.") and "Nearest passages:" in shown
    else:  # the answer as shown is the verified one, its changed citations marked
        unmarked = re.sub(r"\[[\d,]*→(\d+)\]", r"[\1]", re.sub(r" \[\d+✗\]", "", first))
        assert unmarked == data["answer"], (first, data)
        assert "Sources:" in shown
    assert shown.count(first) == 1
    raw = re.sub(r"\s*\[\d+\]", "", data["raw_answer"]).strip()  # the reply as streamed
    not_quotes = "\n".join(line for line in shown.splitlines() if not line.startswith("     “"))
    assert not raw or not_quotes.count(raw) <= 1, "the streamed reply is not printed as well"
