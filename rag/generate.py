"""Generate answers with a local GGUF model through llama.cpp, streamed piece by piece.

Example:
    >>> from rag.generate import Generator
    >>> gen = Generator.from_preset("tiny", n_ctx=2048)  # doctest: +SKIP
    >>> out = gen.generate([{"role": "user", "content": "Hi"}], max_tokens=16)  # doctest: +SKIP
    >>> out.text, out.stop_reason  # doctest: +SKIP
    ('Hi!', 'complete')
"""

from __future__ import annotations

import codecs
import collections.abc
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rag.errors import ConfigError, ContextOverflowError, ModelLoadError
from rag.models import check_gguf, load_failure_message, resolve_model

Message = Mapping[str, str]
StopReason = Literal["complete", "truncated"]
TextStream = collections.abc.Generator[str, None, None]

# Chat formats that may be named instead of the GGUF's own template (or pass a Jinja template).
CHAT_FORMATS = ("chatml", "llama-3", "mistral-instruct")


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

    @property
    def prefill_tok_s(self) -> float:
        """Return prompt tokens processed per second (up to the first token)."""
        return self.prompt_tokens / self.ttft_s if self.ttft_s > 0 else 0.0

    @property
    def decode_tok_s(self) -> float:
        """Return tokens generated per second after the first one."""
        decode_s = self.total_s - self.ttft_s
        return (self.completion_tokens - 1) / decode_s if decode_s > 0 else 0.0


