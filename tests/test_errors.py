"""Typed errors: bad settings are ConfigError (exit 2), runtime failures other RagErrors (1)."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from rag.bm25 import BM25Index, BM25Settings, Tokenizer
from rag.compress import compress, remove_near_duplicates
from rag.errors import (
    ConfigError,
    ContextOverflowError,
    DiskFullError,
    ModelIntegrityError,
    ModelLoadError,
    RagError,
)
from rag.eval.metrics import evaluate
from rag.fusion import reciprocal_rank_fusion, score_fusion
from rag.pack import pack
from rag_cli.output import USAGE_EXIT, run_command


def _words(text: str) -> int:
    return len(text.split())


BAD_SETTINGS: list[tuple[Callable[[], object], str]] = [
    (lambda: reciprocal_rank_fusion([[1]], k=-1), "k=-1 must be >= 0"),
    (lambda: reciprocal_rank_fusion([[1]], weights=[-1.0]), r"weights must be >= 0"),
    (lambda: score_fusion([[(1, 1.0)]], normalize="max"),  # type: ignore[arg-type]
     "normalize='max' must be one of minmax, zscore, none"),
    (lambda: pack([], budget=-1, count_tokens=_words), "budget=-1 must be >= 0"),
    (lambda: pack([], 5, _words, separator_tokens=-2), "separator_tokens=-2 must be >= 0"),
    (lambda: BM25Settings(k1=-1), "k1=-1 must be >= 0"),
    (lambda: BM25Settings(b=2), "b=2 must be between 0 and 1"),
    (lambda: BM25Settings(method="okapi"), "method='okapi' is not one of robertson, "),
    (lambda: BM25Settings(idf_method="tf"), "idf_method='tf' is not one of "),
    (lambda: BM25Settings(dtype="float16"), "dtype='float16' must be 'float32' or 'float64'"),
    (lambda: Tokenizer(stemmer="klingon"), "unknown stemmer 'klingon'; choose from "),
    (lambda: Tokenizer(stopwords="xx"), "unknown stopwords 'xx'"),
    (lambda: BM25Index.build([1], ["a cat"]).search("cat", k=-1), "k=-1 must be >= 0"),
    (lambda: compress("q", "One. Two.", keep_ratio=0), r"keep_ratio=0 must be in \(0, 1\]"),
    (lambda: compress("q", "One. Two.", keep_ratio=1.5), r"keep_ratio=1.5 must be in"),
    (lambda: remove_near_duplicates(["a"], threshold=0), r"threshold=0 must be in \(0, 1\]"),
    (lambda: remove_near_duplicates(["a"], shingle_size=0), "shingle_size=0 must be >= 1"),
    (lambda: evaluate({"q": {"a": float("nan")}}, {"q": {"a": 1}}), "run scores must be"),
    (lambda: evaluate({"q": {"a": 1.0}}, {}), "qrels hold no query"),
]  # fmt: skip


@pytest.mark.parametrize("call, message", BAD_SETTINGS)
def test_invalid_settings_raise_config_error_naming_the_parameter(call, message) -> None:
    with pytest.raises(ConfigError, match=message):
        call()


def test_programming_errors_stay_value_errors() -> None:
    with pytest.raises(ValueError, match="2 weights for 1 rankings"):
        reciprocal_rank_fusion([[1]], weights=[1.0, 1.0])
    with pytest.raises(ValueError, match="unique"):
        BM25Index.build([1, 1], ["a b", "c d"])


def _exit_code(exc: BaseException) -> int:
    def work() -> int:
        raise exc

    return run_command(work, debug=False)


def test_context_overflow_is_a_runtime_error_not_a_usage_error() -> None:
    assert issubclass(ContextOverflowError, RagError)
    assert not issubclass(ContextOverflowError, ConfigError)
    assert _exit_code(ContextOverflowError("the prompt is 5 tokens over")) == 1
    assert _exit_code(ConfigError("k=0 must be at least 1")) == USAGE_EXIT
    assert _exit_code(DiskFullError("the disk is full")) == 1
    assert _exit_code(ModelLoadError("llama.cpp could not load it")) == 1


def test_llama_cpp_failing_on_a_valid_gguf_is_a_load_error_not_integrity(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    from rag.llm.llamacpp import LlamaCppChatModel as Generator

    model = tmp_path / "no-architecture.gguf"  # a well-formed GGUF header with no model in it
    model.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 0))
    with pytest.raises(ModelLoadError) as info:
        Generator(model, n_ctx=64)
    assert not isinstance(info.value, ModelIntegrityError)
    message = str(info.value)
    assert str(model) in message and "memory" in message and "llama-cpp-python" in message


def test_load_failure_of_a_model_bigger_than_memory_says_to_use_a_smaller_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rag import models

    model = tmp_path / "big.gguf"
    model.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 0) + bytes(2**20))
    monkeypatch.setattr(models, "_available_memory", lambda: 2**19)
    message = models.load_failure_message(model, 4096, ValueError("Failed to load model"))
    assert "the model is 1 MB but only 0 MB of memory is available" in message
    assert "--preset fast" in message
