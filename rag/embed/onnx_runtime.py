"""The ONNX Runtime backend of the embedder port: the same sentence-transformers BERT, run by
onnxruntime's fused CPU kernels on length-sorted batches of about TOKEN_BUDGET word pieces.

The graph is exported from the model folder once and cached (`rag.embed.onnx_export`); after
that, encoding needs neither torch nor transformers: the tokenizer, onnxruntime and NumPy for
mean pooling. Needs the `onnx` extra (`pip install 'rag[onnx]'`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from rag.embed.numpy_bert import NumpyBertEncoder, unsupported_reason
from rag.embed.onnx_export import ExportSettings, cached_export, require_onnxruntime
from rag.embed.sentence_transformers import (
    WordPieceCounter,
    read_info,
    resolve_embedder,
    token_budget_batches,
)
from rag.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np


class OnnxEmbedder:
    """Encode texts into L2-normalised float32 vectors with ONNX Runtime.

    >>> emb = OnnxEmbedder()             # the packaged all-MiniLM-L6-v2, exported on first use
    >>> emb.encode(["hello world"]).shape  # doctest: +SKIP
    (1, 384)
    """

    encoder = "onnx"  # what the index records as the runtime that made its vectors

    def __init__(
        self,
        spec: str | Path | None = None,
        *,
        batch_size: int = 64,
        query_encoder: str = "auto",
        threads: int | None = None,
        export: ExportSettings | None = None,
    ) -> None:
        if query_encoder not in ("auto", "torch"):
            raise ConfigError(f"query_encoder={query_encoder!r} must be one of auto, torch")
        require_onnxruntime()
        folder = resolve_embedder(spec)
        reason = unsupported_reason(folder)
        if reason is not None:
            raise ConfigError(
                f"ingest.encoder='onnx' runs BERT sentence-transformers models only; {folder}: "
                f"{reason}; set ingest.encoder=torch"
            )
        self.spec = str(spec) if spec is not None else None
        self.folder = folder
        self.info = replace(read_info(folder), encoder=self.encoder)
        self.batch_size = batch_size
        self.query_encoder = query_encoder
        self.threads = threads or len(os.sched_getaffinity(0))
        self.export = export or ExportSettings()

    @cached_property
    def counter(self) -> WordPieceCounter:
        """The tokenizer alone: cheap, no onnxruntime."""
        return WordPieceCounter(self.folder / "tokenizer.json")

    @cached_property
    def numpy_encoder(self) -> NumpyBertEncoder | None:
        """The NumPy encoder for a query or two before the session is loaded."""
        if self.query_encoder == "torch":
            return None
        return NumpyBertEncoder(self.folder, self.info.max_tokens)

    @cached_property
    def tokenizer(self):  # type: ignore[no-untyped-def]
        """The tokenizer as the model reads text: special tokens, cut at the model's limit."""
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        tokenizer.enable_truncation(self.info.max_tokens + 2)
        tokenizer.no_padding()
        return tokenizer

    @cached_property
    def model_path(self) -> Path:
        """The cached ONNX export of the model (made now if missing or stale)."""
        return cached_export(self.folder, self.export)

    @cached_property
    def session(self):  # type: ignore[no-untyped-def]
        """The onnxruntime session: all graph optimisations, `threads` intra-op threads."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # warnings about the fused graph's shapes are noise
        return ort.InferenceSession(str(self.model_path), options,
                                    providers=["CPUExecutionProvider"])  # fmt: skip

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Return one unit-length float32 row per text."""
        import numpy as np

        if not texts:
            return np.zeros((0, self.info.dim), dtype=np.float32)
        if len(texts) <= 4 and "session" not in self.__dict__ and self.numpy_encoder is not None:
            return self.numpy_encoder.encode(texts)
        vectors = self.hidden_means(texts)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)

    def hidden_means(self, texts: Sequence[str]) -> np.ndarray:
        """Mean of the last hidden states over each text's tokens (not yet normalised)."""
        import numpy as np

        encodings = self.tokenizer.encode_batch(list(texts))
        lengths = np.asarray([len(e.ids) for e in encodings])
        out = np.zeros((len(texts), self.info.dim), dtype=np.float32)
        for batch in token_budget_batches(lengths, self.batch_size):
            width = int(lengths[batch].max())
            ids = np.zeros((len(batch), width), dtype=np.int64)
            types = np.zeros_like(ids)
            mask = np.zeros_like(ids)
            for row, i in enumerate(batch):
                n = int(lengths[i])
                ids[row, :n] = encodings[i].ids
                types[row, :n] = encodings[i].type_ids
                mask[row, :n] = 1
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            hidden = self.session.run(["last_hidden_state"], feeds)[0]
            weights = mask[:, :, None].astype(np.float32)
            out[batch] = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return out
