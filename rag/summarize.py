"""Whole-document questions: map-reduce over one indexed document's chunks, in budget.

`rag summarize FILE` and `rag ask --document FILE "question"` read every chunk of one
document instead of the few that retrieval finds. Consecutive chunks are grouped into map
steps; each step summarises its group (or notes what it says about the question), citing
its sources as [n]. Reduce steps then combine those partial texts, a few at a time, until
one is left. Citation numbers are local to a step and mapped back to the chunks they name,
so the final sentences cite the document's own chunks (numbered 1, 2, ... in document
order), and they are checked against those chunks' text as answers are (`rag.cite`).

Every step fits the generator's context window: the chat prompt the model will be fed is
counted with the model's own tokenizer and chat template (`chat_prompt_tokens`), and that
count plus the tokens reserved for the reply is at most `n_ctx`. Adding up separately
counted pieces is not enough: llama_index's tree summarize overflowed llama.cpp's window
because the template's tokens (a second BOS) were never counted (run-llama/llama_index#14066).
The reply's reserve is lowered when the window is too small for two partial texts and a
reply, so a reduce step can always combine at least two.

>>> reader = DocumentReader(store, model, embedder)  # doctest: +SKIP
>>> summary = reader.summarize("docs/manual.md", progress=print)  # doctest: +SKIP
>>> summary.text, [s.location for s in summary.sources]  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from rag.ask import NOT_FOUND, Source, Usage, says_not_found
from rag.chunking import with_heading
from rag.cite import (
    CITATION,
    CitationChecker,
    CitedSentence,
    SourceText,
    cited_sentences,
    strip_citations,
)
from rag.discover import absolute
from rag.errors import ConfigError, ContextOverflowError, DocumentNotIndexedError
from rag.llm.base import ChatModel, GenerationOptions, capabilities_of
from rag.locations import where
from rag.prompts import PromptTemplate, format_source, load_prompt
from rag.settings import AnswerSettings
from rag.text.sentences import split_sentences

if TYPE_CHECKING:
    from rag.embed import Embedder
    from rag.store import Store, StoredChunk

Progress = Callable[[int, int], None]  # (steps done, steps in all: an estimate until the end)
MIN_REPLY_TOKENS = 16  # a step's reply shorter than this could not say anything
SEPARATOR = "\n\n"  # between two source blocks or partial texts in a prompt


@dataclass
class DocumentSource(Source):
    """A chunk of the document that the result cites: `n` is its number in the document
    (1 = the first chunk), `chunk_id` its id in the index."""

    chunk_id: int = 0


@dataclass(frozen=True)
class Step:
    """One map or reduce call: what it read and what it cost.

    `chunks` is the first and last chunk number it covers; `inputs` the source blocks (map)
    or partial texts (reduce) in its prompt; `prompt_tokens` the chat prompt as the model's
    tokenizer and template count it before it is sent, so `prompt_tokens + max_tokens <=
    n_ctx` always holds.
    """

    kind: str  # "map" or "reduce"
    level: int  # 0 for map steps, then 1, 2, ... for each round of reduce steps
    chunks: tuple[int, int]
    inputs: int
    prompt_tokens: int
    max_tokens: int
    completion_tokens: int
    stop_reason: str
    found: bool = True  # False: the step's reply said NOT FOUND (or nothing)


@dataclass
class DocumentSummary:
    """A summary of one document (or an answer from all of it), with checked citations.

    `sentences` cite chunks by their number in the document; `sources` are the cited chunks
    with their locations. A sentence none of its chunks supports is kept and flagged
    (`supported` False), or left out with `strict`.
    """

    path: str
    question: str | None
    text: str
    sentences: list[CitedSentence]
    sources: list[DocumentSource]
    chunks: int
    steps: list[Step]
    usage: Usage
    abstained: bool = False
    abstain_reason: str | None = None
    stop_reason: str = "complete"
    removed_citations: list[int] = field(default_factory=list)
    model: str = ""
    token_count: str = "model"
    reply_tokens: int = 0  # the tokens each step could write (document_max_tokens, or fewer)
    notes: list[str] = field(default_factory=list)

    @property
    def unsupported(self) -> list[CitedSentence]:
        """The sentences that none of their cited chunks supports."""
        return [s for s in self.sentences if not s.supported]

    def to_dict(self) -> dict:
        """The `rag summarize --json` (and `rag ask --document --json`) shape."""
        return {
            "path": self.path,
            "question": self.question,
            "answer": self.text,
            "abstained": self.abstained,
            "abstain_reason": self.abstain_reason,
            "sentences": [s.to_dict() for s in self.sentences],
            "sources": [asdict(s) for s in self.sources],
            "chunks": self.chunks,
            "steps": [asdict(s) for s in self.steps],
            "removed_citations": self.removed_citations,
            "stop_reason": self.stop_reason,
            "usage": asdict(self.usage),
            "model": self.model,
            "token_count": self.token_count,
            "reply_tokens": self.reply_tokens,
            "notes": self.notes,
        }


def find_document(store: Store, path: str, index: object = "") -> str:
    """The key of the indexed document `path` names: the key itself ("a.mbox#<id>"), or the
    file as ingested (an absolute path, symlinks not resolved). Raise
    DocumentNotIndexedError, saying to ingest it, when the index does not hold it."""
    for candidate in dict.fromkeys([path, absolute(path), os.path.realpath(path)]):
        if store.keys_matching(_glob_literal(candidate)):
            return candidate
    file = absolute(path)
    parts = store.keys_matching(_glob_literal(file) + "#*")
    if len(parts) == 1:
        return parts[0]
    if parts:
        shown = ", ".join(parts[:3]) + (f" (+{len(parts) - 3} more)" if len(parts) > 3 else "")
        raise DocumentNotIndexedError(
            path, f"{path} holds {len(parts)} indexed documents; name one of them: {shown}"
        )
    where_ = f" at {index}" if index else ""
    same_name = store.keys_matching("*" + os.sep + _glob_literal(os.path.basename(file)))
    hint = f" (indexed under that name: {', '.join(same_name[:3])})" if same_name else ""
    raise DocumentNotIndexedError(
        path, f"{path} is not in the index{where_}{hint}; index it first: rag ingest {path}"
    )


def _glob_literal(text: str) -> str:
    """`text` as a GLOB pattern that matches only itself."""
    return re.sub(r"([*?\[])", r"[\1]", text)


@dataclass
class _Block:
    """A chunk (or a piece of one too long for a step) as a map step shows it."""

    n: int  # the chunk's number in the document
    text: str
    location: str
    tokens: int = 0  # the block's estimated cost in a prompt


@dataclass
class _Partial:
    """What a step wrote: sentences citing chunk numbers, the chunks the step could cite,
    and the range of chunks it covers. Map steps' sentences are already checked."""

    sentences: list[tuple[str, list[int]]]
    valid: set[int]
    first: int
    last: int
    checked: list[CitedSentence] | None = None


