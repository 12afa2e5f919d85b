"""The ask pipeline, exactly: a real index and embedder, a scripted chat model.

Every abstain branch, the P(found) gate, strict mode, source order, the context budget,
per-call settings, streaming, citation repair and the statistics an answer carries are pinned
with replies written in advance, so each assertion is exact and unconditional.

The documents are one sentence of twelve words each, so every source block the model is
shown costs the same number of scripted (whitespace) tokens.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rag import Index
from rag.ask import NOT_FOUND, SIGNAL_NO_PROBABILITIES, SIGNAL_P_FOUND, SIGNAL_TEXT
from rag.llm.base import TokenProbabilities
from rag.prompts import format_source, load_prompt
from rag.settings import AnswerSettings, Settings
from tests.scripted_model import ScriptedChatModel, ScriptedProbabilityModel, words

pytestmark = pytest.mark.model

# file name -> its one fact (twelve words); .md files get a heading above it
FACTS = {
    "battery.md": "The Kestrel K9 battery lasts 41 months on two AA lithium cells.",
    "radio.txt": "The Kestrel K9 radio transmits on the 868 MHz band in Europe.",
    "mast.md": "The Kestrel K9 mast is mounted with one M6 stainless steel bracket.",
    "warranty.txt": "The Kestrel K9 warranty covers repairs for three full years after purchase.",
    "display.md": "The Kestrel K9 display shows the wind speed in nautical knots only.",
    "sensor.txt": "The Kestrel K9 humidity sensor is calibrated at the factory in Oslo.",
    "errors.txt": "The Kestrel K9 shows error E4 when the sensor is not found.",
}
BATTERY = "How long does the Kestrel K9 battery last?"
RADIO = "What band does the Kestrel K9 radio use?"
OFF_TOPIC = "What is the capital of Peru?"
ERROR_E4 = "What does error E4 mean on the Kestrel K9?"
BATTERY_REPLY = "The Kestrel K9 battery lasts 41 months [1]."
BATTERY_JSON = json.dumps(
    {"found": True, "answer": "The Kestrel K9 battery lasts 41 months.", "sources": [1]}
)
UNSUPPORTED = "The moon is made of green cheese [1]."
NOT_SUPPORTED = "the answer is not supported by the sources"
NO_ANSWER = "the model found no answer in the sources"
SOURCE_TAG = re.compile(r'<source id="(\d+)" from="([^"]+)">')


@dataclass
class Corpus:
    """The shared index directory, the documents it holds and the embedder it was built with."""

    index_dir: Path
    docs: dict[str, str]  # file name -> its path as the index stores it
    embedder: object
    opened: list[Index] = field(default_factory=list)

    def open(self, model: ScriptedChatModel, **answer: object) -> Index:
        """An Index over the shared directory with `model`; `answer` sets its answer settings."""
        settings = Settings().replace(**{f"answer.{k}": v for k, v in answer.items()})
        index = Index(self.index_dir, settings=settings, embedder=self.embedder,
                      chat_model=model)  # fmt: skip
        self.opened.append(index)
        return index




@pytest.fixture(scope="module")
def corpus(tmp_path_factory, embedder, one_torch_thread) -> Corpus:
    assert {words(fact) for fact in FACTS.values()} == {12}  # equal source blocks
    docs = tmp_path_factory.mktemp("docs")
    for name, fact in FACTS.items():
        heading = f"# {Path(name).stem.title()}\n\n" if name.endswith(".md") else ""
        (docs / name).write_text(f"{heading}{fact}\n")
    index_dir = tmp_path_factory.mktemp("index")
    index = Index(index_dir, settings=Settings(), embedder=embedder, chat_model=ScriptedChatModel())
    report = index.ingest([docs])
    assert report.failed == []
    paths = {Path(hit.path).name: hit.path for hit in index.search("Kestrel K9", k=len(FACTS))}
    assert sorted(paths) == sorted(FACTS)
    index.close()
    shared = Corpus(index_dir, paths, embedder)
    yield shared
    for opened in shared.opened:
        opened.close()


def ask(corpus: Corpus, model: ScriptedChatModel, question: str, **answer: object):
    """Ask through `Index.ask` with per-call AnswerSettings(**answer)."""
    return corpus.open(model).ask(question, settings=AnswerSettings(**answer))


def prompt_sources(model: ScriptedChatModel) -> list[tuple[int, str]]:
    """(id, path) of every source block in the last prompt the model received."""
    user = model.prompts[-1][-1]["content"]
    return [(int(n), path) for n, path in SOURCE_TAG.findall(user)]


def names(sources) -> list[str]:
    return [Path(s.path).name for s in sources]


# ---- abstain branches ---------------------------------------------------------------------


def test_weak_evidence_abstains_without_calling_the_model(corpus):
    model = ScriptedChatModel(default=BATTERY_REPLY)
    answer = ask(corpus, model, BATTERY, min_evidence=0.99)
    top3 = corpus.open(model).search(BATTERY, k=8)[:3]
    assert answer.abstained is True
    assert answer.answer == NOT_FOUND
    assert answer.abstain_reason == "weak evidence"
    assert answer.sources == []
    assert [s.path for s in answer.nearest] == [h.path for h in top3]
    assert [s.n for s in answer.nearest] == [1, 2, 3]
    assert 0.5 < answer.evidence < 0.99
    assert model.prompts == []
    assert answer.generation is None


def test_an_off_topic_question_is_weak_evidence_at_the_default_threshold(corpus):
    model = ScriptedChatModel(default=BATTERY_REPLY)
    answer = ask(corpus, model, OFF_TOPIC)
    assert answer.abstained is True
    assert answer.abstain_reason == "weak evidence"
    assert answer.evidence < AnswerSettings().min_evidence
    assert len(answer.nearest) == 3
    assert model.prompts == []


def test_no_passage_fits_a_tiny_context_budget(corpus):
    model = ScriptedChatModel(default=BATTERY_REPLY)
    answer = ask(corpus, model, BATTERY, context_tokens=3)
    assert answer.abstained is True
    assert answer.abstain_reason == "no passage fits the context"
    assert answer.sources == []
    assert names(answer.nearest)[0] == "battery.md"
    assert len(answer.nearest) == 3
    assert model.prompts == []
    assert answer.generation is None


def test_no_passage_fits_a_tiny_context_window(corpus):
    max_tokens = 16
    fixed = ScriptedChatModel().chat_prompt_tokens(load_prompt("answer-v3").messages("", BATTERY))
    model = ScriptedChatModel(default=BATTERY_REPLY, n_ctx=fixed + max_tokens + 5)
    answer = ask(corpus, model, BATTERY, max_tokens=max_tokens)
    assert answer.abstained is True
    assert answer.abstain_reason == "no passage fits the context"
    assert names(answer.nearest)[0] == "battery.md"
    assert model.prompts == []


def test_low_p_found_abstains_before_the_answer_is_streamed(corpus):
    model = ScriptedProbabilityModel(default=BATTERY_JSON, found_p={BATTERY: 0.2})
    tokens: list[str] = []
    answer = corpus.open(model).ask(
        BATTERY, settings=AnswerSettings(output="json", min_found=0.5), on_token=tokens.append
    )
    assert answer.abstained is True
    assert answer.abstain_reason == "the model is not confident the sources answer it"
    assert answer.found_p == 0.2
    assert answer.abstention_signal == SIGNAL_P_FOUND
    assert model.probed == 1
    assert model.prompts == [], "only next_token_probabilities ran, nothing was streamed"
    assert tokens == []
    assert answer.generation is None
    assert answer.sources == []
    assert sorted(names(answer.nearest)) == sorted(FACTS)  # the packed sources it read
    assert answer.usage.prompt_tokens > 0 and answer.usage.context_tokens > 0


def test_high_p_found_passes_the_gate_and_the_answer_is_streamed(corpus):
    model = ScriptedProbabilityModel(default=BATTERY_JSON, found_p={BATTERY: 0.8})
    answer = ask(corpus, model, BATTERY, output="json", min_found=0.5)
    assert answer.abstained is False
    assert answer.found_p == 0.8
    assert answer.abstention_signal == SIGNAL_P_FOUND
    assert model.probed == 1
    assert len(model.prompts) == 1
    assert answer.answer == "The Kestrel K9 battery lasts 41 months. [1]"


def test_the_model_replying_not_found_in_text_abstains(corpus):
    model = ScriptedChatModel(default="NOT FOUND")
    answer = ask(corpus, model, BATTERY)
    assert answer.abstained is True
    assert answer.abstain_reason == NO_ANSWER
    assert answer.raw_answer == "NOT FOUND"
    assert len(model.prompts) == 1
    assert answer.generation is not None and answer.generation.text == "NOT FOUND"
    assert sorted(names(answer.nearest)) == sorted(FACTS)


@pytest.mark.parametrize(
    "reply",
    [
        '{"found": false, "answer": "", "sources": []}',
        '{"found": false, "answer": "The Kestrel K9 battery lasts 41 months.", "sources": [1]}',
        '{"found": true, "answer": "", "sources": [1]}',
    ],
    ids=["not-found", "not-found-with-an-answer", "found-but-empty"],
)
def test_a_json_reply_without_a_found_answer_abstains(corpus, reply):
    model = ScriptedChatModel(default=reply)
    tokens: list[str] = []
    answer = corpus.open(model).ask(
        BATTERY, settings=AnswerSettings(output="json"), on_token=tokens.append
    )
    assert answer.abstained is True
    assert answer.abstain_reason == NO_ANSWER
    assert answer.raw_answer == "NOT FOUND"
    assert len(model.prompts) == 1
    assert "".join(tokens) == ""


@pytest.mark.parametrize("output", ["text", "json"])
def test_a_supported_answer_that_says_not_found_is_not_an_abstention(corpus, output):
    sentence = "Error E4 means the sensor is not found."
    reply = (
        f"{sentence[:-1]} [1]."
        if output == "text"
        else json.dumps({"found": True, "answer": sentence, "sources": [1]})
    )
    model = ScriptedChatModel(default=reply)
    answer = ask(corpus, model, ERROR_E4, output=output)
    assert answer.abstain_reason is None  # today: "the model found no answer in the sources"
    assert answer.abstained is False
    assert names(answer.sources)[0] == "errors.txt"
    assert answer.answer == f"{sentence} [1]"


def test_an_answer_no_source_supports_abstains(corpus):
    model = ScriptedChatModel(default=UNSUPPORTED)
    answer = ask(corpus, model, BATTERY)
    assert answer.abstained is True
    assert answer.abstain_reason == NOT_SUPPORTED
    assert answer.answer == NOT_FOUND
    assert answer.raw_answer == UNSUPPORTED
    assert answer.sentences == []
    assert len(model.prompts) == 1


def test_truncated_json_counts_as_no_answer(corpus):
    model = ScriptedChatModel(default=BATTERY_JSON)
    answer = ask(corpus, model, BATTERY, output="json", max_tokens=6)
    assert answer.abstained is True
    assert answer.abstain_reason == NO_ANSWER
    assert answer.stop_reason == "truncated"
    assert answer.generation is not None
    assert answer.generation.stop_reason == "truncated"
    assert answer.generation.completion_tokens == 6
    assert answer.raw_answer == ""
    assert len(model.prompts) == 1


# ---- the abstention signal ----------------------------------------------------------------


def test_json_output_without_token_probabilities_has_no_p_found_gate(corpus):
    model = ScriptedChatModel(default=BATTERY_JSON)
    assert not isinstance(model, TokenProbabilities)
    answer = ask(corpus, model, BATTERY, output="json", min_found=0.99)
    assert answer.abstained is False
    assert answer.found_p is None
    assert answer.abstention_signal == SIGNAL_NO_PROBABILITIES
    assert answer.abstention_signal.startswith("none: the model gives no token probabilities")
    assert answer.answer == "The Kestrel K9 battery lasts 41 months. [1]"
    assert len(model.prompts) == 1


def test_text_output_never_asks_for_p_found(corpus):
    model = ScriptedProbabilityModel(default=BATTERY_REPLY, default_found_p=0.0)
    answer = ask(corpus, model, BATTERY, output="text", min_found=0.99)
    assert answer.abstained is False
    assert answer.found_p is None
    assert answer.abstention_signal == SIGNAL_TEXT
    assert model.probed == 0


# ---- strict -------------------------------------------------------------------------------


TWO_SENTENCES = f"{BATTERY_REPLY} {UNSUPPORTED}"
SUPPORTED_SENTENCE = "The Kestrel K9 battery lasts 41 months."


def test_strict_drops_the_unsupported_sentence(corpus):
    model = ScriptedChatModel(default=TWO_SENTENCES)
    answer = ask(corpus, model, BATTERY, strict=True)
    assert answer.abstained is False
    assert answer.raw_answer == TWO_SENTENCES
    assert [s.text for s in answer.sentences] == [SUPPORTED_SENTENCE]
    assert [s.supported for s in answer.sentences] == [True]
    assert answer.answer == f"{SUPPORTED_SENTENCE} [1]"


def test_without_strict_the_unsupported_sentence_is_kept_and_flagged(corpus):
    model = ScriptedChatModel(default=TWO_SENTENCES)
    answer = ask(corpus, model, BATTERY, strict=False)
    assert answer.abstained is False
    moon = "The moon is made of green cheese."
    assert [s.text for s in answer.sentences] == [SUPPORTED_SENTENCE, moon]
    assert [s.supported for s in answer.sentences] == [True, False]
    assert answer.answer == f"{SUPPORTED_SENTENCE} [1] {moon} [1]"


# ---- what the model is shown ----------------------------------------------------------------


def test_sources_are_numbered_in_lost_in_the_middle_order_of_retrieval_rank(corpus):
    model = ScriptedChatModel(default=BATTERY_REPLY)
    answer = ask(corpus, model, BATTERY, candidates=5)
    ranked = corpus.open(model).search(BATTERY, k=5)
    assert len(ranked) == 5
    expected = [ranked[r - 1].path for r in (1, 3, 5, 4, 2)]
    assert prompt_sources(model) == list(enumerate(expected, start=1))
    assert [s.path for s in answer.sources] == expected
    assert [s.n for s in answer.sources] == [1, 2, 3, 4, 5]
    assert answer.sources[0].path == corpus.docs["battery.md"]


def test_the_context_budget_is_counted_with_the_json_prompt_that_is_sent(corpus):
    max_tokens = 20
    counter = ScriptedChatModel()
    json_fixed = counter.chat_prompt_tokens(load_prompt("answer-json-v1").messages("", BATTERY))
    text_fixed = counter.chat_prompt_tokens(load_prompt("answer-v3").messages("", BATTERY))
    block = words(format_source(1, corpus.docs["battery.md"], FACTS["battery.md"]))
    budget = 2 * block + 8  # two sources fit; a third would need `block` more
    # with the text prompt counted the budget grows by this much and takes a third source
    assert (budget + json_fixed - text_fixed) // block == 3
    n_ctx = json_fixed + max_tokens + budget
    model = ScriptedChatModel(default=BATTERY_JSON, n_ctx=n_ctx)
    answer = ask(corpus, model, BATTERY, output="json", max_tokens=max_tokens)
    assert answer.abstained is False
    assert model.prompts[-1][0]["content"] == load_prompt("answer-json-v1").system
    assert len(answer.sources) == 2
    assert answer.usage.context_tokens == 2 * block
    assert answer.usage.context_tokens <= n_ctx - json_fixed - max_tokens
    sent = model.chat_prompt_tokens(model.prompts[-1])
    assert sent == json_fixed + answer.usage.context_tokens
    assert sent + max_tokens <= n_ctx
    assert answer.usage.prompt_tokens == sent


def test_the_context_budget_caps_what_is_packed(corpus):
    block = words(format_source(1, corpus.docs["battery.md"], FACTS["battery.md"]))
    model = ScriptedChatModel(default=BATTERY_REPLY)
    answer = ask(corpus, model, BATTERY, context_tokens=3 * block + 1)
    assert len(answer.sources) == 3
    assert answer.usage.context_tokens == 3 * block
    assert len(prompt_sources(model)) == 3


# ---- per-call settings ----------------------------------------------------------------------


def test_ask_honours_the_per_call_support_threshold(corpus):
    reply = "The battery runs for 41 months [1]."  # supported at 0.75 (3 of 4 content words)
    strict_model = ScriptedChatModel(default=reply)
    accepted = corpus.open(strict_model, support_threshold=0.99).ask(
        BATTERY, settings=AnswerSettings(support_threshold=0.5)
    )
    assert accepted.abstained is False
    assert accepted.answer == "The battery runs for 41 months. [1]"
    assert [s.supported for s in accepted.sentences] == [True]
    lenient_model = ScriptedChatModel(default=reply)
    refused = corpus.open(lenient_model, support_threshold=0.5).ask(
        BATTERY, settings=AnswerSettings(support_threshold=0.99)
    )
    assert refused.abstained is True
    assert refused.abstain_reason == NOT_SUPPORTED


def test_ask_without_settings_uses_the_index_answer_settings(corpus):
    reply = "The battery runs for 41 months [1]."
    refused = corpus.open(ScriptedChatModel(default=reply), support_threshold=0.99).ask(BATTERY)
    assert refused.abstained is True
    assert refused.abstain_reason == NOT_SUPPORTED
    accepted = corpus.open(ScriptedChatModel(default=reply), support_threshold=0.5).ask(BATTERY)
    assert accepted.abstained is False


# ---- streaming ------------------------------------------------------------------------------


def test_text_output_streams_every_piece_in_order(corpus):
    model = ScriptedChatModel(default=BATTERY_REPLY)
    tokens: list[str] = []
    answer = corpus.open(model).ask(BATTERY, settings=AnswerSettings(), on_token=tokens.append)
    assert tokens == ["The", " Kestrel", " K9", " battery", " lasts", " 41", " months", " [1]."]
    assert "".join(tokens) == answer.raw_answer == BATTERY_REPLY


def test_json_output_streams_the_answer_field_then_the_citations(corpus):
    model = ScriptedChatModel(default=BATTERY_JSON)
    tokens: list[str] = []
    answer = corpus.open(model).ask(
        BATTERY, settings=AnswerSettings(output="json"), on_token=tokens.append
    )
    assert tokens == ["The", " Kestrel", " K9", " battery", " lasts", " 41", " months.", " [1]"]
    assert "".join(tokens) == answer.raw_answer == "The Kestrel K9 battery lasts 41 months. [1]"
    assert not any("found" in t or "{" in t for t in tokens)


def test_events_come_in_order_with_what_was_read(corpus):
    model = ScriptedChatModel(default=BATTERY_REPLY)
    events: list[tuple[str, dict]] = []
    answer = corpus.open(model).ask(
        BATTERY, settings=AnswerSettings(), on_event=lambda name, data: events.append((name, data))
    )
    assert [name for name, _ in events] == ["retrieving", "reading", "answering", "verifying"]
    assert events[1][1] == {"sources": len(FACTS), "tokens": answer.usage.context_tokens}
    assert answer.usage.context_tokens > 0


def test_weak_evidence_reports_only_retrieving(corpus):
    events: list[str] = []
    ask_index = corpus.open(ScriptedChatModel())
    ask_index.ask(BATTERY, settings=AnswerSettings(min_evidence=0.99),
                  on_event=lambda name, data: events.append(name))  # fmt: skip
    assert events == ["retrieving"]


# ---- citation repair ------------------------------------------------------------------------


def test_a_citation_of_a_source_not_given_is_removed(corpus):
    model = ScriptedChatModel(default="The Kestrel K9 battery lasts 41 months [9].")
    answer = ask(corpus, model, BATTERY)
    assert answer.abstained is False
    assert answer.removed_citations == [9]
    [sentence] = answer.sentences
    assert sentence.invalid == [9]
    assert sentence.citations == [1]
    assert answer.answer == "The Kestrel K9 battery lasts 41 months. [1]"


def test_a_wrong_citation_is_reattributed_to_the_supporting_source(corpus):
    model = ScriptedChatModel(default=BATTERY_REPLY)
    ask(corpus, model, BATTERY)  # learn which number each document gets
    number = {Path(path).name: n for n, path in prompt_sources(model)}
    assert number["battery.md"] == 1
    wrong = number["mast.md"]
    model = ScriptedChatModel(default=f"The Kestrel K9 battery lasts 41 months [{wrong}].")
    answer = ask(corpus, model, BATTERY)
    assert answer.abstained is False
    [sentence] = answer.sentences
    assert sentence.repaired is True
    assert sentence.citations == [1]
    assert sentence.supported is True
    assert answer.removed_citations == []
    assert answer.answer == "The Kestrel K9 battery lasts 41 months. [1]"


def test_a_cited_source_that_does_not_back_the_sentence_is_unsupporting(corpus):
    model = ScriptedChatModel(default=BATTERY_REPLY)
    ask(corpus, model, BATTERY)
    wrong = {Path(path).name: n for n, path in prompt_sources(model)}["mast.md"]
    model = ScriptedChatModel(default=f"The Kestrel K9 battery lasts 41 months [1][{wrong}].")
    answer = ask(corpus, model, BATTERY)
    assert answer.abstained is False
    [sentence] = answer.sentences
    assert sentence.citations == [1]
    assert sentence.unsupporting == [wrong]
    assert sentence.repaired is False
    assert answer.answer == "The Kestrel K9 battery lasts 41 months. [1]"


# ---- results are values ---------------------------------------------------------------------


def test_each_answer_carries_its_own_generation_statistics(corpus):
    radio_reply = "The Kestrel K9 radio transmits on the 868 MHz band [1]."
    model = ScriptedChatModel(replies={BATTERY: BATTERY_REPLY, RADIO: radio_reply})
    index = corpus.open(model)
    battery = index.ask(BATTERY, settings=AnswerSettings())
    radio = index.ask(RADIO, settings=AnswerSettings())
    assert battery.generation is not None and radio.generation is not None
    assert battery.generation.text == BATTERY_REPLY
    assert battery.generation.completion_tokens == words(BATTERY_REPLY) == 8
    assert radio.generation.text == radio_reply
    assert radio.generation.completion_tokens == words(radio_reply) == 11
    assert battery.generation.stop_reason == radio.generation.stop_reason == "complete"
    assert battery.usage.completion_tokens == 8 and radio.usage.completion_tokens == 11
    assert battery.usage.prompt_tokens == model.chat_prompt_tokens(model.prompts[0])
    assert radio.usage.prompt_tokens == model.chat_prompt_tokens(model.prompts[1])
    assert battery.stop_reason == "complete"
    assert names(radio.sources)[0] == "radio.txt"


def test_retrieval_timings_travel_with_the_answer(corpus):
    answer = ask(corpus, ScriptedChatModel(default=BATTERY_REPLY), BATTERY)
    assert {"bm25", "dense", "fusion"} <= set(answer.retrieval_timings)
    assert all(v >= 0 for v in answer.retrieval_timings.values())
    weak = ask(corpus, ScriptedChatModel(), BATTERY, min_evidence=0.99)
    assert {"bm25", "dense", "fusion"} <= set(weak.retrieval_timings)
    assert answer.to_dict()["retrieval_timings"] == answer.retrieval_timings


# ---- yes/no questions ---------------------------------------------------------------------

WARRANTY_YES_NO = "Does the Kestrel K9 warranty cover repairs?"
WARRANTY_VERDICT = json.dumps({
    "found": True,
    "answer": "The Kestrel K9 warranty covers repairs for three full years after purchase.",
    "verdict": "yes",
    "sources": [1],
})  # fmt: skip


def test_a_yes_no_question_is_answered_with_a_verdict_and_its_sentence(corpus):
    model = ScriptedChatModel(default=WARRANTY_VERDICT)
    answer = ask(corpus, model, WARRANTY_YES_NO, output="json")
    assert answer.abstain_reason is None
    assert answer.answer.startswith("Yes: the Kestrel K9 warranty covers repairs")
    [sentence] = answer.sentences
    assert sentence.supported and len(sentence.citations) == 1
    cited = answer.sources[sentence.citations[0] - 1]
    assert Path(cited.path).name == "warranty.txt"
    assert model.prompts[-1][0]["content"] == load_prompt("verdict-json-v1").system
    schema = model.options[-1].response_format["schema"]
    assert schema["properties"]["verdict"]["enum"] == ["yes", "no", "maybe"]
    assert schema["required"] == ["found", "answer", "verdict", "sources"]


def test_a_wh_question_keeps_the_plain_answer_prompt(corpus):
    model = ScriptedChatModel(default=BATTERY_JSON)
    ask(corpus, model, BATTERY, output="json")
    assert model.prompts[-1][0]["content"] == load_prompt("answer-json-v1").system
    assert "verdict" not in model.options[-1].response_format["schema"]["properties"]


def test_verdicts_can_be_turned_off(corpus):
    model = ScriptedChatModel(default=BATTERY_JSON)
    ask(corpus, model, WARRANTY_YES_NO, output="json", verdicts=False)
    assert model.prompts[-1][0]["content"] == load_prompt("answer-json-v1").system


def test_a_verdict_resting_on_a_sentence_no_source_states_is_not_supported(corpus):
    invented = json.loads(WARRANTY_VERDICT) | {"answer": "It covers 12 years of Acme parts."}
    answer = ask(corpus, ScriptedChatModel(default=json.dumps(invented)), WARRANTY_YES_NO,
                 output="json")  # fmt: skip
    assert answer.abstain_reason == NOT_SUPPORTED
