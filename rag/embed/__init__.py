"""Embedders behind one port (`base.Embedder`): sentence-transformers folders, or an
OpenAI-compatible embeddings server."""

from rag.embed.base import Embedder, EmbedderInfo
from rag.embed.openai_server import OpenAIEmbedder
from rag.embed.sentence_transformers import (
    DEFAULT_EMBEDDER,
    SentenceTransformerEmbedder,
    resolve_embedder,
)

__all__ = [
    "DEFAULT_EMBEDDER",
    "Embedder",
    "EmbedderInfo",
    "OpenAIEmbedder",
    "SentenceTransformerEmbedder",
    "resolve_embedder",
]
