"""Ask: retrieve → compress → pack → generate → verify citations → answer or abstain.

The answer comes only from the user's documents: weak evidence, a model that says it cannot
answer, or an answer its sources do not support all end in "not found in your documents".
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, cast

from rag.cite import CitationChecker, CitedSentence, SourceText
from rag.compress import compress, remove_near_duplicates
from rag.llm.base import (
    ChatModel,
    Generation,
    GenerationOptions,
    TokenLogprob,
    TokenProbabilities,
    capabilities_of,
)
from rag.locations import where
from rag.pack import pack, token_budget
from rag.prompts import NOT_FOUND_MARKER, PromptTemplate, format_source, load_prompt
from rag.settings import AnswerSettings
from rag.verdict import VERDICTS, is_yes_no_question, verdict_text

if TYPE_CHECKING:
    from rag.retrieve import Filters, Hit, Searcher

NOT_FOUND = "Not found in your documents."
# Which abstention signal an answer's "found" decision rested on (Answer.abstention_signal).
SIGNAL_P_FOUND = "p_found"  # the model's own P(found), read from its next-token distribution
SIGNAL_P_FOUND_LOGPROBS = "p_found: top_logprobs of the found token"  # the same, from a server
SIGNAL_NO_PROBABILITIES = "none: the model gives no token probabilities"
SIGNAL_TEXT = "none: free-text answers have no P(found)"
# Which output mode an answer used (Answer.output_mode).
OUTPUT_JSON = "json"
OUTPUT_TEXT = "text"
OUTPUT_TEXT_NO_SCHEMA = "text: the model server does not take a JSON schema"
TOP_LOGPROBS = 20  # alternatives asked for at each token (OpenAI's maximum)


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
    kind: str = ""
    detail: str | None = None
    heading: str = ""
    collection: str = ""  # the index it came from, when several were searched

    @property
    def location(self) -> str:
        """The path with the page, slide or sheet rows: "report.pdf (page 3)", after its
        collection when several indexes were searched: "mail: report.pdf (page 3)"."""
        return _located(self.collection, where(self.path, self.kind, self.page, self.detail,
                                               self.heading))  # fmt: skip


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
    source: str = "model"  # token counts: "model", "server" (its usage report) or "estimated"


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
    abstention_signal: str = SIGNAL_TEXT  # what the found/not-found decision could rest on
    output_mode: str = OUTPUT_TEXT  # json, text, or text because JSON was not available
    token_count: str = "model"  # how prompt tokens were counted (the model, a server, an estimate)
    model: str = ""  # the model that answered (a file name or the server's model id)
    generation: Generation | None = None  # the model's own statistics (None: it never ran)
    retrieval_timings: dict[str, float] = field(default_factory=dict)
    rewritten_question: str | None = None  # a follow-up made standalone from the chat history
    cached: bool = False  # served from the answer cache (`rag serve`), not generated again

    def to_dict(self) -> dict:
        """The `rag ask --json` shape."""
        return {
            "answer": self.answer,
            "abstained": self.abstained,
            "abstain_reason": self.abstain_reason,
            "sentences": [s.to_dict() for s in self.sentences],
            "sources": [asdict(s) for s in self.sources],
            "nearest": [asdict(s) for s in self.nearest],
            "removed_citations": self.removed_citations,
            "stop_reason": self.stop_reason,
            "usage": asdict(self.usage),
            "raw_answer": self.raw_answer,
            "evidence": self.evidence,
            "found_p": self.found_p,
            "abstention_signal": self.abstention_signal,
            "output_mode": self.output_mode,
            "token_count": self.token_count,
            "model": self.model,
            "retrieval_timings": self.retrieval_timings,
            "rewritten_question": self.rewritten_question,
            "cached": self.cached,
        }


Events = Callable[[str, dict], None]


class Asker:
    """Answer questions from one retriever with one chat model; holds no per-question state,
    so several threads may ask at once (a model that runs one reply at a time makes the
    others wait for it). The retriever is a `Retriever`, or anything with its `retrieve` and
    `embedder` (`rag.retrieve.Searcher`: e.g. `rag.multi.MultiRetriever`)."""

    def __init__(
        self,
        retriever: Searcher,
        model: ChatModel,
        settings: AnswerSettings | None = None,
    ) -> None:
        self.retriever = retriever
        self.model = model
        self.settings = settings or AnswerSettings()

    def ask(
        self,
        question: str,
        *,
        history: Sequence[tuple[str, str]] = (),
        on_token: Callable[[str], None] | None = None,
        on_event: Events | None = None,
        settings: AnswerSettings | None = None,
        filters: Filters | None = None,
    ) -> Answer:
        """Answer `question` from the passages `filters` allows (default: all); stream tokens
        to `on_token`; report stages to `on_event`. `history`, earlier (role, text) turns,
        makes a follow-up standalone first (`answer.rewritten_question`)."""
        standalone, rewrite_s = question, 0.0
        if history:
            from rag.rewrite import standalone_question

            if on_event:
                on_event("rewriting", {"turns": len(history)})
            started = time.perf_counter()
            standalone = standalone_question(self.model, history, question)
            rewrite_s = time.perf_counter() - started
        started = time.perf_counter()
        answer = self._ask(standalone, on_token, on_event, settings or self.settings, filters)
        answer.usage.total_s = round(time.perf_counter() - started, 4)
        if history:
            answer.question, answer.rewritten_question = question, standalone
            answer.usage.stages_s["rewrite"] = rewrite_s
            answer.usage.total_s = round(answer.usage.total_s + rewrite_s, 4)
            answer.usage.ttft_s = round(answer.usage.ttft_s + rewrite_s, 4)
        return answer

    def _ask(
        self,
        question: str,
        on_token: Callable[[str], None] | None,
        on_event: Events | None,
        cfg: AnswerSettings,
        filters: Filters | None = None,
    ) -> Answer:
        event = on_event or (lambda name, data: None)
        stages: dict[str, float] = {}
        started = time.perf_counter()
        event("retrieving", {})
        retrieval = self.retriever.retrieve(question, k=cfg.candidates, mode="hybrid",
                                            filters=filters)  # fmt: skip
        hits = retrieval.hits
        stages["retrieve"] = time.perf_counter() - started
        evidence = round(max((h.stages.dense_score or 0.0 for h in hits), default=0.0), 4)
        caps = capabilities_of(self.model)
        structured = cfg.output == "json" and caps.json_schema
        mode = OUTPUT_JSON if structured else OUTPUT_TEXT
        if cfg.output == "json" and not caps.json_schema:
            mode = OUTPUT_TEXT_NO_SCHEMA
            cfg = replace(cfg, output="text")  # the free-text prompt, not the JSON one
        can_probe = structured and isinstance(self.model, TokenProbabilities)
        watch = structured and not can_probe and caps.stream_logprobs
        signal = SIGNAL_P_FOUND if can_probe else SIGNAL_NO_PROBABILITIES
        signal = SIGNAL_P_FOUND_LOGPROBS if watch else signal
        signal = signal if structured else SIGNAL_TEXT
        result = _Outcome(question, evidence, signal, retrieval.timings, mode, caps.tokenizer,
                          self.model.name)  # fmt: skip
        if not hits or evidence < cfg.min_evidence:
            nearest = _sources(hits[:3])
            return result.abstain("weak evidence", nearest, Usage(stages_s=stages))

        template = _template(cfg, question)
        mark = time.perf_counter()
        sources, used, uncompressed = self.build_sources(question, hits, cfg)
        stages["compress_pack"] = time.perf_counter() - mark
        if not sources:
            return result.abstain("no passage fits the context", _sources(hits[:3]),
                                  Usage(stages_s=stages))  # fmt: skip
        context = "\n\n".join(format_source(s.n, s.location, s.text) for s in sources)
        messages = template.messages(context, question)
        event("reading", {"sources": len(sources), "tokens": used})
        mark = time.perf_counter()
        if can_probe:  # also prefills the cache the answer then reuses
            result.found_p = _found_probability(cast(TokenProbabilities, self.model), messages)
        if result.found_p is not None and result.found_p < cfg.min_found:
            stages["generate"] = time.perf_counter() - mark
            usage = Usage(prompt_tokens=self.model.chat_prompt_tokens(messages),
                          context_tokens=used, context_tokens_uncompressed=uncompressed,
                          stages_s=stages)  # fmt: skip
            return result.abstain("the model is not confident the sources answer it",
                                  sources, usage)  # fmt: skip
        schema = _answer_schema(len(sources), verdict=template.name == cfg.verdict_prompt)
        options = GenerationOptions(
            max_tokens=cfg.max_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
            top_k=cfg.top_k, seed=cfg.seed,
            response_format=schema if structured else None,
            top_logprobs=TOP_LOGPROBS if watch else 0,
        )  # fmt: skip
        pieces: list[str] = []
        first_token_s = 0.0
        live = _AnswerField()
        unsure = False
        stream = self.model.stream(messages, options)
        try:
            for piece in stream:
                if not pieces:
                    first_token_s = time.perf_counter() - mark
                    event("answering", {})
                pieces.append(piece)
                if watch and result.found_p is None:
                    result.found_p = _found_from_logprobs(stream.token_logprobs)
                    if result.found_p is not None and result.found_p < cfg.min_found:
                        unsure = True  # stop generating: the answer would not be shown
                        break
                shown = live.feed(piece) if structured else piece
                if on_token and shown:
                    on_token(shown)
        finally:
            stream.close()
        generation = stream.generation
        result.generation = generation
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
            ttft_s=round(stages["retrieve"] + stages["compress_pack"] + first_token_s, 4),
            context_tokens=used,
            context_tokens_uncompressed=uncompressed,
            stages_s=stages,
        )
        usage.source = generation.usage_source if generation else "model"
        result.stop_reason = generation.stop_reason if generation else "complete"
        if unsure:
            return result.abstain("the model is not confident the sources answer it",
                                  sources, usage)  # fmt: skip
        if says_not_found(raw):
            return result.abstain("the model found no answer in the sources", sources, usage, raw)
        event("verifying", {"sources": len(sources)})
        mark = time.perf_counter()
        checker = CitationChecker(self.retriever.embedder, cfg.support_threshold, cfg.claim_margin)
        checked = checker.check(raw, [SourceText(s.n, s.text) for s in sources], question)
        stages["verify"] = time.perf_counter() - mark
        removed = sorted({n for s in checked for n in s.invalid})
        if not any(s.supported for s in checked):
            return result.abstain("the answer is not supported by the sources", sources, usage,
                                  raw)  # fmt: skip
        kept = [s for s in checked if s.supported or not cfg.strict]
        text = " ".join(s.text.rstrip() + "".join(f" [{n}]" for n in s.citations) for s in kept)
        return result.answer(text, kept, sources, usage, raw, removed)

    def build_sources(
        self, question: str, hits: list[Hit], cfg: AnswerSettings
    ) -> tuple[list[Source], int, int]:
        """Compress, de-duplicate and pack `hits` into the token budget of the prompt `cfg`
        sends (`pack` puts the strongest evidence first and last); return the sources, the
        tokens they take, and what they would have taken uncompressed."""
        template = _template(cfg, question)
        count = self.model.count_tokens
        candidates = []
        for hit in hits:
            text = hit.text
            if cfg.compress:
                text = compress(question, hit.text, keep_ratio=cfg.keep_ratio).text
            candidates.append((hit, text))
        keep = remove_near_duplicates([text for _, text in candidates])
        candidates = [candidates[i] for i in keep]
        fixed = self.model.chat_prompt_tokens(template.messages("", question))
        budget = token_budget(self.model.n_ctx, fixed, cfg.max_tokens)
        budget = min(budget, cfg.context_tokens)

        items = [
            _Candidate(
                hit,
                text,
                float(len(hits) - i),
                format_source(99, _hit_location(hit), text),
            )
            for i, (hit, text) in enumerate(candidates)
        ]
        ordered = pack(items, budget, count, separator_tokens=count("\n\n"))
        sources = [_source(n, it.hit, it.body) for n, it in enumerate(ordered, start=1)]
        used = sum(count(format_source(s.n, s.location, s.text)) for s in sources)
        uncompressed = sum(count(it.hit.text) for it in ordered)
        return sources, used, uncompressed


@dataclass
class _Outcome:
    """What one question has gathered so far, turned into its Answer at the end."""

    question: str
    evidence: float
    signal: str
    retrieval_timings: dict[str, float]
    output_mode: str = OUTPUT_TEXT
    token_count: str = "model"
    model: str = ""
    found_p: float | None = None
    generation: Generation | None = None
    stop_reason: str = "complete"

    def abstain(self, reason: str, nearest: list[Source], usage: Usage, raw: str = "") -> Answer:
        return Answer(self.question, NOT_FOUND, True, reason, [], [], self.stop_reason, usage,
                      raw, nearest=nearest, **self._extras())  # fmt: skip

    def answer(
        self,
        text: str,
        sentences: list[CitedSentence],
        sources: list[Source],
        usage: Usage,
        raw: str,
        removed: list[int],
    ) -> Answer:
        return Answer(self.question, text, False, None, sentences, sources, self.stop_reason,
                      usage, raw, removed, **self._extras())  # fmt: skip

    def _extras(self) -> dict:
        return {
            "evidence": self.evidence,
            "found_p": self.found_p,
            "abstention_signal": self.signal,
            "output_mode": self.output_mode,
            "token_count": self.token_count,
            "model": self.model,
            "generation": self.generation,
            "retrieval_timings": self.retrieval_timings,
        }


def says_not_found(raw: str) -> bool:
    """Whether the reply is the prompt's NOT FOUND marker (or empty): a reply that opens with
    it in any case, or has it in capitals; "the sensor is not found [1]" is an answer."""
    text = raw.strip()
    return not text or text.upper().startswith(NOT_FOUND_MARKER) or NOT_FOUND_MARKER in text


def _template(cfg: AnswerSettings, question: str = "") -> PromptTemplate:
    """The prompt these settings send: the JSON one for structured output, its verdict
    variant for a yes/no question."""
    if cfg.output != "json":
        return load_prompt(cfg.prompt)
    if cfg.verdicts and is_yes_no_question(question):
        return load_prompt(cfg.verdict_prompt)
    return load_prompt(cfg.json_prompt)


def _found_probability(model: TokenProbabilities, messages: list[dict[str, str]]) -> float:
    """P(found=true) as the model sees it, read from its next-token distribution at the
    start of a structured reply (greedy decoding almost always writes true)."""
    yes, yes_bare, no, no_bare = model.next_token_probabilities(
        messages, '{"found":', [" true", "true", " false", "false"]
    )
    total = yes + yes_bare + no + no_bare
    return round((yes + yes_bare) / total, 4) if total > 0 else 0.0


_FOUND_KEY = re.compile(r'"found"\s*:\s*$')


def _found_from_logprobs(tokens: list[TokenLogprob]) -> float | None:
    """P(found=true) off a streamed structured reply, once the token that writes the `found`
    value has arrived (else None): from the top alternatives the server sent for that
    position, the same next-token distribution `_found_probability` reads in process."""
    text = ""
    for token in tokens:
        if _FOUND_KEY.search(text) and token.token.strip():
            return _p_true(token)
        text += token.token
    return None


def _p_true(token: TokenLogprob) -> float:
    """P(true) / P(true or false) among the alternatives at the found token's position."""
    yes = no = 0.0
    top = dict(token.top) or {token.token: token.logprob}
    for text, logprob in top.items():
        word = text.strip().lower()
        if word == "true":
            yes += math.exp(logprob)
        elif word == "false":
            no += math.exp(logprob)
    return round(yes / (yes + no), 4) if yes + no > 0 else 0.0


