"""The answer cache of `rag serve`: a repeated or near-identical question gets the stored answer.

A question matches a stored one when both were asked in the same scope (settings, index
generation, request options: see `cache_scope`), their embeddings' cosine is at least
`threshold`, and a lexical guard finds nothing that tells them apart. Cosine alone is not
enough: "What was the Norman's major export?" and "... major import?" are 0.92 apart in
MiniLM, "... by Black, ... by Watt?" and "... by Watt, ... by Black?" 0.998. The guard
(`same_question`) compares what a paraphrase keeps and such a near-miss changes:

- "ids": identifiers (numbers, number words, names, acronyms) of each question occur in the
  other, in the same order, and both have as many negations (not, no, never, n't ...);
- "words" (the default): "ids", the same content words as often (stemmed; question words
  such as when/where/who count, request words such as "please" do not), and not two of them
  exchanged ("from the bunker to the firebox" is not "from the firebox to the bunker");
- "order": "words", and the content words in the same order (only trivial variants hit).

Exact repeats (the same text after case, space and punctuation are normalised) hit without
embedding. evals/results/answer-cache.md measures each guard and calibrates the threshold.

Example:
    >>> cache = AnswerCache(embedder, threshold=0.85)  # doctest: +SKIP
    >>> scope = cache_scope(settings, generation=3, k=8, strict=False)  # doctest: +SKIP
    >>> cache.put("When was the K2 released?", scope, answer)  # doctest: +SKIP
    >>> cache.get("when was the K2 released", scope).cached  # doctest: +SKIP
    True
    >>> cache.get("When was the K3 released?", scope) is None  # doctest: +SKIP
    True
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import threading
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from rag.text.words import STOPWORDS

if TYPE_CHECKING:
    from rag.ask import Answer
    from rag.embed.base import Embedder
    from rag.settings import Settings

Guard = Literal["none", "ids", "words", "order"]
GUARDS: tuple[Guard, ...] = ("none", "ids", "words", "order")


def _split(words: str) -> list[str]:
    return words.split()


_TOKEN = re.compile(r"\w+(?:[.,'’-]\w+)*")
_NEGATIONS = frozenset(
    _split("not no never nor none nobody nothing neither nowhere cannot without n't")
)
# Words that ask what kind of answer is wanted: kept as content ("when" is not "where").
_QUESTION_WORDS = {"what": "what", "which": "what", "who": "who", "whom": "who"} | {
    w: w for w in _split("when where why how whose")
}  # "which country" asks what "what country" asks
# Words that only frame a request; a paraphrase may add or drop them.
_REQUEST_WORDS = frozenset(
    _split(
        "please pls kindly tell know want wonder wondering curious question hi hello hey "
        "thanks thank let quick us"
    )
)
_NUMBER_WORDS = (
    {
        w: str(i)
        for i, w in enumerate(
            _split(
                "zero one two three four five six seven eight nine ten eleven twelve thirteen "
                "fourteen fifteen sixteen seventeen eighteen nineteen twenty"
            )
        )
    }
    | {
        w: str(10 * i)
        for i, w in enumerate(_split("_ _ _ thirty forty fifty sixty seventy eighty ninety"))
        if w != "_"
    }
    | {
        w: f"{i + 1}th"
        for i, w in enumerate(
            _split("first second third fourth fifth sixth seventh eighth ninth tenth")
        )
    }
    | {"hundred": "100", "thousand": "1000", "million": "1000000", "billion": "1000000000"}
)
_CONTRACTED = {"ca": "can", "wo": "will", "sha": "shall"}  # can't, won't, shan't
_ORDINAL = re.compile(r"^(\d+)(?:st|nd|rd|th)$")


@cache
def _stemmer() -> Any:
    import Stemmer  # PyStemmer, installed with bm25s

    return Stemmer.Stemmer("english")


def normalise(text: str) -> str:
    """The exact-repeat key: NFKC, case-folded, punctuation dropped, spaces collapsed."""
    text = unicodedata.normalize("NFKC", text).casefold().replace("’", "'")
    return " ".join(_TOKEN.findall(text))


def _stem(word: str) -> str:
    word = word.casefold().replace("’", "'")
    if word.endswith("'s"):
        word = word[:-2]
    word = word.replace(",", "") if word.replace(",", "").replace(".", "").isdigit() else word
    if word in _NUMBER_WORDS:
        return _NUMBER_WORDS[word]
    ordinal = _ORDINAL.match(word)
    if ordinal:
        return ordinal.group(1) + "th"
    if any(c.isdigit() for c in word):
        return word
    return str(_stemmer().stemWord(word))


@dataclass(frozen=True)
class QuestionTerms:
    """What the guard compares of one question (computed once, stored with its entry)."""

    key: str  # `normalise(text)`: exact repeats share it
    ids: tuple[str, ...]  # identifiers in order of appearance, stemmed
    negations: int
    words: tuple[str, ...]  # content-word stems (question words, negations too), sorted
    sequence: tuple[str, ...]  # the same, in order
    stems: frozenset[str]  # every token's stem
    possessive: frozenset[str] = frozenset()  # stems written with 's ("Acme's CEO")


def _is_identifier(token: str, first: bool) -> bool:
    if any(c.isdigit() for c in token) or token.casefold() in _NUMBER_WORDS:
        return True
    if len(token) < 2:
        return False  # "I", "a"
    if token.isupper():
        return True  # an acronym, even first
    # A capital inside the word (iPhone, McDonald) or at the start of any word but the first.
    return any(c.isupper() for c in token[1:]) or (token[:1].isupper() and not first)


def question_terms(text: str) -> QuestionTerms:
    """Split a question into the terms `same_question` compares."""
    text = unicodedata.normalize("NFKC", text).replace("’", "'")
    tokens = _TOKEN.findall(text)
    ids: list[str] = []
    negations = 0
    sequence: list[str] = []
    stems: set[str] = set()
    possessive: set[str] = set()
    for i, token in enumerate(tokens):
        lower = token.casefold()
        parts = (
            [_CONTRACTED.get(lower[:-3], lower[:-3]), "n't"] if lower.endswith("n't") else [lower]
        )
        stem = _stem(token)
        stems.add(stem)
        if lower.endswith("'s"):
            possessive.add(stem)
        if _is_identifier(token, first=i == 0) and stem not in ids:
            ids.append(stem)
        for part in parts:
            if part in _NEGATIONS:
                negations += 1
                sequence.append("not")
            elif part in _QUESTION_WORDS:
                sequence.append(_QUESTION_WORDS[part])
            elif part and part not in STOPWORDS and part not in _REQUEST_WORDS:
                sequence.append(_stem(part) if part != lower else stem)
    return QuestionTerms(
        key=normalise(text),
        ids=tuple(ids),
        negations=negations,
        words=tuple(sorted(sequence)),
        sequence=tuple(sequence),
        stems=frozenset(stems),
        possessive=frozenset(possessive),
    )


def _ids_agree(a: QuestionTerms, b: QuestionTerms) -> bool:
    if a.negations != b.negations:
        return False
    if any(t not in b.stems for t in a.ids) or any(t not in a.stems for t in b.ids):
        return False
    shared = set(a.ids) | set(b.ids)
    order_a = tuple(dict.fromkeys(t for t in a.sequence if t in shared))
    order_b = tuple(dict.fromkeys(t for t in b.sequence if t in shared))
    return order_a == order_b or _swap_of_possessive(a, b, order_a, order_b)


def same_question(a: QuestionTerms, b: QuestionTerms, guard: Guard = "words") -> bool:
    """True when the `guard` finds nothing that tells two close questions apart."""
    if guard == "none" or a.key == b.key:
        return True
    if not _ids_agree(a, b):
        return False
    if guard == "ids":
        return True
    if a.words != b.words:
        return False
    if guard == "order":
        return a.sequence == b.sequence
    if _swap(a.sequence, b.sequence) is None:
        return True  # the same order, or a phrase moved
    return _swap_of_possessive(a, b, a.sequence, b.sequence)


def _swap(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, str] | None:
    """The two words exchanged when `b` is `a` with two words swapped ("from the bunker to the
    firebox"): the same words in other roles, which a paraphrase that moves a phrase does not
    do. None when the sequences are equal or differ otherwise."""
    if len(a) != len(b):
        return None
    differ = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    if len(differ) == 2 and a[differ[0]] == b[differ[1]] and a[differ[1]] == b[differ[0]]:
        return a[differ[0]], a[differ[1]]
    return None


def _swap_of_possessive(
    a: QuestionTerms, b: QuestionTerms, seq_a: tuple[str, ...], seq_b: tuple[str, ...]
) -> bool:
    """True when `seq_b` is `seq_a` with two words swapped, one of them a possessive: "Acme's
    CEO" says what "the CEO of Acme" says."""
    pair = _swap(seq_a, seq_b)
    return pair is not None and bool(set(pair) & (a.possessive | b.possessive))


def cache_scope(settings: Settings, generation: int, **request_options: Any) -> str:
    """A scope key: answers from other settings, another index generation or other request
    options (k, strict, filters, max_tokens ...) never match. Options given None are left out,
    so a default spelled out and one left out share a scope only if the caller resolves it."""
    options = {k: v for k, v in request_options.items() if v is not None}
    data = {"settings": settings.hash(), "generation": generation, "options": options}
    blob = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class _Entry:
    scope: str
    terms: QuestionTerms
    answer: Answer
    evidence: int | str | None  # the top retrieved chunk id, when the caller gave one


class _Scope:
    """One scope's unit vectors as the rows of one matrix, and which entry each row is."""

    def __init__(self, dim: int) -> None:
        self.matrix = np.zeros((16, dim), dtype=np.float32)
        self.ids: list[int] = []
        self.by_key: dict[str, int] = {}

    def add(self, entry_id: int, vector: np.ndarray, key: str) -> None:
        if len(self.ids) == len(self.matrix):
            grown = np.zeros((2 * len(self.matrix), self.matrix.shape[1]), dtype=np.float32)
            grown[: len(self.ids)] = self.matrix
            self.matrix = grown
        self.matrix[len(self.ids)] = vector
        self.ids.append(entry_id)
        self.by_key[key] = entry_id

    def remove(self, entry_id: int, key: str) -> None:
        row = self.ids.index(entry_id)
        last = len(self.ids) - 1
        self.matrix[row] = self.matrix[last]
        self.ids[row] = self.ids[last]
        self.ids.pop()
        if self.by_key.get(key) == entry_id:
            del self.by_key[key]

    def candidates(self, vector: np.ndarray, threshold: float) -> list[int]:
        """Entry ids whose cosine with `vector` is at least `threshold`, closest first."""
        if not self.ids:
            return []
        scores = self.matrix[: len(self.ids)] @ vector
        rows = np.flatnonzero(scores >= threshold)
        return [self.ids[r] for r in rows[np.argsort(-scores[rows], kind="stable")]]


class AnswerCache:
    """Verified answers by question, per scope, least recently used dropped past `max_entries`.

    Thread-safe: request threads may call `get` and `put` at once (questions are embedded
    outside the lock). Store only answers `ask` returned (an error raises, so it never gets
    here); abstentions are stored too: with the same settings and index they are the same
    verified outcome, and an ingest that changes the index starts a new scope. Call `clear`
    after an ingest or delete to free the old generation's entries at once.

    `evidence` (optional, on both `put` and `get`): the id of the top retrieved chunk; when both
    sides give one they must be equal, for callers that retrieve before they look up.
    """

    def __init__(
        self,
        embedder: Embedder,
        threshold: float = 0.85,
        max_entries: int = 1000,
        guard: Guard = "words",
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold={threshold!r} must be between 0 and 1")
        if max_entries < 1:
            raise ValueError(f"max_entries={max_entries!r} must be at least 1")
        if guard not in GUARDS:
            raise ValueError(f"guard={guard!r} must be one of {', '.join(GUARDS)}")
        self.embedder = embedder
        self.threshold = threshold
        self.max_entries = max_entries
        self.guard: Guard = guard
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._entries: OrderedDict[int, _Entry] = OrderedDict()  # least recently used first
        self._scopes: dict[str, _Scope] = {}
        self._next_id = 0
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()  # get's, reused by put

    @property
    def entries(self) -> int:
        """How many answers are stored, over all scopes."""
        return len(self._entries)

    def stats(self) -> dict[str, Any]:
        """Counters for /status and /metrics."""
        with self._lock:
            asked = self.hits + self.misses
            return {
                "entries": len(self._entries),
                "max_entries": self.max_entries,
                "hits": self.hits,
                "misses": self.misses,
                "hit_rate": self.hits / asked if asked else 0.0,
                "threshold": self.threshold,
                "guard": self.guard,
            }

    def get(self, question: str, scope: str, evidence: int | str | None = None) -> Answer | None:
        """The stored answer to `question` (or a question it matches) in `scope`, as a copy
        with `cached=True` and `question` set to this one; None (a miss) otherwise."""
        terms = question_terms(question)
        with self._lock:
            stored = self._hit(self._exact(terms.key, scope, evidence))
        if stored is None and self.threshold < 1.0:
            vector = self._embed(question, terms.key)
            with self._lock:
                stored = self._hit(self._nearest(terms, vector, scope, evidence))
        if stored is None:
            with self._lock:
                self.misses += 1
            return None
        answer = copy.deepcopy(stored)
        answer.question = question
        answer.cached = True
        return answer

    def put(
        self, question: str, scope: str, answer: Answer, evidence: int | str | None = None
    ) -> None:
        """Store `answer` to `question` in `scope` (a copy: later changes to it do not leak in).
        A cached copy is not stored again; the same text in the same scope is replaced."""
        if answer.cached:
            return
        terms = question_terms(question)
        vector = self._embed(question, terms.key)
        stored = copy.deepcopy(answer)
        with self._lock:
            space = self._scopes.get(scope)
            if space is not None and terms.key in space.by_key:
                self._drop(space.by_key[terms.key])
            space = self._scopes.setdefault(scope, _Scope(len(vector)))
            entry_id = self._next_id
            self._next_id += 1
            self._entries[entry_id] = _Entry(scope, terms, stored, evidence)
            space.add(entry_id, vector, terms.key)
            while len(self._entries) > self.max_entries:
                self._drop(next(iter(self._entries)))

    def clear(self) -> None:
        """Forget every stored answer (the counters stay)."""
        with self._lock:
            self._entries.clear()
            self._scopes.clear()

    def _embed(self, question: str, key: str) -> np.ndarray:
        with self._lock:
            vector = self._vectors.get(key)
        if vector is None:
            vector = np.asarray(self.embedder.encode([question])[0], dtype=np.float32)
            with self._lock:
                self._vectors[key] = vector
                while len(self._vectors) > 256:
                    self._vectors.popitem(last=False)
        return vector

    def _agrees(self, entry: _Entry, evidence: int | str | None) -> bool:
        return evidence is None or entry.evidence is None or entry.evidence == evidence

    def _exact(self, key: str, scope: str, evidence: int | str | None) -> int | None:
        space = self._scopes.get(scope)
        entry_id = space.by_key.get(key) if space is not None else None
        if entry_id is None or not self._agrees(self._entries[entry_id], evidence):
            return None
        return entry_id

    def _nearest(
        self, terms: QuestionTerms, vector: np.ndarray, scope: str, evidence: int | str | None
    ) -> int | None:
        space = self._scopes.get(scope)
        if space is None:
            return None
        for entry_id in space.candidates(vector, self.threshold):
            entry = self._entries[entry_id]
            if self._agrees(entry, evidence) and same_question(terms, entry.terms, self.guard):
                return entry_id
        return None

    def _hit(self, entry_id: int | None) -> Answer | None:
        """Count a hit on `entry_id` and mark it recently used (under the lock)."""
        if entry_id is None:
            return None
        self.hits += 1
        self._entries.move_to_end(entry_id)
        return self._entries[entry_id].answer

    def _drop(self, entry_id: int) -> None:
        entry = self._entries.pop(entry_id)
        space = self._scopes[entry.scope]
        space.remove(entry_id, entry.terms.key)
        if not space.ids:
            del self._scopes[entry.scope]
