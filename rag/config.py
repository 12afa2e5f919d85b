"""Where rag keeps its data: `$RAG_HOME`, else the platform's user data directory.

Every setting lives in `rag.settings`.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_index_dir", "rag_home"]


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
