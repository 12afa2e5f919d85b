"""Chat templates: check messages and build the GGUF's (or a named) Jinja2 chat formatter."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rag.errors import ConfigError
from rag.llm.base import Message

# Chat formats that may be named instead of the GGUF's own template (or pass a Jinja template).
CHAT_FORMATS = ("chatml", "llama-3", "mistral-instruct")


def check_messages(messages: Sequence[Message]) -> list[str]:
    """Return the message contents, or raise ConfigError if a message is malformed."""
    if not messages:
        raise ConfigError("messages must not be empty")
    contents = []
    for i, m in enumerate(messages):
        if not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise ConfigError(f"message {i} needs a string 'role' and 'content', got {dict(m)!r}")
        contents.append(m["content"])
    return contents


def chat_formatter(llama: Any, llama_chat_format: Any, chat_format: str | None) -> Any:
    """Build a Jinja2 chat formatter from the GGUF's template, a known name or a template."""
    if chat_format is None:
        template = llama.metadata.get("tokenizer.chat_template")
        if not template:
            raise ConfigError(
                "this GGUF has no chat template; pass chat_format= one of "
                f"{', '.join(CHAT_FORMATS)} or a Jinja2 template"
            )
    elif "{{" in chat_format or "{%" in chat_format:
        template = chat_format
    else:
        names = {
            "chatml": llama_chat_format.CHATML_CHAT_TEMPLATE,
            "llama-3": llama_chat_format.LLAMA3_INSTRUCT_CHAT_TEMPLATE,
            "mistral-instruct": llama_chat_format.MISTRAL_INSTRUCT_CHAT_TEMPLATE,
        }
        if chat_format not in names:
            raise ConfigError(
                f"unknown chat_format {chat_format!r}; use one of {', '.join(CHAT_FORMATS)} "
                "or a Jinja2 template"
            )
        template = names[chat_format]
    eos, bos = llama.token_eos(), llama.token_bos()
    model = llama._model
    return llama_chat_format.Jinja2ChatFormatter(
        template=template,
        eos_token=model.token_get_text(eos) if eos != -1 else "",
        bos_token=model.token_get_text(bos) if bos != -1 else "",
        stop_token_ids=[eos],
    )
