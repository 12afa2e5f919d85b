"""Versioned prompt templates: `answer-v1.txt` holds a system part and a user part."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

from rag.errors import ConfigError

DEFAULT_PROMPT = "answer-v3"
NOT_FOUND_MARKER = "NOT FOUND"


@dataclass(frozen=True)
class PromptTemplate:
    """A chat prompt: fixed system text, and a user text with {sources} and {question}."""

    name: str
    system: str
    user: str

    def messages(self, sources: str, question: str) -> list[dict[str, str]]:
        user = self.user.replace("{sources}", sources).replace("{question}", question)
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]


@cache
def load_prompt(name: str = DEFAULT_PROMPT) -> PromptTemplate:
    """Read a packaged template by name (e.g. "answer-v1")."""
    try:
        text = resources.files("rag.prompts").joinpath(f"{name}.txt").read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"no prompt template named {name!r} in rag/prompts") from None
    parts = text.split("=== user ===")
    if len(parts) != 2 or "=== system ===" not in parts[0]:
        raise ConfigError(f"prompt {name!r} needs '=== system ===' and '=== user ===' parts")
    system = parts[0].split("=== system ===", 1)[1].strip()
    return PromptTemplate(name=name, system=system, user=parts[1].strip())


def format_source(n: int, location: str, text: str) -> str:
    """Wrap one source in delimiters the text inside cannot close."""
    safe = text.replace("</source", "</ source").replace("<source", "< source")
    return f'<source id="{n}" from="{location}">\n{safe.strip()}\n</source>'
