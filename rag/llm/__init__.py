"""Chat models behind one port (`base.ChatModel`): llama.cpp in process, or any
OpenAI-compatible server (`openai_server.OpenAIChatModel`)."""

from rag.llm.base import (
    ChatModel,
    Generation,
    GenerationOptions,
    Message,
    ModelCapabilities,
    Stream,
    TokenLogprob,
    TokenProbabilities,
    capabilities_of,
    generate,
)

__all__ = [
    "ChatModel",
    "Generation",
    "GenerationOptions",
    "Message",
    "ModelCapabilities",
    "Stream",
    "TokenLogprob",
    "TokenProbabilities",
    "capabilities_of",
    "generate",
]