class Generator:
    """A loaded GGUF chat model: count tokens exactly, then stream or generate.

    One llama.cpp model and context are kept for the Generator's life; the KV cache of a
    shared prompt prefix is reused between calls. Not thread-safe: starting a new call ends
    any unfinished stream.

    `prompt_lookup=N` turns on prompt-lookup speculative decoding (N drafted tokens a step),
    which helps when answers copy text from the prompt; it keeps logits for every position,
    so it costs `n_ctx * vocabulary * 4` bytes of memory (2.5 GB for Qwen at n_ctx=4096).

    Example:
        >>> gen = Generator(resolve_model("tiny"), n_ctx=2048, n_threads=2)  # doctest: +SKIP
        >>> for piece in gen.stream([{"role": "user", "content": "Hi"}], 32):  # doctest: +SKIP
        ...     print(piece, end="")
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        seed: int = 0,
        chat_format: str | None = None,
        flash_attn: bool = True,
        prompt_lookup: int = 0,
        n_batch: int = 512,
        verbose: bool = False,
    ) -> None:
        try:
            import llama_cpp
            from llama_cpp import llama_chat_format
            from llama_cpp.llama_speculative import LlamaPromptLookupDecoding
        except ImportError:
            raise ConfigError(
                "generation needs llama-cpp-python; run 'pip install llama-cpp-python==0.3.36' "
                "(see scripts/install.sh for the CPU build flags)"
            ) from None
        if n_ctx < 16:
            raise ConfigError(f"n_ctx must be at least 16, got {n_ctx}")
        if prompt_lookup < 0:
            raise ConfigError(
                f"prompt_lookup must be 0 (off) or a token count, got {prompt_lookup}"
            )
        self.model_path = check_gguf(model_path)
        self.n_threads = n_threads or os.cpu_count() or 1
        self.seed = seed
        self.prompt_lookup = prompt_lookup
        draft = LlamaPromptLookupDecoding(num_pred_tokens=prompt_lookup) if prompt_lookup else None
        self._llama_cpp = llama_cpp
        self._active: TextStream | None = None
        self._grammars: dict[str, Any] = {}
        self.last: Generation | None = None
        try:
            self._llama = llama_cpp.Llama(
                model_path=str(self.model_path),
                n_ctx=n_ctx,
                n_batch=min(n_batch, n_ctx),
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads,
                seed=seed,
                flash_attn=flash_attn,
                draft_model=draft,
                logits_all=draft is not None,  # 0.3.36 sizes its logits buffer by this alone
                verbose=verbose,
            )
        except (ValueError, RuntimeError) as e:  # the file passed check_gguf: not integrity
            raise ModelLoadError(load_failure_message(self.model_path, n_ctx, e)) from e
        try:
            trained = self._llama._model.n_ctx_train()
            if n_ctx > trained:
                raise ConfigError(
                    f"n_ctx {n_ctx} exceeds the {trained} tokens this model was trained on"
                )
            self._formatter = _chat_formatter(self._llama, llama_chat_format, chat_format)
        except BaseException:
            self.close()
            raise
        self.n_ctx = self._llama.n_ctx()

    @classmethod
    def from_preset(
        cls, preset: str | None = None, path: str | Path | None = None, **kwargs: Any
    ) -> Generator:
        """Load the model `resolve_model(preset, path)` finds; `kwargs` go to the constructor."""
        return cls(resolve_model(preset, path), **kwargs)

    def __repr__(self) -> str:
        return (
            f"Generator(model={self.model_path.name!r}, n_ctx={self.n_ctx}, "
            f"n_threads={self.n_threads}, prompt_lookup={self.prompt_lookup})"
        )

    def __enter__(self) -> Generator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Free the model and its context."""
        self._end_active()
        self._llama.close()

    def reset(self) -> None:
        """Forget the cached prompt, so the next call evaluates its prompt from scratch."""
        self._end_active()
        self._llama.reset()

    def count_tokens(self, text: str) -> int:
        """Return how many tokens `text` takes as message content (no BOS)."""
        return len(self._tokenize(text, special=False))

    def format_chat(self, messages: Sequence[Message]) -> str:
        """Return the prompt text the chat template makes of `messages`."""
        _check_messages(messages)
        return str(self._format([dict(m) for m in messages]).prompt)

    def chat_prompt_tokens(self, messages: Sequence[Message]) -> int:
        """Return the exact number of tokens the formatted chat prompt feeds the model."""
        return len(self._prompt_tokens(messages)[0])

    def stream(
        self,
        messages: Sequence[Message],
        max_tokens: int = 512,
        *,
        temperature: float = 0.0,
        top_p: float = 0.95,
        top_k: int = 40,
        min_p: float = 0.05,
        seed: int | None = None,
        stop: Sequence[str] | None = None,
        response_format: Mapping[str, Any] | None = None,
    ) -> TextStream:
        """Yield the answer to `messages` as text pieces; afterwards `self.last` has the stats.

        The prompt is checked against the context window before anything runs:
        ContextOverflowError says by how many tokens it is over. `temperature=0` is greedy.
        `response_format={"type": "json_object", "schema": {...}}` constrains the output to
        JSON (matching the schema, if given).
        """
        if max_tokens < 1:
            raise ConfigError(f"max_tokens must be at least 1, got {max_tokens}")
        tokens, format_stops = self._prompt_tokens(messages)
        over = len(tokens) + max_tokens - self.n_ctx
        if over > 0:
            raise ContextOverflowError(
                f"prompt ({len(tokens):,} tokens) + max_tokens ({max_tokens:,}) exceeds the "
                f"context window (n_ctx={self.n_ctx:,}) by {over:,} tokens; shorten the prompt, "
                f"lower max_tokens or raise n_ctx"
            )
        grammar = self._grammar(response_format) if response_format else None
        self._end_active()
        sampling = {
            "temp": temperature,
            "top_p": top_p,
            "top_k": top_k,
            "min_p": min_p,
            "repeat_penalty": 1.0,
            "grammar": grammar,
        }
        stops = [s for s in (*(stop or ()), *format_stops) if s]
        run = self._run(tokens, max_tokens, stops, self.seed if seed is None else seed, sampling)
        self._active = run
        return run

    def next_token_probabilities(
        self, messages: Sequence[Message], reply_start: str, options: Sequence[str]
    ) -> list[float]:
        """Return the model's probability of each option's first token right after the reply
        has begun with `reply_start` (e.g. '{"found":' and [" true", " false"]).

        Reuses the prompt already in the cache, so after a `stream` of the same messages (or
        before one) this costs only the few tokens of `reply_start`.
        """
        import numpy as np

        tokens = self._prompt_tokens(messages)[0] + self._tokenize(reply_start, special=False)
        if len(tokens) >= self.n_ctx:
            raise ContextOverflowError(
                f"prompt ({len(tokens):,} tokens) does not fit the context window "
                f"(n_ctx={self.n_ctx:,}); shorten the prompt or raise n_ctx"
            )
        firsts = []
        for option in options:
            ids = self._tokenize(option, special=False)
            if not ids:
                raise ConfigError(f"option {option!r} has no tokens")
            firsts.append(ids[0])
        self._end_active()
        llama = self._llama
        cached = llama._input_ids.tolist()  # the tokens now in the cache
        same = 0
        for a, b in zip(cached, tokens[:-1], strict=False):  # the last token is always re-run
            if a != b:
                break
            same += 1
        llama.n_tokens = same
        llama.eval(tokens[same:])
        last = self._llama_cpp.llama_get_logits_ith(llama._ctx.ctx, -1)
        logits = np.ctypeslib.as_array(last, shape=(llama.n_vocab(),)).astype(np.float64)
        logits -= logits.max()
        probabilities = np.exp(logits) / np.exp(logits).sum()
        return [float(probabilities[t]) for t in firsts]

    def generate(
        self, messages: Sequence[Message], max_tokens: int = 512, **kwargs: Any
    ) -> Generation:
        """Return the whole answer to `messages`; takes the same arguments as `stream`."""
        for _ in self.stream(messages, max_tokens, **kwargs):
            pass
        assert self.last is not None
        return self.last

    def _run(
        self,
        tokens: list[int],
        max_tokens: int,
        stops: list[str],
        seed: int,
        sampling: dict[str, Any],
    ) -> TextStream:
        """Decode up to `max_tokens` tokens after `tokens`, yielding text as it is safe to."""
        llama = self._llama
        vocab = llama._model.vocab
        is_eog = self._llama_cpp.llama_vocab_is_eog
        speculative = llama.draft_model is not None
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        held = _StopFilter(stops)
        reason: StopReason = "truncated"
        produced = 0
        ttft = 0.0
        text: list[str] = []
        self.last = None
        llama.set_seed(seed)
        start = time.perf_counter()
        if speculative:
            llama._logits_all = False  # the prompt needs logits for its last token only
        steps = llama.generate(tokens, reset=True, **sampling)
        try:
            for token in steps:
                if produced == 0 and not ttft:
                    ttft = time.perf_counter() - start
                    if speculative:
                        llama._logits_all = True  # drafted tokens must each be verified
                if is_eog(vocab, token):
                    reason = "complete"
                    break
                produced += 1
                piece, stopped = held.feed(decoder.decode(llama.detokenize([token])))
                if piece:
                    text.append(piece)
                    yield piece
                if stopped:
                    reason = "complete"
                    break
                if produced >= max_tokens:
                    break
            tail = "" if held.stopped else held.flush(decoder.decode(b"", final=True))
            if tail:
                text.append(tail)
                yield tail
        finally:
            steps.close()
            llama._logits_all = speculative
            self.last = Generation(
                text="".join(text),
                stop_reason=reason,
                prompt_tokens=len(tokens),
                completion_tokens=produced,
                ttft_s=ttft,
                total_s=time.perf_counter() - start,
            )

    def _end_active(self) -> None:
        """Close a stream that was left unfinished, so it cannot touch the context again."""
        if self._active is not None:
            active, self._active = self._active, None
            active.close()

    def _format(self, messages: list[dict[str, str]]) -> Any:
        """Apply the chat template, turning its complaints into ConfigError."""
        try:
            return self._formatter(messages=messages)
        except Exception as e:  # jinja2 errors and the template's own raise_exception
            raise ConfigError(f"the chat template rejected the messages: {e}") from e

    def _tokenize(self, text: str, *, special: bool) -> list[int]:
        return self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=special)

    def _prompt_tokens(self, messages: Sequence[Message]) -> tuple[list[int], list[str]]:
        """Tokenize the chat prompt: template text may hold special tokens, contents never do.

        Message contents are tokenized as plain text, so a document that contains, say,
        "<|im_end|>" cannot end the turn early or inject a new one.
        """
        contents = _check_messages(messages)
        marks = [f"\ue000{i}\ue001" for i in range(len(contents))]
        result = self._format([{**m, "content": k} for m, k in zip(messages, marks, strict=True)])
        prompt = result.prompt
        tokens: list[int] = []
        if not result.added_special and self._llama._model.add_bos_token():
            tokens.append(self._llama.token_bos())
        pos = 0
        for i, mark in enumerate(marks):
            at = prompt.find(mark, pos)
            if at < 0:
                continue  # the template dropped this message
            tokens += self._tokenize(prompt[pos:at], special=True)
            tokens += self._tokenize(contents[i], special=False)
            pos = at + len(mark)
        tokens += self._tokenize(prompt[pos:], special=True)
        stops = result.stop if isinstance(result.stop, list) else [result.stop or ""]
        return tokens, [s for s in stops if s]

    def _grammar(self, response_format: Mapping[str, Any]) -> Any:
        """Return a cached llama.cpp grammar for an OpenAI-style `response_format`."""
        from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

        kind = response_format.get("type")
        if kind == "json_object":
            schema = response_format.get("schema")
        elif kind == "json_schema":
            schema = (response_format.get("json_schema") or {}).get("schema")
        else:
            raise ConfigError(
                f"response_format type must be 'json_object' or 'json_schema', got {kind!r}"
            )
        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            if schema is None:
                self._grammars[key] = LlamaGrammar.from_string(JSON_GBNF, verbose=False)
            else:  # properties keep their order: the model writes them in schema order
                self._grammars[key] = LlamaGrammar.from_json_schema(json.dumps(schema),
                                                                    verbose=False)  # fmt: skip
        return self._grammars[key]