@dataclass
class _Plan:
    """The budget every step keeps: at most `limit` prompt tokens and `reply` reply tokens."""

    reply: int
    limit: int
    map_fixed: int
    reduce_fixed: int
    wrap: int
    separator: int


class DocumentReader:
    """Summarise one indexed document, or answer a question from all of it, by map-reduce.

    Holds no per-call state. `embedder` checks the final citations (as answers are checked);
    `settings` holds the prompts (`document_*`), `document_max_tokens` and the checking
    thresholds.

    >>> store, model = index.pipeline.store(), index.chat_model()  # doctest: +SKIP
    >>> reader = DocumentReader(store, model, index.embedder)  # doctest: +SKIP
    >>> reader.summarize("manual.md", question="How is the mast mounted?").text  # doctest: +SKIP
    """

    def __init__(
        self,
        store: Store,
        model: ChatModel,
        embedder: Embedder | None,
        settings: AnswerSettings | None = None,
    ) -> None:
        self.store = store
        self.model = model
        self.embedder = embedder
        self.settings = settings or AnswerSettings()

    def summarize(
        self,
        path: str,
        *,
        question: str | None = None,
        progress: Progress | None = None,
        settings: AnswerSettings | None = None,
    ) -> DocumentSummary:
        """Summarise the document `path` (or, with `question`, answer it from the whole
        document); report (steps done, steps in all) to `progress` after every step."""
        started = time.perf_counter()
        cfg = settings or self.settings
        asked = question.strip() if question and question.strip() else None
        key = find_document(self.store, path, getattr(self.store, "directory", ""))
        chunks = list(self.store.iter_chunks(key))
        if not chunks:
            raise ConfigError(f"{key} is indexed but has no text to read")
        map_prompt = load_prompt(cfg.document_question_map_prompt if asked
                                 else cfg.document_map_prompt)  # fmt: skip
        reduce_prompt = load_prompt(cfg.document_question_reduce_prompt if asked
                                    else cfg.document_reduce_prompt)  # fmt: skip
        run = _Run(self, cfg, asked or "", map_prompt, reduce_prompt, progress)
        result = run.read(key, chunks)
        result.usage.total_s = round(time.perf_counter() - started, 4)
        return result


