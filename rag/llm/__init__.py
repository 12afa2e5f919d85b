"""Chat models behind one port (`base.ChatModel`): llama.cpp in process today."""

from rag.llm.base import (
    ChatModel,
    Generation,
    GenerationOptions,
    Message,
    Stream,
    TokenProbabilities,
    generate,
)

__all__ = [
    "ChatModel",
    "Generation",
    "GenerationOptions",
    "Message",
    "Stream",
    "TokenProbabilities",
    "generate",
]
