"""Label-free retrieval probes: questions the local model writes about your own chunks.

`generate_probes` draws chunks reproducibly from a seed and asks the generator (greedy, with
the same seed) for one question each; `measure_probes` runs every question through hybrid
search and checks whether its source passage comes back in the top k. A hit counts when it
is from the same document and its character span overlaps the probe's source span, so the
probes stay valid when the document is re-chunked. A probe is stale when its document was
removed, or changed so that its source chunk's text is no longer a chunk of it.

Storage: `probes.json` in the index directory holds the probe set and every measurement
(with the configuration it was measured under). It is a JSON file rather than a SQLite table
because it is not derived from the documents: it must survive re-ingests and the store's
format version, and a user can read, diff or delete it. It is written atomically (temp file,
fsync, `os.replace`), so a crash leaves the old file or the new one, never half of one; with
two concurrent writers the last one wins.

>>> from rag import Index
>>> report = Index().probe(n=20, k=5)  # doctest: +SKIP
>>> report.result.recall_at_k, report.warning  # doctest: +SKIP
(0.85, None)
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rag.atomic import atomic_write_text
from rag.chunking import with_heading
from rag.errors import ConfigError, IndexFormatError, RagError

if TYPE_CHECKING:
    from rag.llm.base import ChatModel
    from rag.retrieve import Retriever
    from rag.settings import Settings
    from rag.store import Store, StoredChunk

PROMPT = "probe-v1"
FILE_NAME = "probes.json"
FILE_VERSION = 1
DEFAULT_N = 50
MIN_CHARS = 200  # shorter chunks (headings, one-liners) make vague questions
TOLERANCE = 0.05  # absolute drop in recall@k that triggers a warning
HISTORY_LIMIT = 200
# The settings sections a probe measurement depends on (hashed into its config).
SETTINGS_HASHED = ("ingest", "chunk", "retrieval", "bm25")


@dataclass(frozen=True)
class Probe:
    """A generated question and the passage it was written from."""

    question: str
    path: str  # the document key
    start: int
    end: int
    page: int | None
    text_sha256: str  # of the source chunk's text
    doc_sha256: str  # of the document when the probe was written
    model: str
    prompt: str = PROMPT


@dataclass
class ProbeSet:
    """The probes of one generation run and what made them (the cache key)."""

    seed: int
    n: int
    model: str
    prompt: str
    probes: list[Probe]
    created_at: float = field(default_factory=time.time)

    def matches(self, seed: int | None, n: int | None, model: str | None) -> bool:
        """Whether a run asking for this seed, n and model (None: any) may reuse this set."""
        wanted = zip((seed, n, model), (self.seed, self.n, self.model), strict=True)
        return self.prompt == PROMPT and all(w in (None, have) for w, have in wanted)


@dataclass
class ProbeResult:
    """One measurement of a probe set, and the configuration it was measured under."""

    k: int
    recall_at_1: float
    recall_at_k: float
    mrr: float
    count: int  # probes measured (stale ones excluded)
    stale: int
    config: dict
    probe_set: str
    generation: int  # the store's write counter: differs after any re-ingest that changed it
    documents: int
    measured_at: float = field(default_factory=time.time)
    changed: int | None = None  # documents changed since the previous measurement
    missed: list[dict] = field(default_factory=list)  # probes whose source was not in the top k

    def summary(self) -> dict:
        """The headline figures, keyed the way `--json` prints them."""
        return {
            "k": self.k, "recall@1": self.recall_at_1, "recall@k": self.recall_at_k,
            "mrr": self.mrr, "measured": self.count, "stale": self.stale,
            "measured_at": self.measured_at, "chunk": self.config.get("chunk"),
        }  # fmt: skip

    def to_history(self) -> dict:
        data = asdict(self)
        del data["missed"]
        return data

    @classmethod
    def from_history(cls, data: dict) -> ProbeResult:
        return cls(**data)


@dataclass
class ProbeReport:
    """What `Index.probe` (and `rag eval probes`) returns."""

    index: str
    probe_set: ProbeSet
    result: ProbeResult
    previous: ProbeResult | None
    warning: str | None
    generated: bool  # False when the cached probes were reused without loading the model
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "index": self.index, "probes": len(self.probe_set.probes),
            **self.result.summary(),
            "previous": self.previous.summary() if self.previous else None,
            "warning": self.warning, "generated": self.generated, "model": self.probe_set.model,
            "seed": self.probe_set.seed, "config": self.result.config,
            "missed": self.result.missed, "seconds": self.seconds,
        }  # fmt: skip


# --- generation -----------------------------------------------------------------------------

_LEAD = re.compile(r"^(?:(?:question|q)\s*\d*\s*[:.)-]\s*|\d+\s*[.):-]\s*|[-*•#>]+\s*)", re.I)
_QUOTES = "\"'`“”‘’*_ "


def clean_question(text: str) -> str | None:
    """Return the model's first non-empty line as a clean question, or None if it is not one.

    Numbering, bullets, a "Question:" label, quotes and markdown emphasis are stripped, and
    anything after the first question mark is cut.

    >>> clean_question('1. "What does error E07 mean?"\\nIt means...')
    'What does error E07 mean?'
    """
    line = ""
    for line in text.splitlines():
        for _ in range(3):  # "**Question 1:** ..." needs a few passes
            line = _LEAD.sub("", line.strip(_QUOTES)).strip()
        if line:
            break
    if "?" not in line:
        return None
    question = line[: line.index("?") + 1].strip(_QUOTES)
    return question if len(question.split()) >= 3 else None


def generate_probes(
    store: Store,
    generator: ChatModel,
    n: int = DEFAULT_N,
    seed: int = 0,
    *,
    min_chars: int = MIN_CHARS,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[Probe]:
    """Write up to `n` probe questions about chunks chosen reproducibly from `seed`.

    Chunks are shuffled by `random.Random(seed)` in (document key, ord) order and asked about
    one by one until `n` usable questions exist (at most 3n attempts); output without a
    question mark, or a question already asked, is discarded.
    """
    from rag.llm.base import GenerationOptions, generate
    from rag.prompts import format_source, load_prompt

    if n < 1:
        raise ConfigError(f"n={n} must be at least 1")
    manifest = store.manifest()
    chunks = [c for c in store.iter_chunks() if len(c.text.strip()) >= min_chars]
    if not chunks:
        raise ConfigError(
            f"no chunk in {store.directory} has {min_chars} characters or more to ask about; "
            "ingest some documents first"
        )
    random.Random(seed).shuffle(chunks)
    template = load_prompt(PROMPT)
    probes: list[Probe] = []
    asked: set[str] = set()
    for chunk in chunks[: 3 * n]:
        block = format_source(1, Path(chunk.key).name, with_heading(chunk.heading, chunk.text))
        options = GenerationOptions(max_tokens=64, temperature=0.0, seed=seed)
        reply = generate(generator, template.messages(block, ""), options)
        question = clean_question(reply.text)
        if question is None or question.lower() in asked:
            continue
        asked.add(question.lower())
        probes.append(_probe(question, chunk, manifest[chunk.key][0], generator.name))
        if on_progress is not None:
            on_progress(len(probes), n)
        if len(probes) == n:
            break
    if not probes:
        raise RagError(
            f"{generator.name} wrote no usable question in {min(len(chunks), 3 * n)} "
            "tries; try a larger model (--preset default)"
        )
    return probes


def _probe(question: str, chunk: StoredChunk, doc_sha: str, model: str) -> Probe:
    return Probe(question, chunk.key, chunk.start, chunk.end, chunk.page, _sha(chunk.text),
                 doc_sha, model)  # fmt: skip


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def probe_set_id(probes: Sequence[Probe]) -> str:
    """A short id for a list of probes: measurements compare only within one id."""
    key = json.dumps([(p.question, p.path, p.start, p.end) for p in probes])
    return hashlib.sha256(key.encode()).hexdigest()[:12]


# --- measurement ----------------------------------------------------------------------------


def spans_overlap(start: int, end: int, other_start: int, other_end: int) -> bool:
    """Whether the half-open spans [start, end) and [other_start, other_end) share a char."""
    return start < other_end and other_start < end


def current_span(
    probe: Probe, store: Store, manifest: dict[str, tuple[str, str]]
) -> tuple[int, int] | None:
    """Where the probe's source text is now, or None when the probe is stale.

    Same document content: the original span (whatever the chunking). Changed content: the
    span of a chunk with exactly the source chunk's text, if one is left.
    """
    entry = manifest.get(probe.path)
    if entry is None:
        return None
    if entry[0] == probe.doc_sha256:
        return probe.start, probe.end
    for chunk in store.iter_chunks(probe.path):
        if _sha(chunk.text) == probe.text_sha256:
            return chunk.start, chunk.end
    return None


def measure_probes(probes: Sequence[Probe], retriever: Retriever, k: int = 5) -> ProbeResult:
    """Search every probe question (hybrid) and score where its source passage ranks."""
    if k < 1:
        raise ConfigError(f"k={k} must be at least 1")
    store = retriever.store
    manifest = store.manifest()
    ranks: list[int | None] = []
    missed = []
    for probe in probes:
        span = current_span(probe, store, manifest)
        if span is None:
            continue
        hits = retriever.search(probe.question, k, mode="hybrid")
        rank = next((h.rank for h in hits if h.path == probe.path
                     and spans_overlap(h.start, h.end, *span)), None)  # fmt: skip
        ranks.append(rank)
        if rank is None:
            missed.append({"question": probe.question, "path": probe.path, "page": probe.page})
    count = len(ranks)

    def share(values: list[float]) -> float:
        return round(sum(values) / count, 4) if count else 0.0

    return ProbeResult(
        k=k,
        recall_at_1=share([1.0 if r == 1 else 0.0 for r in ranks]),
        recall_at_k=share([1.0 if r else 0.0 for r in ranks]),
        mrr=share([1.0 / r if r else 0.0 for r in ranks]),
        count=count,
        stale=len(probes) - count,
        config=measurement_config(retriever),
        probe_set=probe_set_id(probes),
        generation=store.generation,
        documents=len(manifest),
        missed=missed,
    )


def measurement_config(retriever: Retriever) -> dict:
    """What the result depends on: ingest config hash, chunking, embedder and retrieval."""
    store = retriever.store
    ingest = store.ingest_config() or {}
    info = store.embedder_info()
    return {
        "config_hash": ingest.get("config_hash"),
        "chunk": ingest.get("chunk"),
        "embedder": f"{info.name} ({info.fingerprint})" if info else None,
        "retrieval": {
            "mode": "hybrid", "fusion": retriever.fusion, "dense_weight": retriever.dense_weight,
            "candidates": retriever.candidates, "dense_index": retriever.store.vector_backend.kind,
            "reranker": getattr(retriever.reranker, "name", None) if retriever.reranker else None,
        },
    }  # fmt: skip


# --- comparison -----------------------------------------------------------------------------


def compare(
    previous: ProbeResult | None, current: ProbeResult, tolerance: float = TOLERANCE
) -> str | None:
    """A warning when recall@k fell by more than `tolerance` (absolute), naming what changed.

    >>> compare(prev, cur)  # doctest: +SKIP
    'recall@5 fell from 0.82 to 0.64 after changing chunk size (max_tokens 254 → 128)'
    """
    if previous is None or previous.k != current.k:
        return None
    if round(previous.recall_at_k - current.recall_at_k, 6) <= tolerance:
        return None
    message = (
        f"recall@{current.k} fell from {previous.recall_at_k:.2f} to {current.recall_at_k:.2f}"
    )
    causes = describe_changes(previous, current)
    if causes:
        message += " after " + " and ".join(causes)
    if current.stale > previous.stale:
        message += f" ({current.stale} of the probes are stale now)"
    return message


def describe_changes(previous: ProbeResult, current: ProbeResult) -> list[str]:
    """Name what differs between two measurements: settings first, then the documents."""
    old, new = previous.config, current.config
    causes = []
    old_chunk, new_chunk = old.get("chunk") or {}, new.get("chunk") or {}
    if old_chunk != new_chunk:
        what = "chunk size" if old_chunk.get("max_tokens") != new_chunk.get("max_tokens") else (
            "chunk settings")  # fmt: skip
        causes.append(f"changing {what} ({_diff(old_chunk, new_chunk)})")
    if old.get("embedder") != new.get("embedder"):
        causes.append(f"changing the embedder ({old.get('embedder')} → {new.get('embedder')})")
    if old.get("retrieval") != new.get("retrieval"):
        causes.append(f"changing retrieval ({_diff(old['retrieval'], new['retrieval'])})")
    if not causes and old.get("config_hash") != new.get("config_hash"):
        causes.append("changing ingest settings")
    if not causes and None not in (old.get("settings"), new.get("settings")) and (
        old.get("settings") != new.get("settings")
    ):
        causes.append("changing settings (see 'rag config show')")
    if not causes and previous.generation != current.generation:
        changed = current.changed
        causes.append("re-ingest" + (f" ({changed} documents changed)" if changed else ""))
    return causes


def _diff(old: dict, new: dict) -> str:
    keys = [key for key in {**old, **new} if old.get(key) != new.get(key)]
    return ", ".join(f"{key} {old.get(key)} → {new.get(key)}" for key in keys)


# --- storage --------------------------------------------------------------------------------


@dataclass
class ProbeFile:
    """The contents of `probes.json`: the current probe set and the measurement history."""

    probe_set: ProbeSet | None = None
    history: list[ProbeResult] = field(default_factory=list)

    @classmethod
    def load(cls, directory: Path) -> ProbeFile:
        """Read `probes.json` from an index directory (empty when there is none)."""
        path = Path(directory) / FILE_NAME
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") != FILE_VERSION:
                raise ValueError(f"version {data.get('version')}, expected {FILE_VERSION}")
            raw = data.get("probe_set")
            probe_set = None
            if raw is not None:
                items = [Probe(**p) for p in raw.pop("probes")]
                probe_set = ProbeSet(probes=items, **raw)
            history = [ProbeResult.from_history(h) for h in data.get("history", [])]
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise IndexFormatError(
                f"{path} is unreadable ({exc}); delete it, or run 'rag eval probes --regenerate'"
            ) from None
        return cls(probe_set, history)

    def save(self, directory: Path) -> None:
        """Write `probes.json` atomically (rag/atomic.py): a crash leaves old or new, never half."""
        data = {
            "version": FILE_VERSION,
            "probe_set": asdict(self.probe_set) if self.probe_set else None,
            "history": [h.to_history() for h in self.history[-HISTORY_LIMIT:]],
        }
        atomic_write_text(
            Path(directory) / FILE_NAME, json.dumps(data, indent=1, ensure_ascii=False)
        )

    def previous(self, probe_set: str, k: int) -> ProbeResult | None:
        """The latest measurement of the same probes at the same k."""
        same = [h for h in self.history if (h.probe_set, h.k) == (probe_set, k)]
        return same[-1] if same else None


def record(
    directory: Path,
    result: ProbeResult,
    store: Store,
    *,
    changed: int | None = None,
    file: ProbeFile | None = None,
    settings: Settings | None = None,
) -> tuple[ProbeResult | None, str | None]:
    """Append `result` to the history in `directory`; return the previous one and any warning.

    `changed` is how many documents changed since the previous measurement (the ingest hook
    knows it exactly); by default the documents re-indexed since then are counted. `file` is
    the `probes.json` the caller already loaded, so it is not read twice. With `settings`,
    the measurement records the hash of the settings retrieval depends on.
    """
    if settings is not None:
        result.config["settings"] = settings.hash(*SETTINGS_HASHED)
    file = file if file is not None else ProbeFile.load(directory)
    previous = file.previous(result.probe_set, result.k)
    if previous is not None and previous.generation != result.generation:
        result.changed = (
            changed if changed is not None else store.documents_indexed_since(previous.measured_at)
        )
    warning = compare(previous, result)
    file.history.append(result)
    file.save(directory)
    return previous, warning


def remeasure(
    directory: Path,
    retriever: Retriever,
    changed: int | None = None,
    settings: Settings | None = None,
) -> ProbeReport:
    """Measure the stored probe set again at the last k used, and record it (after ingest)."""
    started = time.perf_counter()
    file = ProbeFile.load(directory)
    if file.probe_set is None:
        raise ConfigError(f"no probes in {directory}; run 'rag eval probes' first")
    k = file.history[-1].k if file.history else 5
    result = measure_probes(file.probe_set.probes, retriever, k)
    previous, warning = record(directory, result, retriever.store, changed=changed, file=file,
                               settings=settings)  # fmt: skip
    seconds = round(time.perf_counter() - started, 3)
    return ProbeReport(str(directory), file.probe_set, result, previous, warning, False, seconds)