class _StopFilter:
    """Hold back text that could be the start of a stop string; cut at the first one."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = list(stops)
        self.buffer = ""
        self.stopped = False

    def feed(self, text: str) -> tuple[str, bool]:
        """Return (text safe to emit now, whether a stop string was reached)."""
        self.buffer += text
        if not self.stops:
            out, self.buffer = self.buffer, ""
            return out, False
        hits = [i for i in (self.buffer.find(s) for s in self.stops) if i >= 0]
        if hits:
            out, self.buffer, self.stopped = self.buffer[: min(hits)], "", True
            return out, True
        keep = max((_overlap(self.buffer, s) for s in self.stops), default=0)
        cut = len(self.buffer) - keep
        out, self.buffer = self.buffer[:cut], self.buffer[cut:]
        return out, False

    def flush(self, text: str = "") -> str:
        """Return whatever is still held back once generation has ended."""
        out, self.buffer = self.buffer + text, ""
        return out


def _overlap(text: str, stop: str) -> int:
    """Return the length of the longest suffix of `text` that is a prefix of `stop`."""
    for n in range(min(len(text), len(stop) - 1), 0, -1):
        if text.endswith(stop[:n]):
            return n
    return 0


def _check_messages(messages: Sequence[Message]) -> list[str]:
    """Return the message contents, or raise ConfigError if a message is malformed."""
    if not messages:
        raise ConfigError("messages must not be empty")
    contents = []
    for i, m in enumerate(messages):
        if not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise ConfigError(f"message {i} needs a string 'role' and 'content', got {dict(m)!r}")
        contents.append(m["content"])
    return contents


def _chat_formatter(llama: Any, llama_chat_format: Any, chat_format: str | None) -> Any:
    """Build a Jinja2 chat formatter from the GGUF's template, a known name or a template."""
    if chat_format is None:
        template = llama.metadata.get("tokenizer.chat_template")
        if not template:
            raise ConfigError(
                "this GGUF has no chat template; pass chat_format= one of "
                f"{', '.join(CHAT_FORMATS)} or a Jinja2 template"
            )
    elif "{{" in chat_format or "{%" in chat_format:
        template = chat_format
    else:
        names = {
            "chatml": llama_chat_format.CHATML_CHAT_TEMPLATE,
            "llama-3": llama_chat_format.LLAMA3_INSTRUCT_CHAT_TEMPLATE,
            "mistral-instruct": llama_chat_format.MISTRAL_INSTRUCT_CHAT_TEMPLATE,
        }
        if chat_format not in names:
            raise ConfigError(
                f"unknown chat_format {chat_format!r}; use one of {', '.join(CHAT_FORMATS)} "
                "or a Jinja2 template"
            )
        template = names[chat_format]
    eos, bos = llama.token_eos(), llama.token_bos()
    model = llama._model
    return llama_chat_format.Jinja2ChatFormatter(
        template=template,
        eos_token=model.token_get_text(eos) if eos != -1 else "",
        bos_token=model.token_get_text(bos) if bos != -1 else "",
        stop_token_ids=[eos],
    )
