"""Rerankers: score (query, passage) pairs after fusion; higher is better.

No reranker runs by default: none that the packaged models allow beat z-score fusion on more
than one dataset (evals/retrieval_research.md). `SentenceReranker` needs only the embedder
and helps question-answer corpora (SQuAD +0.014 nDCG@10); `CrossEncoderReranker` loads a
sentence-transformers cross-encoder from a local folder. `load_reranker` picks one by name.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from rag.chunking import with_heading
from rag.errors import ConfigError, ModelNotFoundError
from rag.text.sentences import sentences_or_whole

if TYPE_CHECKING:
    import numpy as np

    from rag.embed import Embedder
    from rag.retrieve import Hit


class Reranker(Protocol):
    """Anything that scores candidate hits for a query."""

    name: str

    def score(self, query: str, hits: Sequence[Hit]) -> list[float]: ...


RERANKERS = ("none", "sentence", "<cross-encoder folder>")


def load_reranker(spec: str | None, embedder: Embedder) -> Reranker | None:
    """Return the reranker named by `spec`: "none"/None, "sentence", or a local folder path."""
    if spec is None or spec.strip().lower() in ("", "none"):
        return None
    if spec.strip().lower() == "sentence":
        return SentenceReranker(embedder)
    if not Path(spec).expanduser().exists():
        raise ConfigError(
            f"unknown reranker {spec!r}: use 'none', 'sentence' or the path of a local "
            "cross-encoder folder"
        )
    return CrossEncoderReranker(spec)


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
        pairs = [(query, with_heading(h.heading, h.text)) for h in hits]
        scores = self.model.predict(pairs, batch_size=self.batch_size, show_progress_bar=False)
        return [float(s) for s in scores]


class SentenceReranker:
    """Mix each hit's fused score with its best sentence's similarity to the query.

    score = (1 - weight) * z(fused score) + weight * z(best sentence cosine), where z
    standardises over the hits being reranked and a sentence is embedded with its chunk's
    heading in front ("heading\nsentence"). A chunk whose answer sits in one sentence, diluted
    by the rest of the chunk, moves up; the fused score keeps the whole-chunk evidence (best
    sentence alone is worse than no reranking). weight=0.35 was chosen on SciFact, SQuAD and
    PubMedQA (evals/retrieval_research.md). Sentence vectors are cached per chunk text.

    >>> reranker = SentenceReranker(embedder)                       # doctest: +SKIP
    >>> Retriever(store, embedder, reranker=reranker).search("...")   # doctest: +SKIP
    """

    name = "sentence-max"

    def __init__(self, embedder: Embedder, weight: float = 0.35, cache_size: int = 4096) -> None:
        if not 0.0 <= weight <= 1.0:
            raise ConfigError(f"sentence rerank weight={weight} must be between 0 and 1")
        self.embedder = embedder
        self.weight = weight
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def score(self, query: str, hits: Sequence[Hit]) -> list[float]:
        if not hits:
            return []
        query_vector = self.embedder.encode([query])[0]
        best = [float((self._sentence_vectors(h) @ query_vector).max()) for h in hits]
        fused = [h.stages.fused_score if h.stages.fused_score is not None else h.score
                 for h in hits]  # fmt: skip
        return [(1.0 - self.weight) * f + self.weight * b
                for f, b in zip(_standardise(fused), _standardise(best), strict=True)]  # fmt: skip

    def _sentence_vectors(self, hit: Hit) -> np.ndarray:
        """The vectors of `hit`'s sentences (with its heading), embedded once per chunk text."""
        key = f"{hit.heading}\n{hit.text}"
        vectors = self._cache.get(key)
        if vectors is None:
            spans = sentences_or_whole(hit.text)
            texts = [hit.text[a:b] for a, b in spans]
            vectors = self.embedder.encode([with_heading(hit.heading, t) for t in texts])
            self._cache[key] = vectors
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return vectors


def _standardise(values: Sequence[float]) -> list[float]:
    """Subtract the mean and divide by the standard deviation (all 0.0 when they are equal)."""
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return [(v - mean) / std if std > 0 else 0.0 for v in values]