def _sources(hits: list[Hit]) -> list[Source]:
    return [_source(i, h, h.text) for i, h in enumerate(hits, start=1)]


def _source(n: int, hit: Hit, text: str) -> Source:
    return Source(n, hit.path, hit.page, hit.start, hit.end, text, hit.score, hit.kind,
                  hit.detail, hit.heading, hit.collection)  # fmt: skip


def _answer_schema(n_sources: int, *, verdict: bool = False) -> dict:
    """The JSON shape a structured answer must take: source ids limited to those given; with
    `verdict`, a yes/no/maybe field after the sentence it rests on."""
    properties: dict[str, dict] = {
        "found": {"type": "boolean"},
        "answer": {"type": "string"},  # maxLength makes llama.cpp's grammar crawl
    }
    if verdict:
        properties["verdict"] = {"type": "string", "enum": list(VERDICTS)}
    properties["sources"] = {
        "type": "array",
        "items": {"type": "integer", "enum": list(range(1, n_sources + 1))},
        "maxItems": 3,
    }
    return {
        "type": "json_object",
        "schema": {"type": "object", "properties": properties, "required": list(properties)},
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
    verdict = str(data.get("verdict") or "").strip().lower()
    if verdict in VERDICTS:
        answer = verdict_text(verdict, answer)
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


def _hit_location(hit: Hit) -> str:
    """How a source's origin is shown to the model and the user."""
    return _located(hit.collection, where(hit.path, hit.kind, hit.page, hit.detail, hit.heading))


def _located(collection: str, location: str) -> str:
    """ "mail: inbox/a.eml" for a passage from the collection "mail"; else the location."""
    return f"{collection}: {location}" if collection else location
