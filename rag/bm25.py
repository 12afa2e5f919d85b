"""Lexical search: a BM25 index over (chunk id, text) pairs, backed by bm25s.

Example:
    >>> index = BM25Index.build([10, 11], ["Cats purr softly.", "Dogs bark loudly."])
    >>> index.search("barking dog", k=5)  # doctest: +ELLIPSIS
    [(11, 0.55...)]
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import bm25s
import numpy as np
import Stemmer

from rag.atomic import atomic_replace_dir
from rag.errors import ConfigError, IndexFormatError

logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every build at DEBUG

FORMAT_VERSION = 1
META_FILE = "bm25.meta.json"
IDS_FILE = "chunk_ids.npy"
METHODS = ("robertson", "lucene", "atire", "bm25l", "bm25+")

_TOKEN_RE = re.compile(r"(?u)\b\w\w+\b")  # bm25s / scikit-learn default: words of 2+ chars


@dataclass(frozen=True)
class Tokenizer:
    """Lowercase, split into words, drop stopwords, stem; identical at index and query time.

    `stopwords` is a bm25s language code ("en" is Lucene's 33 English stopwords), an explicit
    tuple of words, or None. `stemmer` is a Snowball language name ("english") or None.
    """

    stopwords: str | tuple[str, ...] | None = "en"
    stemmer: str | None = "english"
    _stopset: frozenset[str] = field(init=False, repr=False, compare=False)
    _stem: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.stopwords, list):
            object.__setattr__(self, "stopwords", tuple(self.stopwords))
        try:
            words = bm25s.tokenization._infer_stopwords(self.stopwords)
        except ValueError as e:
            raise ConfigError(f"unknown stopwords {self.stopwords!r}: {e}") from None
        object.__setattr__(self, "_stopset", frozenset(words))
        stem = None
        if self.stemmer is not None:
            try:
                stem = Stemmer.Stemmer(self.stemmer).stemWords
            except KeyError:
                langs = ", ".join(Stemmer.algorithms())
                raise ConfigError(
                    f"unknown stemmer {self.stemmer!r}; choose from {langs}"
                ) from None
        object.__setattr__(self, "_stem", stem)

    def __call__(self, text: str) -> list[str]:
        """Return the index terms of `text`."""
        words = [w for w in _TOKEN_RE.findall(text.lower()) if w not in self._stopset]
        return self._stem(words) if self._stem is not None else words

    def many(self, texts: Iterable[str]) -> list[list[str]]:
        """Return the index terms of each text."""
        return [self(text) for text in texts]


@dataclass(frozen=True)
class BM25Settings:
    """BM25 scoring and tokenization settings; saved with the index.

    `method` picks the bm25s variant ("lucene" by default). `idf_method` defaults to `method`;
    method="atire" with idf_method="robertson" reproduces rank-bm25's BM25Okapi (epsilon=0).
    """

    k1: float = 1.5
    b: float = 0.75
    method: str = "lucene"
    idf_method: str | None = None
    stopwords: str | tuple[str, ...] | None = "en"
    stemmer: str | None = "english"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if isinstance(self.stopwords, list):
            object.__setattr__(self, "stopwords", tuple(self.stopwords))
        for name in ("method", "idf_method"):
            value = getattr(self, name)
            if value is not None and value not in METHODS:
                raise ConfigError(f"{name}={value!r} is not one of {', '.join(METHODS)}")
        if self.k1 < 0:
            raise ConfigError(f"k1={self.k1} must be >= 0")
        if not 0 <= self.b <= 1:
            raise ConfigError(f"b={self.b} must be between 0 and 1")
        if self.dtype not in ("float32", "float64"):
            raise ConfigError(f"dtype={self.dtype!r} must be 'float32' or 'float64'")

    def tokenizer(self) -> Tokenizer:
        """Return the tokenizer these settings describe."""
        return Tokenizer(stopwords=self.stopwords, stemmer=self.stemmer)


class BM25Index:
    """A BM25 index whose documents are chunk ids; search returns (chunk id, score) pairs.

    Example:
        >>> index = BM25Index.build([3, 7, 42], ["insulin resistance", "insulin", "glucose"])
        >>> index.search("insulin resistance", k=10, allowed={7, 42})  # doctest: +ELLIPSIS
        [(7, 0.21...)]
        >>> index.save(Path("my-index/bm25"))  # doctest: +SKIP
        >>> BM25Index.load(Path("my-index/bm25"))  # doctest: +SKIP
    """

    def __init__(
        self,
        ids: np.ndarray,
        retriever: bm25s.BM25 | None,
        settings: BM25Settings,
    ) -> None:
        self._ids = ids
        self._retriever = retriever
        self.settings = settings
        self._tokenize = settings.tokenizer()
        self._position = {int(cid): pos for pos, cid in enumerate(ids.tolist())}

    @classmethod
    def build(
        cls,
        ids: Sequence[int],
        texts: Sequence[str],
        settings: BM25Settings | None = None,
    ) -> BM25Index:
        """Index `texts` under the chunk `ids` (unique integers, one per text)."""
        settings = settings or BM25Settings()
        if len(ids) != len(texts):
            raise ValueError(f"got {len(ids)} ids but {len(texts)} texts")
        id_array = np.asarray(ids, dtype=np.int64).reshape(-1)
        if len(np.unique(id_array)) != len(id_array):
            raise ValueError("chunk ids must be unique")
        tokens = settings.tokenizer().many(texts)
        retriever = None
        if any(tokens):  # bm25s cannot index a corpus without a single term
            retriever = bm25s.BM25(
                k1=settings.k1,
                b=settings.b,
                method=settings.method,
                idf_method=settings.idf_method,
                dtype=settings.dtype,
                backend="numpy",
            )
            retriever.index(tokens, show_progress=False)
        return cls(id_array, retriever, settings)

    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        return f"BM25Index(chunks={len(self)}, settings={self.settings!r})"

    @property
    def ids(self) -> list[int]:
        """Return the indexed chunk ids in index order."""
        return self._ids.tolist()

    @property
    def bm25s_model(self) -> bm25s.BM25 | None:
        """The bm25s model behind the index (its `scores` and `vocab_dict`); None if empty."""
        return self._retriever

    def scores(self, query: str) -> np.ndarray:
        """Return the BM25 score of every indexed chunk (in `ids` order) for `query`."""
        dtype = np.dtype(self.settings.dtype)
        if self._retriever is None:
            return np.zeros(len(self._ids), dtype=dtype)
        vocab = self._retriever.vocab_dict
        term_ids = [vocab[t] for t in self._tokenize(query) if t in vocab]
        if not term_ids:
            return np.zeros(len(self._ids), dtype=dtype)
        return self._retriever.get_scores_from_ids(term_ids)

    def search(
        self, query: str, k: int, allowed: Collection[int] | None = None
    ) -> list[tuple[int, float]]:
        """Return up to `k` (chunk id, score) pairs with a positive score, best first.

        `allowed` restricts the candidates to these chunk ids before the top k are taken.
        Ties are broken by index order, so results are deterministic.
        """
        if k < 0:
            raise ConfigError(f"k={k} must be >= 0")
        if k == 0 or len(self._ids) == 0:
            return []
        scores = self.scores(query)
        if allowed is None:
            positions = np.flatnonzero(scores > 0)
        else:
            wanted = [self._position[c] for c in allowed if c in self._position]
            positions = np.asarray(sorted(wanted), dtype=np.int64)
            positions = positions[scores[positions] > 0]
        return self._top_k(scores, positions, k)

    def search_many(
        self, queries: Sequence[str], k: int, allowed: set[int] | None = None
    ) -> list[list[tuple[int, float]]]:
        """Run `search` for each query."""
        return [self.search(q, k, allowed) for q in queries]

    def _top_k(self, scores: np.ndarray, positions: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Take the k best of `positions` (ascending), ties broken by position."""
        candidate = scores[positions]
        if len(positions) > k:
            threshold = np.partition(candidate, len(candidate) - k)[len(candidate) - k]
            keep = candidate >= threshold  # keeps every tie at the boundary
            positions, candidate = positions[keep], candidate[keep]
        order = np.lexsort((positions, -candidate))[:k]
        return [(int(self._ids[p]), float(scores[p])) for p in positions[order]]

    def save(self, directory: Path) -> None:
        """Write the index to `directory`, replacing it atomically (never half-written)."""

        def build(folder: Path) -> None:
            if self._retriever is not None:
                self._retriever.save(folder, show_progress=False)
            np.save(folder / IDS_FILE, self._ids, allow_pickle=False)
            meta = {
                "format": FORMAT_VERSION,
                "bm25s": bm25s.__version__,
                "chunks": len(self._ids),
                "settings": asdict(self.settings),
            }
            (folder / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")

        atomic_replace_dir(Path(directory), build)

    @classmethod
    def load(cls, directory: Path, mmap: bool = False) -> BM25Index:
        """Read an index written by `save`; `mmap` maps the score arrays instead of reading them."""
        directory = Path(directory)
        meta_path = directory / META_FILE
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise IndexFormatError(
                f"{directory} holds no BM25 index ({META_FILE} is missing); rebuild the index"
            ) from None
        except json.JSONDecodeError as e:
            raise IndexFormatError(f"{meta_path} is corrupt ({e}); rebuild the index") from None
        if meta.get("format") != FORMAT_VERSION:
            raise IndexFormatError(
                f"{directory}: BM25 index format {meta.get('format')!r} is not supported "
                f"(expected {FORMAT_VERSION}); rebuild the index"
            )
        settings = BM25Settings(**meta["settings"])  # a stopword list comes back as a tuple
        ids = np.load(directory / IDS_FILE, allow_pickle=False)
        retriever = None
        if (directory / "params.index.json").exists():
            retriever = bm25s.BM25.load(directory, mmap=mmap, show_progress=False)
        return cls(ids, retriever, settings)


class BM25Backend:
    """The keyword-index backend over `BM25Index` with these `settings`; a saved index built
    with other settings is not loaded (the store rebuilds it)."""

    name = "bm25"

    def __init__(self, settings: BM25Settings | None = None) -> None:
        self.settings = settings or BM25Settings()

    def build(self, ids: Sequence[int], texts: Sequence[str]) -> BM25Index:
        return BM25Index.build(ids, texts, self.settings)

    def load(self, directory: Path) -> BM25Index | None:
        if not directory.is_dir():
            return None
        try:
            index = BM25Index.load(directory)
        except (IndexFormatError, OSError, ValueError):
            return None
        return index if index.settings == self.settings else None
