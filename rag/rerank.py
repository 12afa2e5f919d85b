"""Rerankers: score (query, passage) pairs after fusion; higher is better."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from rag.errors import ModelNotFoundError

if TYPE_CHECKING:
    from rag.retrieve import Hit


class Reranker(Protocol):
    """Anything that scores candidate hits for a query."""

    name: str

    def score(self, query: str, hits: Sequence[Hit]) -> list[float]: ...


class CrossEncoderReranker:
    """A sentence-transformers cross-encoder from a local folder (nothing is downloaded).

    >>> reranker = CrossEncoderReranker("~/models/ms-marco-MiniLM-L6-v2")  # doctest: +SKIP
    """

    def __init__(self, folder: str | Path, batch_size: int = 32) -> None:
        self.folder = Path(folder).expanduser()
        if not (self.folder / "config.json").is_file():
            raise ModelNotFoundError(
                f"{self.folder} is not a local cross-encoder folder (no config.json); pass a "
                "folder saved with CrossEncoder.save() or downloaded beforehand"
            )
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import CrossEncoder

        self.name = f"cross-encoder:{self.folder.name}"
        self.batch_size = batch_size
        self.model = CrossEncoder(str(self.folder), device="cpu", local_files_only=True)

    def score(self, query: str, hits: Sequence[Hit]) -> list[float]:
        pairs = [(query, f"{h.heading}\n{h.text}" if h.heading else h.text) for h in hits]
        scores = self.model.predict(pairs, batch_size=self.batch_size, show_progress_bar=False)
        return [float(s) for s in scores]
