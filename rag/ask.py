"""Ask: retrieve → compress → pack → generate → verify citations → answer or abstain.

The answer comes only from the user's documents: weak evidence, a model that says it cannot
answer, or an answer its sources do not support all end in "not found in your documents".
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from rag.cite import CitationChecker, CitedSentence, SourceText
from rag.compress import compress, remove_near_duplicates
from rag.errors import ConfigError
from rag.pack import lost_in_the_middle, pack, token_budget
from rag.prompts import DEFAULT_PROMPT, NOT_FOUND_MARKER, format_source, load_prompt

if TYPE_CHECKING:
    from rag.generate import Generator
    from rag.retrieve import Hit, Retriever

NOT_FOUND = "Not found in your documents."
OUTPUTS = ("auto", "text", "json")
JSON_PROMPT = "answer-json-v1"


@dataclass(frozen=True)
class AskSettings:
    """How an answer is made. Thresholds were calibrated on SQuAD 2.0 (see evals/)."""

    candidates: int = 8
    max_tokens: int = 256
    context_tokens: int = 1000
    min_evidence: float = 0.25
    # Structured answers: abstain when the model's P(found=true) is under this; None means
    # the model preset's calibrated value (0, never, for models without one).
    min_found: float | None = None
    support_threshold: float = 0.6
    compress: bool = True
    keep_ratio: float = 0.6
    strict: bool = False
    temperature: float = 0.0
    top_p: float = 0.95
    top_k: int = 40
    seed: int | None = None
    prompt: str = DEFAULT_PROMPT
    output: str = "auto"  # "text", "json" (constrained), or "auto": the preset's choice
    json_prompt: str = JSON_PROMPT

    def __post_init__(self) -> None:
        if self.output not in OUTPUTS:
            raise ConfigError(f"output={self.output!r} must be one of {', '.join(OUTPUTS)}")
        if self.max_tokens < 1:
            raise ConfigError(f"max_tokens={self.max_tokens} must be at least 1")
        if self.candidates < 1:
            raise ConfigError(f"candidates={self.candidates} must be at least 1")
        if self.min_found is not None and not 0 <= self.min_found <= 1:
            raise ConfigError(f"min_found={self.min_found} must be between 0 and 1")
        if not 0 <= self.temperature <= 2:
            raise ConfigError(f"temperature={self.temperature} must be between 0 and 2")


@dataclass
class Source:
    """A passage given to the model as source [n]: where it is and what it said."""

    n: int
    path: str
    page: int | None
    start: int
    end: int
    text: str
    score: float

    @property
    def location(self) -> str:
        return _location(self.path, self.page)


@dataclass
class Usage:
    """What answering cost."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_s: float = 0.0
    total_s: float = 0.0
    context_tokens: int = 0
    context_tokens_uncompressed: int = 0
    stages_s: dict[str, float] = field(default_factory=dict)


@dataclass
class Answer:
    """An answer with its verified sentences and sources, or an abstention."""

    question: str
    answer: str
    abstained: bool
    abstain_reason: str | None
    sentences: list[CitedSentence]
    sources: list[Source]
    stop_reason: str
    usage: Usage
    raw_answer: str = ""
    removed_citations: list[int] = field(default_factory=list)
    nearest: list[Source] = field(default_factory=list)
    evidence: float = 0.0  # best dense similarity among retrieved passages
    found_p: float | None = None  # structured answers: the model's P(the sources answer it)

    def to_dict(self) -> dict:
        """The `rag ask --json` shape."""
        return {
            "answer": self.answer,
            "abstained": self.abstained,
            "abstain_reason": self.abstain_reason,
            "sentences": [
                {
                    "text": s.text,
                    "citations": s.citations,
                    "support": s.support,
                    "supported": s.supported,
                    "repaired": s.repaired,
                    "unsupporting_citations": s.unsupporting,
                }  # fmt: skip
                for s in self.sentences
            ],
            "sources": [asdict(s) for s in self.sources],
            "nearest": [asdict(s) for s in self.nearest],
            "removed_citations": self.removed_citations,
            "stop_reason": self.stop_reason,
            "usage": asdict(self.usage),
            "raw_answer": self.raw_answer,
            "evidence": self.evidence,
            "found_p": self.found_p,
        }


Events = Callable[[str, dict], None]


