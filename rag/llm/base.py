"""The chat-model port: what the answer pipeline needs from a language model.

A backend (llama.cpp in-process, an OpenAI-compatible server, a scripted test model) is any
object with these methods; nothing in the pipeline names a concrete class. Token
probabilities are an optional capability (`TokenProbabilities`): a backend without them makes
the pipeline fall back to another abstention signal and say which one it used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Message = Mapping[str, str]
StopReason = Literal["complete", "truncated"]


@dataclass(frozen=True)
class GenerationOptions:
    """How to sample one reply. `temperature=0` is greedy; `response_format` is OpenAI's
    `{"type": "json_object", "schema": {...}}` shape for constrained JSON output."""

    max_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    seed: int | None = None
    stop: tuple[str, ...] = ()
    response_format: Mapping[str, Any] | None = None
    top_logprobs: int = 0  # > 0: ask a backend that can for each token's top alternatives


@dataclass(frozen=True)
class Generation:
    """One finished generation and what it cost.

    `stop_reason` is "complete" when the model ended its answer (end-of-turn token or a stop
    string) and "truncated" when `max_tokens` cut it off.
    """

    text: str
    stop_reason: StopReason
    prompt_tokens: int
    completion_tokens: int
    ttft_s: float
    total_s: float
    # Where the token counts come from: "model" (counted by the model that ran), "server"
    # (the server's usage report) or "estimated" (counted here: the server sent none).
    usage_source: str = "model"

    @property
    def prefill_tok_s(self) -> float:
        """Return prompt tokens processed per second (up to the first token)."""
        return self.prompt_tokens / self.ttft_s if self.ttft_s > 0 else 0.0

    @property
    def decode_tok_s(self) -> float:
        """Return tokens generated per second after the first one."""
        decode_s = self.total_s - self.ttft_s
        return (self.completion_tokens - 1) / decode_s if decode_s > 0 else 0.0


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token with its log-probability and the top alternatives at its position
    (OpenAI's `logprobs.content[i]`); `top` maps token text to log-probability."""

    token: str
    logprob: float
    top: Mapping[str, float]


@dataclass(frozen=True)
class ModelCapabilities:
    """What a chat model can do beyond streaming text, so the pipeline can choose (and say)
    its output mode and abstention signal.

    `json_schema`: replies can be constrained to a JSON schema (`response_format`).
    `stream_logprobs`: streams carry each token's top alternatives (`Stream.token_logprobs`).
    `tokenizer`: how prompt tokens are counted ("model", "server", "local FILE" or
    "estimate (...)"); `notes` are anything else a user should know (an assumed n_ctx).
    """

    json_schema: bool = True
    stream_logprobs: bool = False
    tokenizer: str = "model"
    notes: tuple[str, ...] = ()


def capabilities_of(model: object) -> ModelCapabilities:
    """The model's `capabilities()` if it reports them, else those of a local model."""
    report = getattr(model, "capabilities", None)
    return report() if callable(report) else ModelCapabilities()


@dataclass
class Stream:
    """Text pieces of one reply as they are produced; `generation` is set once it ends.

    Iterate it for the pieces. The statistics travel with the stream, not with the model, so
    two requests sharing one model never read each other's figures.

    >>> stream = model.stream(messages, GenerationOptions(max_tokens=32))  # doctest: +SKIP
    >>> text = "".join(stream); stream.generation.stop_reason  # doctest: +SKIP
    'complete'
    """

    pieces: Iterator[str]
    generation: Generation | None = None
    token_logprobs: list[TokenLogprob] = field(default_factory=list)  # with top_logprobs > 0
    _on_close: Callable[[], None] | None = field(default=None, repr=False)

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        return next(self.pieces)

    def close(self) -> None:
        """Stop an unfinished stream (its statistics so far are still recorded)."""
        close = getattr(self.pieces, "close", None)
        if close is not None:
            close()
        if self._on_close is not None:
            self._on_close()

    def text(self) -> str:
        """Consume the stream and return the whole reply."""
        return "".join(self)


@runtime_checkable
class ChatModel(Protocol):
    """A chat model the pipeline can count tokens with and stream replies from."""

    @property
    def name(self) -> str:
        """A short label for reports (the model file's name, or the server's model id)."""
        ...

    @property
    def n_ctx(self) -> int:
        """The context window in tokens: prompt plus reply must fit in it."""
        ...

    def count_tokens(self, text: str) -> int:
        """How many tokens `text` takes as message content, with the model's own tokenizer."""
        ...

    def chat_prompt_tokens(self, messages: Sequence[Message]) -> int:
        """How many tokens the chat template makes of `messages` (what the model is fed)."""
        ...

    def stream(self, messages: Sequence[Message], options: GenerationOptions) -> Stream:
        """Start a reply to `messages`; raise ContextOverflowError if it cannot fit."""
        ...


@runtime_checkable
class TokenProbabilities(Protocol):
    """Optional capability: the model's next-token distribution after a reply prefix."""

    def next_token_probabilities(
        self, messages: Sequence[Message], reply_start: str, options: Sequence[str]
    ) -> list[float]:
        """P(first token of each option) right after the reply began with `reply_start`."""
        ...


def generate(
    model: ChatModel, messages: Sequence[Message], options: GenerationOptions
) -> Generation:
    """Run a reply to the end and return it with its statistics."""
    stream = model.stream(messages, options)
    for _ in stream:
        pass
    assert stream.generation is not None
    return stream.generation
