"""Follow-ups made standalone from the conversation (rag.rewrite), with a scripted model."""

from __future__ import annotations

import pytest

from rag.errors import ConfigError
from rag.rewrite import MAX_TURNS, standalone_question
from tests.scripted_model import ScriptedChatModel

HISTORY = [("user", "How long is the K2 warranty?"), ("assistant", "Two years [1].")]


def test_without_history_the_question_is_kept_and_the_model_not_asked():
    model = ScriptedChatModel(default="something else")
    assert standalone_question(model, [], "How long is the K2 warranty?") == (
        "How long is the K2 warranty?"
    )
    assert model.prompts == []


def test_the_rewrite_sees_the_recent_turns_and_loses_labels_and_quotes():
    model = ScriptedChatModel(default='Rewritten question: "How long is the K3 warranty?"')
    assert standalone_question(model, HISTORY, "and the K3?") == "How long is the K3 warranty?"
    prompt = model.prompts[0][-1]["content"]
    assert "user: How long is the K2 warranty?" in prompt and "assistant: Two years [1]." in prompt
    assert "Last question: and the K3?" in prompt
    assert model.options[0].temperature == 0.0 and "\n" in model.options[0].stop


def test_only_the_last_turns_are_shown():
    model = ScriptedChatModel(default="Q?")
    turns = [("user", f"question number {i}") for i in range(MAX_TURNS + 4)]
    standalone_question(model, turns, "and then?")
    prompt = model.prompts[0][-1]["content"]
    assert "question number 0\n" not in prompt and f"question number {MAX_TURNS + 3}" in prompt


def test_an_empty_rewrite_keeps_the_question():
    model = ScriptedChatModel(default="")
    assert standalone_question(model, HISTORY, "and the K3?") == "and the K3?"


def test_an_unknown_role_is_refused():
    with pytest.raises(ConfigError, match="history role 'wizard'"):
        standalone_question(ScriptedChatModel(), [("wizard", "hi")], "and the K3?")
