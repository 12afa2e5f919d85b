"""Embedders behind one port (`base.Embedder`); sentence-transformers folders today."""

from rag.embed.base import Embedder, EmbedderInfo
from rag.embed.sentence_transformers import (
    DEFAULT_EMBEDDER,
    SentenceTransformerEmbedder,
    resolve_embedder,
)

__all__ = [
    "DEFAULT_EMBEDDER",
    "Embedder",
    "EmbedderInfo",
    "SentenceTransformerEmbedder",
    "resolve_embedder",
]
