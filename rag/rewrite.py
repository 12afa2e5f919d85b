"""Follow-ups made standalone: "and the K3?" → "How long is the warranty of the K3?".

Retrieval sees one question, not a conversation; a follow-up that leans on earlier turns
finds nothing by itself. `standalone_question` asks the chat model to rewrite it from the
recent turns (the conversation is data to the model, never instructions).

>>> standalone_question(model, [("user", "How long is the K2 warranty?"),
...                             ("assistant", "Two years [1].")], "and the K3?")  # doctest: +SKIP
'How long is the K3 warranty?'
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rag.errors import ConfigError
from rag.llm.base import ChatModel, GenerationOptions, generate
from rag.prompts import load_prompt

PROMPT = "rewrite-v1"
MAX_TURNS = 6  # the most recent turns shown to the model
MAX_TURN_CHARS = 600  # a long answer is cut: the rewrite needs its subject, not all of it
ROLES = ("user", "assistant")

Turn = tuple[str, str]  # (role, text)


def standalone_question(
    model: ChatModel, history: Sequence[Turn], question: str, *, max_tokens: int = 96
) -> str:
    """Rewrite `question` so it stands without `history` (earlier (role, text) turns, oldest
    first); with no history it is returned as is. Raise ConfigError for an unknown role."""
    turns = [(role, text.strip()) for role, text in history if text.strip()]
    for role, _ in turns:
        if role not in ROLES:
            raise ConfigError(f"history role {role!r} must be one of {', '.join(ROLES)}")
    if not turns:
        return question
    shown = "\n".join(f"{role}: {_cut(text)}" for role, text in turns[-MAX_TURNS:])
    messages = load_prompt(PROMPT).messages(shown, question.strip())
    options = GenerationOptions(max_tokens=max_tokens, temperature=0.0, stop=("\n",))
    return _clean(generate(model, messages, options).text) or question


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_TURN_CHARS else text[:MAX_TURN_CHARS].rstrip() + " …"


_LABEL = re.compile(r"^(rewritten question|question|standalone question)\s*:\s*", re.I)


def _clean(reply: str) -> str:
    """The first line of the reply, without a label or wrapping quotes."""
    line = next((ln.strip() for ln in reply.strip().splitlines() if ln.strip()), "")
    line = _LABEL.sub("", line).strip()
    if len(line) >= 2 and line[0] == line[-1] and line[0] in "\"'`":
        line = line[1:-1].strip()
    return line
