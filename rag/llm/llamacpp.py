"""The llama.cpp backend of the chat-model port: a local GGUF model, in process, streamed.

Example:
    >>> from rag.llm.llamacpp import LlamaCppChatModel
    >>> model = LlamaCppChatModel.from_preset("tiny", n_ctx=2048)  # doctest: +SKIP
    >>> messages = [{"role": "user", "content": "Hi"}]
    >>> reply = generate(model, messages, GenerationOptions(16))  # doctest: +SKIP
    >>> reply.text, reply.stop_reason  # doctest: +SKIP
    ('Hi!', 'complete')
"""

from __future__ import annotations

import codecs
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rag.errors import ConfigError, ContextOverflowError, ModelLoadError
from rag.llm.base import Generation, GenerationOptions, Message, StopReason, Stream, generate
from rag.llm.chat_template import CHAT_FORMATS, chat_formatter, check_messages
from rag.llm.grammar import GrammarCache
from rag.llm.stops import StopFilter
from rag.models import check_gguf, load_failure_message, resolve_model

__all__ = ["CHAT_FORMATS", "LlamaCppChatModel", "generate"]


class LlamaCppChatModel:
    """A loaded GGUF chat model (the `ChatModel` port, with `TokenProbabilities`).

    One llama.cpp model and context are kept for the object's life; the KV cache of a
    shared prompt prefix is reused between calls. One reply runs at a time: a stream holds
    the model until it ends or is closed, and a request from another thread waits for it.
    In the same thread, starting a new call ends an unfinished stream.

    `prompt_lookup=N` turns on prompt-lookup speculative decoding (N drafted tokens a step),
    which helps when answers copy text from the prompt; it keeps logits for every position,
    so it costs `n_ctx * vocabulary * 4` bytes of memory (2.5 GB for Qwen at n_ctx=4096).

    Example:
        >>> model = LlamaCppChatModel(resolve_model("tiny"), n_ctx=2048)  # doctest: +SKIP
        >>> messages = [{"role": "user", "content": "Hi"}]
        >>> for piece in model.stream(messages, GenerationOptions(32)):  # doctest: +SKIP
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
        self._active: Stream | None = None
        self._grammars = GrammarCache()
        self._lock = threading.RLock()
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
            self._formatter = chat_formatter(self._llama, llama_chat_format, chat_format)
        except BaseException:
            self.close()
            raise
        self.n_ctx = self._llama.n_ctx()

    @classmethod
    def from_preset(
        cls, preset: str | None = None, path: str | Path | None = None, **kwargs: Any
    ) -> LlamaCppChatModel:
        """Load the model `resolve_model(preset, path)` finds; `kwargs` go to the constructor."""
        return cls(resolve_model(preset, path), **kwargs)

    def __repr__(self) -> str:
        return (
            f"LlamaCppChatModel(model={self.model_path.name!r}, n_ctx={self.n_ctx}, "
            f"n_threads={self.n_threads}, prompt_lookup={self.prompt_lookup})"
        )

    @property
    def name(self) -> str:
        """The GGUF file's name."""
        return self.model_path.name

    def __enter__(self) -> LlamaCppChatModel:
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
        check_messages(messages)
        return str(self._format([dict(m) for m in messages]).prompt)

    def chat_prompt_tokens(self, messages: Sequence[Message]) -> int:
        """Return the exact number of tokens the formatted chat prompt feeds the model."""
        return len(self._prompt_tokens(messages)[0])

    def stream(self, messages: Sequence[Message], options: GenerationOptions) -> Stream:
        """Start the reply to `messages`; iterate the returned stream for its text pieces.

        The prompt is checked against the context window before anything runs:
        ContextOverflowError says by how many tokens it is over. `temperature=0` is greedy.
        `response_format={"type": "json_object", "schema": {...}}` constrains the output to
        JSON (matching the schema, if given). The stream's `generation` has the statistics.
        """
        if options.max_tokens < 1:
            raise ConfigError(f"max_tokens must be at least 1, got {options.max_tokens}")
        tokens, format_stops = self._prompt_tokens(messages)
        over = len(tokens) + options.max_tokens - self.n_ctx
        if over > 0:
            raise ContextOverflowError(
                f"prompt ({len(tokens):,} tokens) + max_tokens ({options.max_tokens:,}) exceeds "
                f"the context window (n_ctx={self.n_ctx:,}) by {over:,} tokens; shorten the "
                "prompt, lower max_tokens or raise n_ctx"
            )
        grammar = self._grammars.get(options.response_format) if options.response_format else None
        sampling = {
            "temp": options.temperature,
            "top_p": options.top_p,
            "top_k": options.top_k,
            "min_p": options.min_p,
            "repeat_penalty": 1.0,
            "grammar": grammar,
        }
        stops = [s for s in (*options.stop, *format_stops) if s]
        seed = self.seed if options.seed is None else options.seed
        stream = Stream(iter(()))
        stream.pieces = self._run(stream, tokens, options.max_tokens, stops, seed, sampling)
        with self._lock:
            self._end_active()
            self._active = stream
        return stream

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
        with self._lock:
            self._end_active()
            llama = self._llama
            cached = llama._input_ids.tolist()  # the tokens now in the cache
            same = 0
            for a, b in zip(cached, tokens[:-1], strict=False):  # the last token is re-run
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

    def generate(self, messages: Sequence[Message], options: GenerationOptions) -> Generation:
        """Return the whole answer to `messages`."""
        return generate(self, messages, options)

    def _run(
        self,
        stream: Stream,
        tokens: list[int],
        max_tokens: int,
        stops: list[str],
        seed: int,
        sampling: dict[str, Any],
    ) -> Iterator[str]:
        """Decode up to `max_tokens` tokens after `tokens`, yielding text as it is safe to;
        the model is held from the first piece until the stream ends or is closed."""
        with self._lock:
            llama = self._llama
            vocab = llama._model.vocab
            is_eog = self._llama_cpp.llama_vocab_is_eog
            speculative = llama.draft_model is not None
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            held = StopFilter(stops)
            reason: StopReason = "truncated"
            produced = 0
            ttft = 0.0
            text: list[str] = []
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
                stream.generation = Generation(
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
        contents = check_messages(messages)
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
