"""The keyword-index port: lexical search over chunk ids (BM25 today, see rag/bm25.py).

Like a vector index, a keyword index is derived from SQLite and rebuilt when its saved copy
is missing, stale, or was built with other settings.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable


@runtime_checkable
class KeywordIndex(Protocol):
    """Scores chunks by the query's words."""

    def __len__(self) -> int:
        """How many chunks the index holds."""
        ...

    def search(
        self, query: str, k: int, allowed: Collection[int] | None = None
    ) -> list[tuple[int, float]]:
        """Up to `k` (chunk id, score) pairs with a positive score, best first, restricted to
        `allowed` chunk ids when given."""
        ...

    def save(self, directory: Path) -> None:
        """Write the index into `directory`, replacing it atomically."""
        ...


@runtime_checkable
class KeywordBackend(Protocol):
    """Builds and loads one kind of keyword index."""

    @property
    def name(self) -> str:
        """The prefix of its folders in the index directory."""
        ...

    def build(self, ids: Sequence[int], texts: Sequence[str]) -> KeywordIndex:
        """Index `texts` under chunk `ids`."""
        ...

    def load(self, directory: Path) -> KeywordIndex | None:
        """The index saved in `directory`; None when missing, unreadable or built otherwise."""
        ...
