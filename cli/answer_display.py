"""One answer on screen: the stages and the model's words while it writes, then the verified
answer once, with its checked citations, the cited sources and their quotes first and the
passages read but not cited folded into one line.

On a terminal the words stream into a transient live area that the verified answer replaces
in place; elsewhere (a pipe, a file) nothing streams to stdout, the stages go to stderr when
that is a terminal, and only the verified answer is printed, without control codes.

    with AnswerDisplay(out, err) as display:
        answer = idx.ask(question, on_token=display.token, on_event=display.event)
    out.print(render_answer(answer))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.segment import Segment
from rich.spinner import Spinner
from rich.status import Status
from rich.text import Text

from rag.locations import where

if TYPE_CHECKING:
    from rag.ask import Answer, Source
    from rag.cite import CitedSentence
    from rag.summarize import DocumentSummary


class Cited(Protocol):
    """What the verified-answer parts need: checked sentences and the numbered sources they
    cite (an `Answer`, or a `DocumentSummary`)."""

    @property
    def sentences(self) -> Sequence[CitedSentence]: ...

    @property
    def sources(self) -> Sequence[Source]: ...


STAGES: dict[str, Callable[[dict], str]] = {
    "rewriting": lambda d: "making the follow-up standalone…",
    "retrieving": lambda d: "retrieving passages…",
    "reading": lambda d: f"reading {d['sources']} sources ({d['tokens']} tokens)…",
    "answering": lambda d: "answering…",
    "verifying": lambda d: "checking the citations against the sources…",
}
QUOTE_CHARS = 240  # a quote longer than this is cut (in full with --quotes)
ALSO_READ_SHOWN = 3  # passages read but not cited named on the fold line before "+N more"


class AnswerDisplay:
    """Show the stages and the streamed words of one answer until the context ends.

    `console` gets the live area when it is a terminal (and `stream`); otherwise `status`
    (stderr) gets a one-line stage spinner when it is a terminal. Nothing is left behind:
    print the verified answer (`render_answer`) after the `with` block.
    """

    def __init__(self, console: Console, status: Console, *, stream: bool = True) -> None:
        self.console = console
        self.status_console = status
        self.live_mode = stream and _interactive(console)
        self.words: list[str] = []
        self.stage_name = "retrieving"
        self.stage = STAGES[self.stage_name]({})
        self._spinner = Spinner("dots", Text(self.stage, style="dim"))
        self._live: Live | None = None
        self._status: Status | None = None

    def __enter__(self) -> AnswerDisplay:
        if self.live_mode:
            self._live = Live(console=self.console, get_renderable=self._frame, transient=True,
                              refresh_per_second=10)  # fmt: skip
            self._live.start(refresh=True)
        elif _interactive(self.status_console):
            self._status = self.status_console.status(self.stage, spinner="dots")
            self._status.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()  # transient: the streamed words are erased
            self._live = None
        if self._status is not None:
            self._status.stop()
            self._status = None

    def event(self, name: str, data: dict) -> None:
        """A stage of `Index.ask` (its `on_event`)."""
        label = STAGES.get(name)
        if label is None:
            return
        self.stage_name = name
        self.stage = label(data)
        self._show_stage()

    def token(self, piece: str) -> None:
        """A piece of the answer as the model writes it (`Index.ask`'s `on_token`)."""
        self.words.append(piece)
        if self._status is not None:
            self._show_stage()

    def _show_stage(self) -> None:
        text = self.stage
        if self._status is not None and self.words and self.stage_name == "answering":
            words = len("".join(self.words).split())
            text = f"answering… {words} word{'' if words == 1 else 's'}"
        self._spinner.update(text=Text(text, style="dim"))
        if self._status is not None:
            self._status.update(text)

    def _frame(self) -> RenderableType:
        """What the live area shows now: the words so far, the stage under them."""
        streamed = "".join(self.words).strip()
        if not streamed:
            return self._spinner
        return Group(_Tail(Text(streamed), reserve=2), self._spinner)


def _interactive(console: Console) -> bool:
    """Whether `console` is a terminal that takes cursor moves (now, not when it was made)."""
    return console.is_terminal and not console.is_dumb_terminal


class _Tail:
    """The last lines of a text that fit the screen, wrapped to its width.

    A live area taller than the screen cannot be erased (its top has scrolled away), and the
    words being written are at the end; `reserve` lines are left for what follows.
    """

    def __init__(self, text: Text, reserve: int = 1) -> None:
        self.text = text
        self.reserve = reserve

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        wrapped = options.update(no_wrap=False, overflow="fold")
        lines = console.render_lines(self.text, wrapped, pad=False)
        room = max(1, options.size.height - self.reserve)
        for line in lines[-room:]:
            yield from line
            yield Segment.line()


# ---- the verified answer ----------------------------------------------------------------------


@dataclass(frozen=True)
class Mark:
    """One citation as shown after a sentence: `[2]`, `[2→3]`, `[→3]`, `[4✗]`."""

    label: str
    kind: str  # kept, moved, added, dropped (does not back it), removed (no such source)
    n: int  # the source it names now (kept, moved, added) or named before (dropped, removed)
    was: tuple[int, ...] = ()  # moved: the model's citations it replaced


STYLES = {"kept": "cyan", "moved": "bold yellow", "added": "bold yellow", "dropped": "yellow",
          "removed": "yellow"}  # fmt: skip


def citation_marks(sentence: CitedSentence) -> list[Mark]:
    """The sentence's citations after checking, with every change the checker made visible:
    a citation moved to another source `[2→3]` (or added, `[→3]`), one dropped `[4✗]`."""
    marks: list[Mark] = []
    moved = tuple(sentence.repaired_from)
    for n in sentence.citations:
        if n in sentence.cited:
            marks.append(Mark(f"[{n}]", "kept", n))
        elif moved and not any(m.kind == "moved" for m in marks):
            marks.append(Mark(f"[{','.join(map(str, moved))}→{n}]", "moved", n, moved))
        else:
            marks.append(Mark(f"[→{n}]", "added", n))
    for n in sentence.dropped:
        kind = "removed" if n in sentence.invalid else "dropped"
        marks.append(Mark(f"[{n}✗]", kind, n))
    return marks


def _legend(marks: list[Mark], unsupported: bool) -> Text | None:
    """One line saying what each kind of changed citation shown means, by its first example."""
    parts: list[str] = []
    first = {m.kind: m for m in reversed(marks)}
    if "moved" in first:
        m = first["moved"]
        cited = " or ".join(f"source {n}" for n in m.was)
        parts.append(f"{m.label} moved: source {m.n} states it, not {cited}")
    if "added" in first:
        parts.append(f"{first['added'].label} added: source {first['added'].n} states it")
    if "dropped" in first:
        m = first["dropped"]
        parts.append(f"{m.label} dropped: source {m.n} does not state it")
    if "removed" in first:
        m = first["removed"]
        parts.append(f"{m.label} removed: there is no source {m.n}")
    if unsupported:
        parts.append("[unsupported] no source states this sentence (--strict leaves it out)")
    if not parts:
        return None
    return Text("citations checked: " + " · ".join(parts), style="dim")


def answer_text(answer: Cited) -> tuple[Text, Text | None]:
    """The verified answer with its checked citation marks, and the legend line (or None)."""
    text = Text()
    marks: list[Mark] = []
    unsupported = False
    for i, sentence in enumerate(answer.sentences):
        if i:
            text.append(" ")
        text.append(sentence.text.rstrip())
        for mark in citation_marks(sentence):
            text.append(" ")
            text.append(mark.label, style=STYLES[mark.kind])
            marks.append(mark)
        if not sentence.supported:
            text.append(" [unsupported]", style="red")
            unsupported = True
    return text, _legend(marks, unsupported)


def render_answer(answer: Answer, quotes: bool = False) -> Group:
    """The whole verified answer as printed once: the answer (or "Not found" with the nearest
    passages), the cited sources with location and quote, then one "also read" line.

    `quotes`: quotes in full with their support, and every passage read on its own line."""
    if answer.abstained:
        return Group(*_not_found(answer), *_footer(answer, usage=False))
    text, legend = answer_text(answer)
    parts: list[RenderableType] = [text]
    if legend is not None:
        parts.append(legend)
    if answer.stop_reason == "truncated":
        parts.append(Text("the answer was cut at --max-tokens; raise it for the rest",
                          style="yellow"))  # fmt: skip
    parts += _cited(answer, quotes)
    parts += _also_read(answer, quotes)
    parts += _footer(answer, usage=True)
    return Group(*parts)


def render_summary(summary: DocumentSummary, quotes: bool = False) -> Group:
    """A whole-document summary (or answer) as printed once, like a verified answer: the
    sentences with their checked citations ([n] is the document's n-th chunk), the cited
    chunks with location and quote, any note on how it was made, then what it cost."""
    steps = summary.steps
    maps = sum(1 for s in steps if s.kind == "map")
    rounds = max((s.level for s in steps), default=0)
    made = f"{summary.chunks} chunks read in {maps} map step{'' if maps == 1 else 's'}" + (
        f" and {len(steps) - maps} reduce step{'' if len(steps) - maps == 1 else 's'} "
        f"({rounds} round{'' if rounds == 1 else 's'})"
        if len(steps) > maps
        else ""
    )
    u = summary.usage
    counted = " (estimated)" if u.source == "estimated" else ""
    cost = Text(f"{made} · {u.prompt_tokens} prompt + {u.completion_tokens} written tokens"
                f"{counted} · total {u.total_s:.1f} s", style="dim")  # fmt: skip
    parts: list[RenderableType] = []
    if summary.abstained:
        parts.append(Text.assemble((summary.text, "bold yellow"), "  ",
                                   (f"({summary.abstain_reason})", "dim")))  # fmt: skip
    else:
        text, legend = answer_text(summary)
        parts.append(text)
        if legend is not None:
            parts.append(legend)
    if summary.stop_reason == "truncated":
        parts.append(Text("a step's reply was cut at answer.document_max_tokens "
                          f"({summary.reply_tokens}); raise it for longer ones",
                          style="yellow"))  # fmt: skip
    parts += [Text(f"note: {note}", style="yellow") for note in summary.notes]
    if not summary.abstained:
        parts += _cited(summary, quotes)
    parts.append(cost)
    if summary.token_count != "model":
        parts.append(Text(f"model {summary.model} · tokens counted by {summary.token_count}",
                          style="dim"))  # fmt: skip
    return Group(*parts)


def _not_found(answer: Answer) -> list[RenderableType]:
    """ "Not found in your documents" as its own state, with the passages nearest to it."""
    parts: list[RenderableType] = [
        Text.assemble((answer.answer, "bold yellow"), "  ", (f"({answer.abstain_reason})", "dim"))
    ]
    nearest = answer.nearest or answer.sources
    if nearest:
        parts.append(Text("Nearest passages:", style="bold"))
        for i, s in enumerate(nearest[:3], start=1):
            parts.append(Text.assemble(f" {i}. ", (s.location, "cyan"), ": ",
                                       (_snippet(s.text, 160), "dim")))  # fmt: skip
    return parts


def cited_order(answer: Cited) -> list[int]:
    """The sources the answer cites, in the order it first cites them."""
    return list(dict.fromkeys(n for s in answer.sentences for n in s.citations))


def _cited(answer: Cited, quotes: bool) -> list[RenderableType]:
    """Each cited source with its location and the quotes the checker found in it."""
    by_n = {s.n: s for s in answer.sources}
    order = [n for n in cited_order(answer) if n in by_n]
    if not order:
        return []
    parts: list[RenderableType] = [Text("Sources:", style="bold")]
    for n in order:
        source = by_n[n]
        where_ = Text.assemble((f" [{n}] ", "cyan"), (source.location, "cyan"))
        if quotes:
            where_.append(f"  chars {source.start}-{source.end}", style="dim")
        parts.append(where_)
        spans: dict[tuple[int, int], float] = {}  # span backing a sentence -> best support
        for sentence in answer.sentences:
            if n in sentence.spans:
                span = sentence.spans[n]
                spans[span] = max(spans.get(span, 0.0), sentence.support)
        for (start, end), support in spans.items():
            quote = " ".join(source.text[start:end].split())
            shown = quote if quotes else _cut(quote, QUOTE_CHARS)
            line = Text.assemble("     “", (shown, "green"), "”")
            if quotes:
                line.append(f"  support {support:.2f}", style="dim")
            parts.append(line)
    return parts


def _also_read(answer: Answer, quotes: bool) -> list[RenderableType]:
    """The passages read but not cited: folded into one line ("also read: a.pdf (page 3),
    b.md, +4 more"), or one line each with `quotes`."""
    cited = set(cited_order(answer))
    rest = [s for s in answer.sources if s.n not in cited]
    if not rest:
        return []
    if quotes:
        parts: list[RenderableType] = [Text("Also read, not cited:", style="bold")]
        for s in rest:
            parts.append(Text.assemble(f" [{s.n}] ", (s.location, "cyan"), ": ",
                                       (_snippet(s.text, 120), "dim")))  # fmt: skip
        return parts
    names = list(dict.fromkeys(short_location(s) for s in rest))
    shown = ", ".join(names[:ALSO_READ_SHOWN])
    more = len(names) - ALSO_READ_SHOWN
    return [Text(f"also read: {shown}" + (f", +{more} more" if more > 0 else ""), style="dim")]


def short_location(source: Source) -> str:
    """A source's file name (not its folder) with its page, slide or rows: "a.pdf (page 3)";
    an attachment keeps its container, "mail.eml#report.pdf"."""
    base, sep, inner = source.path.partition("#")
    name = base.replace("\\", "/").rsplit("/", 1)[-1] + sep + inner
    shown = where(name, source.kind, source.page, source.detail, source.heading)
    return f"{source.collection}: {shown}" if source.collection else shown


def _footer(answer: Answer, usage: bool) -> list[RenderableType]:
    """What answering cost, and how it was made when that is not the usual local way."""
    from rag.ask import OUTPUT_TEXT, SIGNAL_P_FOUND, SIGNAL_TEXT

    parts: list[RenderableType] = []
    if usage:
        u = answer.usage
        counted = " (estimated)" if u.source == "estimated" else ""
        parts.append(Text(f"{u.prompt_tokens} prompt + {u.completion_tokens} answer tokens"
                          f"{counted} · first token {u.ttft_s:.1f} s · total {u.total_s:.1f} s",
                          style="dim"))  # fmt: skip
    usual = (
        answer.token_count == "model"
        and answer.abstention_signal in (SIGNAL_P_FOUND, SIGNAL_TEXT)
        and answer.output_mode in ("json", OUTPUT_TEXT)
    )
    if not usual:
        found = f" = {answer.found_p:.3f}" if answer.found_p is not None else ""
        parts.append(Text(f"model {answer.model} · output {answer.output_mode} · abstention "
                          f"{answer.abstention_signal}{found} · tokens counted by "
                          f"{answer.token_count}", style="dim"))  # fmt: skip
    return parts


def _snippet(text: str, chars: int) -> str:
    return _cut(" ".join(text.split()), chars)


def _cut(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1].rstrip() + "…"