class Asker:
    """Answer questions from one index with one loaded generator (kept across questions)."""

    def __init__(
        self,
        retriever: Retriever,
        generator: Generator,
        settings: AskSettings | None = None,
        *,
        structured: bool = False,
        min_found: float = 0.0,
    ) -> None:
        """`structured` is what output="auto" means (constrained JSON for models that need it)
        and `min_found` what min_found=None means: both are the model preset's choices."""
        self.retriever = retriever
        self.generator = generator
        self.settings = settings or AskSettings()
        self.structured = structured
        self.min_found = min_found
        self.checker = CitationChecker(retriever.embedder, self.settings.support_threshold)

    def ask(
        self,
        question: str,
        *,
        on_token: Callable[[str], None] | None = None,
        on_event: Events | None = None,
        settings: AskSettings | None = None,
    ) -> Answer:
        """Answer `question`; stream tokens to `on_token`; report stages to `on_event`."""
        started = time.perf_counter()
        self._evidence = 0.0
        answer = self._ask(question, on_token, on_event, settings or self.settings)
        answer.evidence = round(self._evidence, 4)
        answer.usage.total_s = round(time.perf_counter() - started, 4)
        return answer

    def _ask(
        self,
        question: str,
        on_token: Callable[[str], None] | None,
        on_event: Events | None,
        cfg: AskSettings,
    ) -> Answer:
        event = on_event or (lambda name, data: None)
        stages: dict[str, float] = {}
        started = time.perf_counter()
        event("retrieving", {})
        hits = self.retriever.search(question, k=cfg.candidates, mode="hybrid")
        stages["retrieve"] = time.perf_counter() - started
        evidence = max((h.stages.dense_score or 0.0 for h in hits), default=0.0)
        self._evidence = evidence
        if not hits or evidence < cfg.min_evidence:
            nearest = self._sources(hits[:3])
            return self._abstain(question, "weak evidence", nearest, Usage(stages_s=stages))

        mark = time.perf_counter()
        sources, used, uncompressed = self._build_sources(question, hits, cfg)
        stages["compress_pack"] = time.perf_counter() - mark
        if not sources:
            return self._abstain(question, "no passage fits the context", self._sources(hits[:3]),
                                 Usage(stages_s=stages))  # fmt: skip
        structured = cfg.output == "json" or (cfg.output == "auto" and self.structured)
        template = load_prompt(cfg.json_prompt if structured else cfg.prompt)
        context = "\n\n".join(format_source(s.n, s.location, s.text) for s in sources)
        messages = template.messages(context, question)
        event("reading", {"sources": len(sources), "tokens": used})
        mark = time.perf_counter()
        response_format = _answer_schema(len(sources)) if structured else None
        found_p = self._found_probability(messages) if structured else None  # prefills the cache
        min_found = self.min_found if cfg.min_found is None else cfg.min_found
        if found_p is not None and found_p < min_found:  # no need to write the answer
            stages["generate"] = time.perf_counter() - mark
            usage = Usage(prompt_tokens=self.generator.chat_prompt_tokens(messages),
                          context_tokens=used, context_tokens_uncompressed=uncompressed,
                          stages_s=stages)  # fmt: skip
            answer = self._abstain(question, "the model is not confident the sources answer it",
                                   sources, usage)  # fmt: skip
            answer.found_p = found_p
            return answer
        pieces: list[str] = []
        first_token_s = 0.0
        live = _AnswerField()
        for piece in self.generator.stream(
            messages, cfg.max_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
            top_k=cfg.top_k, seed=cfg.seed, response_format=response_format,
        ):  # fmt: skip
            if not pieces:
                first_token_s = time.perf_counter() - mark
                event("answering", {})
            pieces.append(piece)
            shown = live.feed(piece) if structured else piece
            if on_token and shown:
                on_token(shown)
        generation = self.generator.last
        stages["generate"] = time.perf_counter() - mark
        raw = "".join(pieces).strip()
        if structured:
            raw = _from_json(raw)
            shown = live.text.strip()
            rest = raw[len(shown) :] if raw.startswith(shown) else ""
            if on_token and rest and raw != NOT_FOUND_MARKER:
                on_token(rest)  # the citations, once the JSON is complete
        usage = Usage(
            prompt_tokens=generation.prompt_tokens if generation else 0,
            completion_tokens=generation.completion_tokens if generation else 0,
            ttft_s=round(
                stages["retrieve"] + stages["compress_pack"] + first_token_s,
                4,
            ),  # fmt: skip
            context_tokens=used,
            context_tokens_uncompressed=uncompressed,
            stages_s=stages,
        )
        stop_reason = generation.stop_reason if generation else "complete"
        if NOT_FOUND_MARKER.lower() in raw.lower() or not raw:
            answer = self._abstain(question, "the model found no answer in the sources",
                                   sources, usage, raw)  # fmt: skip
            answer.stop_reason, answer.found_p = stop_reason, found_p
            return answer
        mark = time.perf_counter()
        checked = self.checker.check(raw, [SourceText(s.n, s.text) for s in sources], question)
        stages["verify"] = time.perf_counter() - mark
        removed = sorted({n for s in checked for n in s.invalid})
        if not any(s.supported for s in checked):
            answer = self._abstain(question, "the answer is not supported by the sources",
                                   sources, usage, raw)  # fmt: skip
            answer.stop_reason, answer.found_p = stop_reason, found_p
            return answer
        kept = [s for s in checked if s.supported or not cfg.strict]
        text = " ".join(s.text.rstrip() + "".join(f" [{n}]" for n in s.citations) for s in kept)
        return Answer(question, text, False, None, kept, sources, stop_reason, usage, raw,
                      removed, found_p=found_p)  # fmt: skip

    def _found_probability(self, messages: list[dict[str, str]]) -> float:
        """P(found=true) as the model sees it, read from its next-token distribution at the
        start of a structured reply (greedy decoding almost always writes true)."""
        yes, yes_bare, no, no_bare = self.generator.next_token_probabilities(
            messages, '{"found":', [" true", "true", " false", "false"]
        )
        total = yes + yes_bare + no + no_bare
        return round((yes + yes_bare) / total, 4) if total > 0 else 0.0

    def _build_sources(
        self, question: str, hits: list[Hit], cfg: AskSettings
    ) -> tuple[list[Source], int, int]:
        """Compress, de-duplicate, pack into the token budget and order the evidence."""
        count = self.generator.count_tokens
        candidates = []
        for hit in hits:
            text = hit.text
            if cfg.compress:
                text = compress(question, hit.text, keep_ratio=cfg.keep_ratio).text
            candidates.append((hit, text))
        keep = remove_near_duplicates([text for _, text in candidates])
        candidates = [candidates[i] for i in keep]
        template = load_prompt(cfg.prompt)
        fixed = self.generator.chat_prompt_tokens(template.messages("", question))
        budget = token_budget(self.generator.n_ctx, fixed, cfg.max_tokens)
        budget = min(budget, cfg.context_tokens)

        items = [
            _Candidate(
                hit,
                text,
                float(len(hits) - i),
                format_source(99, _location(hit.path, hit.page), text),
            )
            for i, (hit, text) in enumerate(candidates)
        ]
        packed = pack(items, budget, count, separator_tokens=count("\n\n"))
        ordered = lost_in_the_middle(packed)
        sources = [
            Source(n, it.hit.path, it.hit.page, it.hit.start, it.hit.end, it.body, it.hit.score)
            for n, it in enumerate(ordered, start=1)
        ]
        used = sum(count(format_source(s.n, s.location, s.text)) for s in sources)
        uncompressed = sum(count(it.hit.text) for it in ordered)
        return sources, used, uncompressed

    def _sources(self, hits: list[Hit]) -> list[Source]:
        return [Source(i, h.path, h.page, h.start, h.end, h.text, h.score)
                for i, h in enumerate(hits, start=1)]  # fmt: skip

    def _abstain(
        self, question: str, reason: str, nearest: list[Source], usage: Usage, raw: str = ""
    ) -> Answer:
        return Answer(question, NOT_FOUND, True, reason, [], [], "complete", usage, raw,
                      nearest=nearest)  # fmt: skip


