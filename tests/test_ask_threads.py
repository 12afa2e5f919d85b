"""Two threads asking one `Index` at once each get their own, correct answer.

The scripted model sleeps between pieces so the two streams overlap; a barrier starts both
questions together, and several rounds make the interleaving happen (checked, not hoped for).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rag import Index
from rag.settings import AnswerSettings, Settings
from tests.scripted_model import ScriptedChatModel, words

pytestmark = pytest.mark.model

FACTS = {
    "battery.md": "The Kestrel K9 battery lasts 41 months on two AA lithium cells.",
    "radio.txt": "The Kestrel K9 radio transmits on the 868 MHz band in Europe.",
    "mast.md": "The Kestrel K9 mast is mounted with one M6 stainless steel bracket.",
}
# question -> (its document, the scripted reply); the replies differ in length and words
QUESTIONS = {
    "How long does the Kestrel K9 battery last?": (
        "battery.md",
        "The Kestrel K9 battery lasts 41 months [1].",
    ),
    "What band does the Kestrel K9 radio use?": (
        "radio.txt",
        "The Kestrel K9 radio transmits on the 868 MHz band in Europe [1].",
    ),
}
ROUNDS = 5
TIMEOUT_S = 60.0  # per round; a deadlock fails the test instead of hanging it




@pytest.fixture(scope="module")
def shared_index(tmp_path_factory, embedder, one_torch_thread):
    docs = tmp_path_factory.mktemp("docs")
    for name, fact in FACTS.items():
        (docs / name).write_text(f"{fact}\n")
    model = ScriptedChatModel(
        replies={q: reply for q, (_, reply) in QUESTIONS.items()}, delay_s=0.01
    )
    index = Index(tmp_path_factory.mktemp("index"), settings=Settings(), embedder=embedder,
                  chat_model=model)  # fmt: skip
    assert index.ingest([docs]).failed == []
    yield index, model
    index.close()


@dataclass
class Asked:
    """What one thread saw: its answer, its streamed pieces (with when each came), errors."""

    question: str
    answer: object = None
    tokens: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    error: BaseException | None = None

    def on_token(self, piece: str) -> None:
        self.tokens.append(piece)
        self.times.append(time.perf_counter())


def ask_together(index: Index, questions: list[str]) -> list[Asked]:
    """Ask every question on its own thread, all released by one barrier."""
    barrier = threading.Barrier(len(questions), timeout=TIMEOUT_S)
    results = [Asked(q) for q in questions]

    def run(asked: Asked) -> None:
        try:
            barrier.wait()
            asked.answer = index.ask(asked.question, settings=AnswerSettings(candidates=1),
                                     on_token=asked.on_token)  # fmt: skip
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            asked.error = exc

    threads = [threading.Thread(target=run, args=(a,), daemon=True) for a in results]
    for t in threads:
        t.start()
    deadline = time.monotonic() + TIMEOUT_S
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), f"a thread still runs after {TIMEOUT_S}s"
    return results


def overlapped(a: Asked, b: Asked) -> bool:
    """Whether the two streams were producing pieces at the same time."""
    return a.times[0] < b.times[-1] and b.times[0] < a.times[-1]


def test_two_threads_asking_one_index_get_their_own_answers(shared_index):
    index, model = shared_index
    questions = list(QUESTIONS)
    overlaps = 0
    for round_ in range(ROUNDS):
        results = ask_together(index, questions)
        for asked in results:
            assert asked.error is None, f"round {round_}: {asked.question}: {asked.error!r}"
            doc, reply = QUESTIONS[asked.question]
            answer = asked.answer
            assert answer.question == asked.question
            assert answer.abstained is False, (round_, asked.question, answer.abstain_reason)
            assert [Path(s.path).name for s in answer.sources] == [doc]
            assert answer.sources[0].text == FACTS[doc]
            assert answer.raw_answer == reply
            assert answer.answer == reply.replace(" [1].", ". [1]")
            assert [s.citations for s in answer.sentences] == [[1]]
            assert answer.generation is not None
            assert answer.generation.text == reply
            assert answer.generation.completion_tokens == words(reply)
            assert answer.usage.completion_tokens == words(reply)
            assert asked.tokens == [w if i == 0 else " " + w for i, w in
                                    enumerate(reply.split(" "))]  # fmt: skip
            assert "".join(asked.tokens) == reply
        overlaps += overlapped(*results)
    # each question's prompt held its own document only, in every round
    assert len(model.prompts) == ROUNDS * len(questions)
    for prompt in model.prompts:
        user = prompt[-1]["content"]
        [question] = [q for q in questions if f"Question: {q}" in user]
        doc = QUESTIONS[question][0]
        assert FACTS[doc] in user
        assert all(FACTS[other] not in user for other in FACTS if other != doc)
    assert overlaps >= 1, "the two streams never overlapped: the test did not run concurrently"