class _Run:
    """One summary: plans the steps, runs them, and assembles the result."""

    def __init__(
        self,
        reader: DocumentReader,
        cfg: AnswerSettings,
        question: str,
        map_prompt: PromptTemplate,
        reduce_prompt: PromptTemplate,
        progress: Progress | None,
    ) -> None:
        self.model = reader.model
        self.checker = CitationChecker(reader.embedder, cfg.support_threshold, cfg.claim_margin)
        self.cfg = cfg
        self.question = question
        self.map_prompt = map_prompt
        self.reduce_prompt = reduce_prompt
        self.progress = progress or (lambda done, total: None)
        self.steps: list[Step] = []
        self.notes: list[str] = []
        self.removed: list[int] = []
        self.cut_chunks: list[int] = []
        self.done = self.total = 0
        self.plan = self._plan()

    # ---- the budget --------------------------------------------------------------------

    def _plan(self) -> _Plan:
        """How many tokens each step may send and write, from the window and the prompts."""
        count, n_ctx = self.model.count_tokens, self.model.n_ctx
        map_fixed = self.model.chat_prompt_tokens(self.map_prompt.messages("", self.question))
        reduce_fixed = self.model.chat_prompt_tokens(self.reduce_prompt.messages("", self.question))
        wrap = count(_partial_block(99, "")) + 2  # + 2: the sentence's own edges
        separator = count(SEPARATOR)
        room = n_ctx - max(map_fixed, reduce_fixed) - 2 * wrap - separator
        reply = min(self.cfg.document_max_tokens, room // 3)
        if reply < MIN_REPLY_TOKENS:
            need = max(map_fixed, reduce_fixed) + 2 * wrap + separator + 3 * MIN_REPLY_TOKENS
            raise ConfigError(
                f"the context window ({n_ctx:,} tokens) is too small to read a document in "
                f"steps: the prompts take {max(map_fixed, reduce_fixed):,} tokens, and a "
                f"step needs room for two partial texts and a reply (at least {need:,} in "
                "all); raise generation.n_ctx or use a model with a larger context window"
            )
        if reply < self.cfg.document_max_tokens:
            self.notes.append(
                f"each step could write {reply} tokens, not answer.document_max_tokens="
                f"{self.cfg.document_max_tokens}: the context window ({n_ctx:,}) must hold "
                "two partial texts and a reply"
            )
        return _Plan(reply, n_ctx - reply, map_fixed, reduce_fixed, wrap, separator)

    def _fits(self, template: PromptTemplate, context: str) -> tuple[bool, int]:
        """Whether the chat prompt with `context` leaves the reply's tokens; its count."""
        tokens = self.model.chat_prompt_tokens(template.messages(context, self.question))
        return tokens <= self.plan.limit, tokens

    # ---- the run -----------------------------------------------------------------------

    def read(self, key: str, chunks: list[StoredChunk]) -> DocumentSummary:
        texts = {n: c.text for n, c in enumerate(chunks, start=1)}
        blocks = [self._block(n, key, c) for n, c in enumerate(chunks, start=1)]
        groups = self._map_groups(blocks)
        self.total = len(groups) + self._reduce_estimate(len(groups))
        self.progress(0, self.total)
        partials: list[_Partial] = []
        for i, group in enumerate(groups, start=1):
            partial = self._map(group, texts)
            if partial is not None:
                partials.append(partial)
            later = len(groups) - i
            self._advance(later + self._reduce_estimate(len(partials) + later))
        final = self._reduce_all(partials)
        return self._result(key, chunks, texts, final)

    def _advance(self, remaining: int) -> None:
        """One more step done; `remaining` is the estimate of the steps still to run."""
        self.done += 1
        self.total = self.done + remaining
        self.progress(self.done, self.total)

    def _reduce_estimate(self, partials: int) -> int:
        """Reduce steps `partials` texts of the longest reply would take (an upper bound)."""
        plan = self.plan
        room = plan.limit - plan.reduce_fixed
        per_step = max(2, room // (plan.reply + plan.wrap + plan.separator))
        steps = 0
        while partials > 1:
            groups = math.ceil(partials / per_step)
            steps += partials // per_step + (1 if partials % per_step > 1 else 0)
            partials = groups
        return steps

    # ---- map ---------------------------------------------------------------------------

    def _block(self, n: int, key: str, chunk: StoredChunk) -> _Block:
        base, mark, inner = key.partition("#")
        name = os.path.basename(base) + mark + inner
        location = where(name, chunk.kind, chunk.page, chunk.detail)
        block = _Block(n, with_heading(chunk.heading, chunk.text), location)
        block.tokens = self.model.count_tokens(format_source(99, location, block.text))
        return block

    def _map_groups(self, blocks: list[_Block]) -> list[list[_Block]]:
        """Consecutive blocks, as many per step as fit; a block too long for any step is cut
        at sentence (else word) boundaries. Each group's prompt is counted exactly."""
        content = self.plan.limit - self.plan.map_fixed
        pending = deque(blocks)
        groups: list[list[_Block]] = []
        while pending:
            group: list[_Block] = []
            used = 0
            while pending:
                cost = pending[0].tokens + (self.plan.separator if group else 0)
                if group and used + cost > content:
                    break
                group.append(pending.popleft())
                used += cost
            while not self._fits(self.map_prompt, _sources(group))[0]:
                if len(group) > 1:
                    pending.appendleft(group.pop())
                    continue
                pieces = self._halve(group.pop())
                pending.extendleft(reversed(pieces[1:]))
                group = [pieces[0]]
            groups.append(group)
        return groups

    def _halve(self, block: _Block) -> list[_Block]:
        """Cut a block that no step can hold in two, at the sentence (else the space)
        nearest its middle."""
        text = block.text.strip()
        if len(text) < 2:
            raise ContextOverflowError(
                f"chunk {block.n} cannot be cut small enough for the context window "
                f"({self.model.n_ctx:,} tokens); raise generation.n_ctx"
            )
        cuts = [s for s, _ in split_sentences(text)[1:]]
        cuts = cuts or [m.start() for m in re.finditer(r"\s+", text)]
        cuts = [c for c in cuts if text[:c].strip() and text[c:].strip()] or [len(text) // 2]
        cut = min(cuts, key=lambda c: abs(c - len(text) // 2))
        if block.n not in self.cut_chunks:
            self.cut_chunks.append(block.n)
        halves = [_Block(block.n, text[:cut].strip(), block.location),
                  _Block(block.n, text[cut:].strip(), block.location)]  # fmt: skip
        for half in halves:
            half.tokens = self.model.count_tokens(format_source(99, block.location, half.text))
        return halves

    def _map(self, group: list[_Block], texts: dict[int, str]) -> _Partial | None:
        """Summarise (or question) one group of blocks; its sentences cite chunk numbers."""
        table = {i: block.n for i, block in enumerate(group, start=1)}
        raw = self._generate(self.map_prompt, _sources(group), "map", 0,
                             (group[0].n, group[-1].n), len(group))  # fmt: skip
        if raw is None:
            return None
        text = self._globalize(raw, table)
        valid = set(table.values())
        sources = [SourceText(n, texts[n]) for n in sorted(valid)]
        checked = self.checker.check(text, sources, self.question or None)
        if not checked:
            return None
        sentences = [(s.text, list(s.citations)) for s in checked]
        return _Partial(sentences, valid, group[0].n, group[-1].n, checked)

    # ---- reduce ------------------------------------------------------------------------

    def _reduce_all(self, partials: list[_Partial]) -> _Partial | None:
        """Combine partial texts, a few per step, round after round until one is left."""
        level = 0
        while len(partials) > 1:
            level += 1
            groups = self._reduce_groups(partials)
            later = self._reduce_estimate(len(groups))
            left = sum(1 for g in groups if len(g) > 1)
            merged: list[_Partial] = []
            for group in groups:
                if len(group) == 1:
                    merged.append(group[0])  # the last one of a round waits for the next
                    continue
                partial = self._reduce(group, level)
                if partial is not None:
                    merged.append(partial)
                left -= 1
                self._advance(left + later)
            partials = merged
        return partials[0] if partials else None

    def _reduce_groups(self, partials: list[_Partial]) -> list[list[_Partial]]:
        """Consecutive partial texts, as many per step as fit (at least two: a text too
        long to pair is shortened, with a note). Each group's prompt is counted exactly."""
        content = self.plan.limit - self.plan.reduce_fixed
        pending = deque(partials)
        groups: list[list[_Partial]] = []
        count = self.model.count_tokens
        while pending:
            group: list[_Partial] = []
            used = 0
            while pending:
                cost = count(_render(pending[0], _numbering([pending[0]]))) + self.plan.wrap
                cost += self.plan.separator if group else 0
                if len(group) >= 2 and used + cost > content:
                    break
                group.append(pending.popleft())
                used += cost
            while not self._fits(self.reduce_prompt, _partials(group))[0]:
                if len(group) > 2:
                    pending.appendleft(group.pop())
                else:
                    self._shorten(max(group, key=lambda p: count(_render(p, _numbering([p])))))
            groups.append(group)
        return groups

    def _shorten(self, partial: _Partial) -> None:
        """Drop a partial text's last sentence (or, of one sentence, its second half)."""
        if len(partial.sentences) > 1:
            partial.sentences.pop()
        else:
            text, cited = partial.sentences[0]
            words = text.split()
            if len(words) < 2:
                raise ContextOverflowError(
                    f"two partial texts do not fit the context window ({self.model.n_ctx:,} "
                    "tokens); raise generation.n_ctx"
                )
            partial.sentences[0] = (" ".join(words[: len(words) // 2]) + " …", cited)
        partial.checked = None
        note = (f"the partial text of chunks {partial.first}-{partial.last} was shortened to "
                "fit a reduce step")  # fmt: skip
        if note not in self.notes:
            self.notes.append(note)

    def _reduce(self, group: list[_Partial], level: int) -> _Partial | None:
        table = {local: n for n, local in _numbering(group).items()}
        first, last = group[0].first, group[-1].last
        raw = self._generate(self.reduce_prompt, _partials(group), "reduce", level,
                             (first, last), len(group))  # fmt: skip
        if raw is None:
            return None
        text = self._globalize(raw, table)
        valid = set(table.values())
        sentences = _parse(text, valid)
        return _Partial(sentences, valid, first, last) if sentences else None

    # ---- one call ----------------------------------------------------------------------

    def _generate(
        self,
        template: PromptTemplate,
        context: str,
        kind: str,
        level: int,
        chunks: tuple[int, int],
        inputs: int,
    ) -> str | None:
        """Run one step; return its reply, or None when it found nothing."""
        fits, prompt_tokens = self._fits(template, context)
        if not fits:  # the groups were made to fit: this is a bug, not a user error
            raise ContextOverflowError(
                f"{kind} step over chunks {chunks[0]}-{chunks[1]}: {prompt_tokens:,} prompt "
                f"tokens + {self.plan.reply:,} exceed the context window ({self.model.n_ctx:,})"
            )
        cfg = self.cfg
        options = GenerationOptions(max_tokens=self.plan.reply, temperature=cfg.temperature,
                                    top_p=cfg.top_p, top_k=cfg.top_k,
                                    seed=cfg.seed)  # fmt: skip
        stream = self.model.stream(template.messages(context, self.question), options)
        try:
            raw = "".join(stream).strip()
        finally:
            stream.close()
        generation = stream.generation
        stop = generation.stop_reason if generation else "complete"
        if stop == "truncated":
            raw = _drop_cut_sentence(raw)
        found = not says_not_found(raw) if self.question else bool(raw)
        self.steps.append(Step(kind, level, chunks, inputs, prompt_tokens, self.plan.reply,
                               generation.completion_tokens if generation else 0,
                               stop, found))  # fmt: skip
        if not found and not self.question:
            self.notes.append(f"the {kind} step over chunks {chunks[0]}-{chunks[1]} wrote "
                              "nothing")  # fmt: skip
        return raw if found else None

    def _globalize(self, raw: str, table: dict[int, int]) -> str:
        """The reply with its step-local [n] replaced by the chunk numbers they stand for;
        numbers that name no source of the step are removed and recorded."""

        def swap(match: re.Match[str]) -> str:
            numbers = [int(x) for x in re.split(r"[,;]", match.group(1))]
            self.removed.extend(k for k in numbers if k not in table)
            mapped = list(dict.fromkeys(table[k] for k in numbers if k in table))
            return "".join(f" [{n}]" for n in mapped)

        return CITATION.sub(swap, raw)

    # ---- the result --------------------------------------------------------------------

    def _result(
        self,
        key: str,
        chunks: list[StoredChunk],
        texts: dict[int, str],
        final: _Partial | None,
    ) -> DocumentSummary:
        self.progress(self.done, self.done)
        usage = Usage(
            prompt_tokens=sum(s.prompt_tokens for s in self.steps),
            completion_tokens=sum(s.completion_tokens for s in self.steps),
        )
        caps = capabilities_of(self.model)
        if self.cut_chunks:
            self.notes.append("cut to fit a step: chunk(s) "
                              + ", ".join(map(str, self.cut_chunks)))  # fmt: skip
        summary = DocumentSummary(
            path=key,
            question=self.question or None,
            text="",
            sentences=[],
            sources=[],
            chunks=len(chunks),
            steps=self.steps,
            usage=usage,
            stop_reason="truncated" if any(s.stop_reason == "truncated" for s in self.steps)
            else "complete",
            removed_citations=sorted(set(self.removed)),
            model=self.model.name,
            token_count=caps.tokenizer,
            reply_tokens=self.plan.reply,
            notes=self.notes,
        )  # fmt: skip
        if final is None:
            reason = ("no part of the document answers the question" if self.question
                      else "the model wrote nothing about any part of the document")  # fmt: skip
            return _abstain(summary, reason)
        checked = final.checked
        if checked is None:
            text = " ".join(_sentence(s, c) for s, c in final.sentences)
            sources = [SourceText(n, texts[n]) for n in sorted(final.valid)]
            checked = self.checker.check(text, sources, self.question or None)
        if self.question and not any(s.supported for s in checked):
            return _abstain(summary, "the answer is not supported by the document")
        kept = [s for s in checked if s.supported or not self.cfg.strict]
        summary.sentences = kept
        summary.text = " ".join(_sentence(s.text, s.citations) for s in kept)
        cited = sorted({n for s in kept for n in s.citations})
        summary.sources = [_source(n, chunks[n - 1]) for n in cited]
        return summary


def _abstain(summary: DocumentSummary, reason: str) -> DocumentSummary:
    summary.abstained, summary.abstain_reason = True, reason
    summary.text = NOT_FOUND if summary.question else "No summary: " + reason + "."
    return summary


def _source(n: int, chunk: StoredChunk) -> DocumentSource:
    return DocumentSource(n, chunk.key, chunk.page, chunk.start, chunk.end, chunk.text, 0.0,
                          chunk.kind, chunk.detail, chunk.heading, chunk_id=chunk.id)  # fmt: skip


def _sources(group: Sequence[_Block]) -> str:
    """A map step's context: its blocks as sources 1, 2, ..."""
    return SEPARATOR.join(
        format_source(i, block.location, block.text) for i, block in enumerate(group, start=1)
    )


def _numbering(group: Sequence[_Partial]) -> dict[int, int]:
    """Chunk number -> the step-local number a reduce step shows it as (1, 2, ... in order
    of first citation)."""
    numbers: dict[int, int] = {}
    for partial in group:
        for _, cited in partial.sentences:
            for n in cited:
                numbers.setdefault(n, len(numbers) + 1)
    return numbers


def _partials(group: Sequence[_Partial]) -> str:
    """A reduce step's context: its partial texts with step-local citation numbers."""
    numbering = _numbering(group)
    return SEPARATOR.join(
        _partial_block(i, _render(partial, numbering)) for i, partial in enumerate(group, start=1)
    )


def _partial_block(i: int, text: str) -> str:
    """Wrap one partial text in delimiters the text inside cannot close."""
    safe = text.replace("</summary", "</ summary").replace("<summary", "< summary")
    return f'<summary part="{i}">\n{safe.strip()}\n</summary>'


def _render(partial: _Partial, numbering: dict[int, int]) -> str:
    return " ".join(_sentence(text, [numbering[n] for n in cited if n in numbering])
                    for text, cited in partial.sentences)  # fmt: skip


_END = re.compile(r"[.!?…]+[\"'”’)]*$")


def _sentence(text: str, citations: Sequence[int]) -> str:
    """ "It lasts 41 months [3]." : the markers before the sentence's closing punctuation."""
    text = text.rstrip()
    marks = "".join(f" [{n}]" for n in citations)
    end = _END.search(text)
    return text[: end.start()] + marks + end.group(0) if end else text + marks


def _parse(text: str, valid: set[int]) -> list[tuple[str, list[int]]]:
    """Sentences of a reply with the valid chunk numbers each cites."""
    return [(clean, [n for n in cited if n in valid]) for clean, cited in cited_sentences(text)]


def _drop_cut_sentence(raw: str) -> str:
    """A reply cut off at max_tokens without its last sentence, when that one is unfinished."""
    spans = split_sentences(raw)
    if len(spans) < 2:
        return raw
    clean, _ = strip_citations(raw[spans[-1][0] : spans[-1][1]])
    if clean.rstrip().endswith((".", "!", "?", "…", '"', "”", ")")):
        return raw
    return raw[: spans[-1][0]].rstrip()
