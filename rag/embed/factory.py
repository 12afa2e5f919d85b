"""Pick the local embedder's runtime from the settings: torch (sentence-transformers) or ONNX
Runtime."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rag.embed.base import Embedder
from rag.embed.sentence_transformers import SentenceTransformerEmbedder

if TYPE_CHECKING:
    from rag.settings import IngestSettings


def local_embedder(spec: str | Path | None, ingest: IngestSettings) -> Embedder:
    """The embedder of a local model folder (or packaged name) as `ingest.encoder` says.

    >>> from rag.settings import IngestSettings
    >>> local_embedder(None, IngestSettings()).info.encoder
    'torch'
    """
    if ingest.encoder == "onnx":
        from rag.embed.onnx_runtime import OnnxEmbedder

        return OnnxEmbedder(spec, batch_size=ingest.batch_size,
                            query_encoder=ingest.query_encoder)  # fmt: skip
    return SentenceTransformerEmbedder(spec, dtype=ingest.dtype, batch_size=ingest.batch_size,
                                       query_encoder=ingest.query_encoder)  # fmt: skip
