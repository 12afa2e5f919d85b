"""Settings: where the index lives and how documents are chunked and embedded."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from rag.errors import ConfigError

Dtype = Literal["auto", "bf16", "fp32"]


def rag_home() -> Path:
    """Return the user data directory: `$RAG_HOME`, else the platform's user data dir."""
    env = os.environ.get("RAG_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("rag", appauthor=False))


def default_index_dir() -> Path:
    """Return the index directory used when `--index` is not given."""
    return rag_home() / "index"


@dataclass(frozen=True)
class ChunkSettings:
    """How text is cut into chunks; counted in the embedder's own word pieces.

    `max_tokens` None means the embedder's limit (its max sequence length minus the two
    special tokens), so no chunk is ever truncated by the model.
    """

    max_tokens: int | None = None
    overlap: float = 0.15

    def __post_init__(self) -> None:
        if self.max_tokens is not None and self.max_tokens < 16:
            raise ConfigError(f"chunk max_tokens={self.max_tokens} is too small; use 16 or more")
        if not 0.0 <= self.overlap <= 0.5:
            raise ConfigError(f"chunk overlap={self.overlap} must be between 0 and 0.5")


@dataclass(frozen=True)
class IngestSettings:
    """Everything that decides what gets indexed and how."""

    chunk: ChunkSettings = ChunkSettings()
    max_file_mb: float = 50.0
    batch_size: int = 64
    dtype: Dtype = "auto"
    include_hidden: bool = False
    flush_chunks: int = 1024  # chunks embedded and committed per transaction; bounds memory

    def __post_init__(self) -> None:
        if self.max_file_mb <= 0:
            raise ConfigError(f"max_file_mb={self.max_file_mb} must be positive")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size={self.batch_size} must be at least 1")
        if self.dtype not in ("auto", "bf16", "fp32"):
            raise ConfigError(f"dtype={self.dtype!r} must be one of auto, bf16, fp32")

    def content_hash(self, embedder_id: str) -> str:
        """Hash of the settings that change a document's chunks or vectors."""
        key = {"chunk": asdict(self.chunk), "embedder": embedder_id, "chunker": 1}
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