def _answer_schema(n_sources: int) -> dict:
    """The JSON shape a structured answer must take: source ids limited to those given."""
    return {
        "type": "json_object",
        "schema": {
            "type": "object",
            "properties": {
                "found": {"type": "boolean"},
                "answer": {"type": "string"},  # maxLength makes llama.cpp's grammar crawl
                "sources": {
                    "type": "array",
                    "items": {"type": "integer", "enum": list(range(1, n_sources + 1))},
                    "maxItems": 3,
                },
            },
            "required": ["found", "answer", "sources"],
        },
    }


def _from_json(raw: str) -> str:
    """Turn a structured answer into "answer [n]" text; NOT FOUND when it found nothing.

    A reply cut off by max_tokens is not valid JSON: it counts as no answer.
    """
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        return ""
    if not isinstance(data, dict):
        return ""
    answer = str(data.get("answer") or "").strip()
    if not data.get("found") or not answer:
        return NOT_FOUND_MARKER
    cited = [n for n in data.get("sources") or [] if isinstance(n, int)]
    return answer + "".join(f" [{n}]" for n in dict.fromkeys(cited))


class _AnswerField:
    """Pull the "answer" string out of a structured reply as it streams, so a user sees the
    answer appear token by token instead of waiting for the whole JSON object."""

    _START = re.compile(r'"found"\s*:\s*true\s*,\s*"answer"\s*:\s*"')
    _BODY = re.compile(r'(?:[^"\\]|\\.)*')

    def __init__(self) -> None:
        self.reply = ""
        self.text = ""  # the answer as shown so far

    def feed(self, piece: str) -> str:
        """Add a piece of the reply; return the answer text it adds (maybe "")."""
        self.reply += piece
        start = self._START.search(self.reply)
        if not start:
            return ""
        body = self._BODY.match(self.reply, start.end())
        raw = body.group(0) if body else ""  # stops before a lone trailing backslash
        try:
            text = json.loads(f'"{raw}"')
        except json.JSONDecodeError:
            return ""  # an escape cut short (\u12): wait for the rest
        new, self.text = text[len(self.text) :], text
        return new


@dataclass
class _Candidate:
    """A passage as packing sees it: `text` is what the prompt will hold (counted)."""

    hit: Hit
    body: str
    score: float
    text: str


def _location(path: str, page: int | None) -> str:
    """How a source's origin is shown to the model and the user."""
    return path + (f" (page {page})" if page else "")
