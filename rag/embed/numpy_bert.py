"""A BERT sentence encoder in plain NumPy, for a query or two without importing torch.

Loading torch, transformers and sentence-transformers takes seconds; a search embeds one short
query. This module runs the same forward pass (embeddings, self-attention layers, mean pooling,
L2 normalisation) in float32 NumPy from the model folder's `model.safetensors` and
`tokenizer.json`, so a cold `rag search` reads the weights and nothing else. It serves only
the architecture it implements — BERT with absolute positions, GELU, mean pooling, the
sentence-transformers layout of the packaged all-MiniLM-L6-v2 — and says why otherwise.

>>> encoder = NumpyBertEncoder(resolve_embedder())  # doctest: +SKIP
>>> encoder.encode(["how long does the battery last"]).shape  # doctest: +SKIP
(1, 384)
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def unsupported_reason(folder: Path) -> str | None:
    """Why `folder` cannot run here (None when it can): architecture, pooling, weights file."""

    def read(name: str) -> dict:
        path = folder / name
        return json.loads(path.read_text()) if path.is_file() else {}

    config = read("config.json")
    if config.get("model_type") != "bert":
        return f"model_type {config.get('model_type')!r} is not bert"
    if config.get("position_embedding_type", "absolute") != "absolute":
        return "only absolute position embeddings are implemented"
    if config.get("hidden_act") != "gelu":
        return f"activation {config.get('hidden_act')!r} is not gelu"
    modules = [m.get("type", "") for m in json.loads((folder / "modules.json").read_text())] \
        if (folder / "modules.json").is_file() else []  # fmt: skip
    expected = ["sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling",
                "sentence_transformers.models.Normalize"]  # fmt: skip
    if modules != expected:
        return "modules are not Transformer → Pooling → Normalize"
    pooling = read("1_Pooling/config.json")
    modes = [k for k, v in pooling.items() if k.startswith("pooling_mode") and v]
    if modes != ["pooling_mode_mean_tokens"]:
        return f"pooling {modes} is not mean pooling"
    if not (folder / "model.safetensors").is_file():
        return "no model.safetensors"
    return None


class NumpyBertEncoder:
    """Encode texts with a BERT sentence-transformers model, float32, in NumPy."""

    def __init__(self, folder: Path, max_tokens: int | None = None) -> None:
        self.folder = Path(folder)
        config = json.loads((self.folder / "config.json").read_text())
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        st_config = self.folder / "sentence_bert_config.json"
        seq = json.loads(st_config.read_text()).get("max_seq_length") if st_config.is_file() \
            else None  # fmt: skip
        self.max_length = int(max_tokens + 2 if max_tokens else seq or 512)

    @cached_property
    def weights(self) -> dict[str, np.ndarray]:
        """The tensors as read-only views of the memory-mapped file (nothing copied)."""
        return read_safetensors(self.folder / "model.safetensors")

    @cached_property
    def tokenizer(self):  # type: ignore[no-untyped-def]
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        tokenizer.enable_truncation(self.max_length)
        tokenizer.no_padding()
        return tokenizer

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One L2-normalised float32 row per text (each text run alone: no padding).

        BLAS runs on one thread: at a query's size a second one only adds hand-off cost.
        """
        import numpy as np
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, user_api="blas"):
            rows = [self._encode_one(e.ids) for e in self.tokenizer.encode_batch(list(texts))]
        dim = self.weights["embeddings.word_embeddings.weight"].shape[1]
        return np.vstack(rows) if rows else np.zeros((0, dim), dtype=np.float32)

    def _encode_one(self, ids: list[int]) -> np.ndarray:
        import numpy as np

        w = self.weights
        n = len(ids)
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][:n]
             + w["embeddings.token_type_embeddings.weight"][0])  # fmt: skip
        x = self._norm(x, "embeddings.LayerNorm")
        head_dim = x.shape[1] // self.heads
        scale = 1.0 / math.sqrt(head_dim)
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            q, k, v = (self._dense(x, p + f"attention.self.{name}") for name in
                       ("query", "key", "value"))  # fmt: skip
            q, k, v = (t.reshape(n, self.heads, head_dim).transpose(1, 0, 2) for t in (q, k, v))
            scores = (q @ k.transpose(0, 2, 1)) * scale
            scores -= scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            context = (probs @ v).transpose(1, 0, 2).reshape(n, -1)
            x = self._norm(self._dense(context, p + "attention.output.dense") + x,
                           p + "attention.output.LayerNorm")  # fmt: skip
            hidden = _gelu(self._dense(x, p + "intermediate.dense"))
            x = self._norm(self._dense(hidden, p + "output.dense") + x, p + "output.LayerNorm")
        pooled = x.mean(axis=0)
        return (pooled / max(float(np.linalg.norm(pooled)), 1e-12)).astype(np.float32)

    def _dense(self, x: np.ndarray, name: str) -> np.ndarray:
        return x @ self.weights[name + ".weight"].T + self.weights[name + ".bias"]

    def _norm(self, x: np.ndarray, name: str) -> np.ndarray:
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        return (x - mean) / (var + self.eps) ** 0.5 * self.weights[name + ".weight"] + \
            self.weights[name + ".bias"]  # fmt: skip


_DTYPES = {"F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4"}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Map a .safetensors file (8-byte header size, JSON header, raw tensors) into arrays."""
    import numpy as np

    with path.open("rb") as handle:
        size = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(size))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + size)
    tensors = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        if meta["dtype"] not in _DTYPES:
            raise ValueError(f"{path}: tensor {name} has dtype {meta['dtype']}, not supported")
        start, end = meta["data_offsets"]
        array = data[start:end].view(_DTYPES[meta["dtype"]]).reshape(meta["shape"])
        tensors[name] = array.astype(np.float32) if meta["dtype"] == "F16" else array
    return tensors


def _gelu(x: np.ndarray) -> np.ndarray:
    """GELU with the exact erf, as BERT's "gelu" (erf from Abramowitz–Stegun 7.1.26, |ε| < 2e-7)."""
    import numpy as np

    z = x / math.sqrt(2.0)
    sign = np.sign(z)
    a = np.abs(z)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027
                                                                           + t * 1.061405429))))
    erf = sign * (1.0 - poly * np.exp(-a * a))
    return 0.5 * x * (1.0 + erf)
