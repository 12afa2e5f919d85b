"""Yes/no questions are recognised, and a verdict reads as one checkable sentence."""

from __future__ import annotations

import pytest

from rag.verdict import is_yes_no_question, verdict_text


@pytest.mark.parametrize(
    "question",
    [
        "Does aspirin lower the risk of stroke?",
        "Is the Kestrel K9 waterproof?",
        "Can I use rechargeable cells?",
        '"Should the sensor be calibrated monthly?"',
        "Are statins effective or not in the elderly?",
        "Didn't the trial stop early?",
    ],
)
def test_yes_no_questions_are_recognised(question):
    assert is_yes_no_question(question)


@pytest.mark.parametrize(
    "question",
    [
        "Which airline operated flight 214?",
        "How long does the battery last?",
        "Is the display in knots or in metres per second?",
        "What does error E07 mean?",
        "",
    ],
)
def test_other_questions_are_not(question):
    assert not is_yes_no_question(question)


def test_verdict_text_joins_the_verdict_and_its_sentence():
    assert verdict_text("no", "Aspirin did not lower it.") == "No: aspirin did not lower it."
    assert verdict_text("maybe", "NATO was unsure.") == "Maybe: NATO was unsure."
    assert verdict_text("yes", "") == "Yes"
