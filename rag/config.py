"""Where the index lives; the chunk and ingest settings moved to `rag.settings`.

`ChunkSettings` is re-exported from `rag.settings`. `IngestSettings` here keeps its old
shape (the chunk settings nested inside) for the code that still builds it that way; new
code takes `rag.settings.Settings` (`.ingest` and `.chunk` are sibling sections).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from rag.settings import ChunkSettings, Dtype
from rag.settings import IngestSettings as _IngestSection

__all__ = ["ChunkSettings", "Dtype", "IngestSettings", "default_index_dir", "rag_home"]


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
class IngestSettings(_IngestSection):
    """`rag.settings.IngestSettings` with the chunk settings nested, as before (deprecated).

    `content_hash(embedder_id)` hashes exactly what it always did, so indexes are not
    re-embedded.
    """

    chunk: ChunkSettings = field(default_factory=ChunkSettings)

    def content_hash(self, embedder_id: str, chunk: ChunkSettings | None = None) -> str:
        """Hash of the settings that change a document's chunks or vectors."""
        return super().content_hash(embedder_id, self.chunk if chunk is None else chunk)
