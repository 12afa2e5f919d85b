"""A scripted chat model behind the `ChatModel` port, for exact pipeline tests.

Tokens are whitespace-separated words, so budgets are countable by eye; the reply to a
question is looked up in `replies` (by a substring of the last user message), else `default`;
`found_p` is what `next_token_probabilities` reports for '{"found":' as P(true). Every prompt
it was sent is kept in `prompts`, so tests can check what the model read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from rag.errors import ContextOverflowError
from rag.llm.base import Generation, GenerationOptions, Message, Stream


def words(text: str) -> int:
    """The scripted tokenizer: one token a whitespace-separated word."""
    return len(text.split())


@dataclass
class ScriptedChatModel:
    """Replies from a script; implements `ChatModel` (and `TokenProbabilities` via
    `ScriptedProbabilityModel`)."""

    replies: Mapping[str, str] = field(default_factory=dict)
    default: str = "NOT FOUND"
    n_ctx: int = 4096
    delay_s: float = 0.0  # per piece, to make concurrent streams overlap in tests
    name: str = "scripted"
    prompts: list[list[dict[str, str]]] = field(default_factory=list)
    options: list[GenerationOptions] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count_tokens(self, text: str) -> int:
        return words(text)

    def chat_prompt_tokens(self, messages: Sequence[Message]) -> int:
        return sum(words(m["content"]) + 2 for m in messages)  # role and end-of-turn marks

    def reply_for(self, messages: Sequence[Message]) -> str:
        """The scripted reply to the last user message."""
        question = messages[-1]["content"]
        for needle, reply in self.replies.items():
            if needle in question:
                return reply
        return self.default

    def stream(self, messages: Sequence[Message], options: GenerationOptions) -> Stream:
        prompt = self.chat_prompt_tokens(messages)
        if prompt + options.max_tokens > self.n_ctx:
            raise ContextOverflowError(f"scripted: {prompt} + {options.max_tokens} > {self.n_ctx}")
        with self._lock:
            self.prompts.append([dict(m) for m in messages])
            self.options.append(options)
        stream = Stream(iter(()))
        stream.pieces = self._pieces(stream, self.reply_for(messages), prompt, options)
        return stream

    def _pieces(
        self, stream: Stream, reply: str, prompt: int, options: GenerationOptions
    ) -> Iterator[str]:
        started = time.perf_counter()
        pieces = reply.split(" ")
        produced: list[str] = []
        reason = "complete"
        try:
            for i, word in enumerate(pieces):
                if i >= options.max_tokens:
                    reason = "truncated"
                    break
                piece = word if i == 0 else " " + word
                produced.append(piece)
                if self.delay_s:
                    time.sleep(self.delay_s)
                yield piece
        finally:
            total = time.perf_counter() - started
            stream.generation = Generation("".join(produced), reason, prompt,  # type: ignore[arg-type]
                                           len(produced), min(total, 0.001), total)  # fmt: skip


@dataclass
class ScriptedProbabilityModel(ScriptedChatModel):
    """A scripted model that also reports P(found): `found_p` by question substring, else
    `default_found_p`."""

    found_p: Mapping[str, float] = field(default_factory=dict)
    default_found_p: float = 0.99
    probed: int = 0

    def next_token_probabilities(
        self, messages: Sequence[Message], reply_start: str, options: Sequence[str]
    ) -> list[float]:
        self.probed += 1
        question = messages[-1]["content"]
        p = next((v for k, v in self.found_p.items() if k in question), self.default_found_p)
        # options are [" true", "true", " false", "false"]
        return [p, 0.0, 1.0 - p, 0.0][: len(options)]
