"""The embedder port over an OpenAI-compatible `/v1/embeddings` server (llama.cpp's
llama-server, llama-cpp-python's server, vLLM, Ollama, text-embeddings-inference…).

Run it by pointing `ingest.embedder_url` at the server's API root; `ingest.embedder` names
the model ("" or the default: the server's only one). The key, if the server wants one, is
read from RAG_EMBED_API_KEY (else RAG_LLM_API_KEY) and never printed or stored:

    python -m llama_cpp.server --model model.gguf --embedding true --port 8081
    rag ingest docs/ --set ingest.embedder_url=http://127.0.0.1:8081/v1
    rag search "battery life" --set ingest.embedder_url=http://127.0.0.1:8081/v1

The index records the model and the server (`spec`), and a fingerprint: a hash of the model
id, the dimension and the vector of a fixed probe sentence (the first 32 components of the
unit vector, to one decimal, so float noise does not change it but other weights do). A
server that swapped its weights is refused like any other embedder.

Vectors are L2-normalised float32. A server that returns one vector per token (llama-cpp-
python with a model that does not pool, e.g. a chat model) is mean-pooled here and sent one
text per request: its batches read the wrong rows for every text after the first.
Texts are counted with the server's tokenizer when it has one (`/extras/tokenize`,
`/tokenize`), else by a conservative estimate (`rag.remote.tokens`).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rag.embed.base import EmbedderInfo
from rag.embed.server_api import EmbeddingsAPI
from rag.errors import ServerError
from rag.remote.tokens import EstimatedTokenCounter, ServerTokenCounter

if TYPE_CHECKING:
    import numpy as np

    from rag.chunking import TokenCounter

PROBE = "The quick brown fox jumps over the lazy dog."
NAME_PREFIX = "openai:"
SPECIAL_TOKENS = 2  # room left for the BOS/EOS (CLS/SEP) tokens a server may add
_FINGERPRINT_DIMS = 32


def api_key(env: Mapping[str, str] | None = None) -> str:
    """The embeddings server's key: RAG_EMBED_API_KEY, else RAG_LLM_API_KEY, else ""."""
    from rag.settings import EMBED_API_KEY_ENV, LLM_API_KEY_ENV

    env = os.environ if env is None else env
    return env.get(EMBED_API_KEY_ENV) or env.get(LLM_API_KEY_ENV) or ""


def server_spec(root: str, model: str) -> str:
    """What an index records for a server embedder: `<API root>#<model id>`."""
    return f"{root}#{model}"


def parse_server_spec(spec: str | None) -> tuple[str, str] | None:
    """(API root, model id) of a recorded server spec; None for a local embedder's spec."""
    if not spec or not spec.startswith(("http://", "https://")):
        return None
    root, _, model = spec.partition("#")
    return root, model


def fingerprint(model: str, dim: int, probe: np.ndarray) -> str:
    """A hash of the model id, the dimension and the coarse unit vector of the probe."""
    import numpy as np

    coarse = [int(x) for x in np.round(probe[:_FINGERPRINT_DIMS] * 10)]
    key = json.dumps([model, dim, coarse])
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class _Connection:
    """What the first request learns: the model, its identity, and whether it pools."""

    model: str
    info: EmbedderInfo
    per_token: bool


class OpenAIEmbedder:
    """Encode texts through an OpenAI-compatible embeddings server.

    Nothing is sent until first use (`info`, `counter` or `encode`), which lists the server's
    models and embeds the probe sentence.

    >>> emb = OpenAIEmbedder("http://127.0.0.1:8081/v1")   # doctest: +SKIP
    >>> emb.info.name, emb.encode(["hello world"]).shape  # doctest: +SKIP
    ('openai:bge-small-en-v1.5', (1, 384))
    """

    def __init__(
        self,
        url: str,
        model: str = "",
        *,
        key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        batch_size: int = 64,
        max_tokens: int = 512,
    ) -> None:
        self.api = EmbeddingsAPI(url, api_key=api_key() if key is None else key,
                                 timeout=timeout, max_retries=max_retries)  # fmt: skip
        self.requested_model = model
        self.batch_size = max(1, batch_size)
        self.max_tokens = max_tokens
        self._lock = threading.Lock()
        self._connection: _Connection | None = None
        self._counter: TokenCounter | None = None
        self.tokenizer = ""  # "server" or "estimate", once the counter is made

    def __repr__(self) -> str:
        return f"OpenAIEmbedder({self.api.root!r}, {self.requested_model!r})"

    @property
    def root(self) -> str:
        return self.api.root

    @property
    def model(self) -> str:
        """The server's id of the model embedding (asks the server on first use)."""
        return self._connect().model

    @property
    def info(self) -> EmbedderInfo:
        return self._connect().info

    @property
    def spec(self) -> str:
        """What the index records: the API root and the model id."""
        return server_spec(self.root, self.model)

    @property
    def counter(self) -> TokenCounter:
        """The server's tokenizer if it has one, else a conservative estimate."""
        model = self.model
        with self._lock:
            if self._counter is None:
                found = self.api.find_tokenizer(model)
                if found is None:
                    self._counter, self.tokenizer = EstimatedTokenCounter(), "estimate"
                else:
                    self._counter = ServerTokenCounter(found[1], name=f"server ({found[0]})")
                    self.tokenizer = "server"
            return self._counter

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Return one unit-length float32 row per text."""
        import numpy as np

        connection = self._connect()
        dim = connection.info.dim
        if not texts:
            return np.zeros((0, dim), dtype=np.float32)
        step = 1 if connection.per_token else self.batch_size
        rows: list[np.ndarray] = []
        for i in range(0, len(texts), step):
            batch = [t if t.strip() else " " for t in texts[i : i + step]]
            rows.extend(self._pool(v)[0] for v in self.api.embed(connection.model, batch))
        if any(len(row) != dim for row in rows):
            raise ServerError(
                f"the embeddings server at {self.root} now returns vectors of "
                f"{len(rows[0])} numbers, not {dim}: it changed models; restart rag"
            )
        return _unit(np.vstack(rows))

    def _connect(self) -> _Connection:
        """Find the model and embed the probe sentence, once."""
        with self._lock:
            if self._connection is None:
                model = self._resolve_model(self.api.models())
                vector, per_token = self._pool(self.api.embed(model, [PROBE])[0])
                unit = _unit(vector[None, :])[0]
                dim = len(unit)
                name = NAME_PREFIX + (model.rsplit("/", 1)[-1] if model.endswith(".gguf")
                                      else model)  # fmt: skip
                info = EmbedderInfo(name, dim, self.max_tokens - SPECIAL_TOKENS,
                                    fingerprint(model, dim, unit))  # fmt: skip
                self._connection = _Connection(model, info, per_token)
            return self._connection

    def _resolve_model(self, served: list[str]) -> str:
        where = f"the embeddings server at {self.root}"
        listed = ", ".join(served) or "nothing"
        wanted = self.requested_model
        if wanted:
            if wanted not in served:
                raise ServerError(
                    f"{where} has no model {wanted!r} (it serves {listed}); set ingest.embedder "
                    'to one of them, or to "" for its only model'
                )
            return wanted
        if len(served) != 1:
            raise ServerError(
                f"{where} serves {len(served)} models ({listed}); set ingest.embedder "
                "to the one to embed with"
            )
        return served[0]

    def _pool(self, vector: Any) -> tuple[np.ndarray, bool]:
        """(one float32 vector, whether it came as one row per token and was mean-pooled)."""
        import numpy as np

        array = np.asarray(vector, dtype=np.float32)
        if array.ndim == 2 and len(array):
            return array.mean(axis=0), True
        if array.ndim != 1 or not len(array):
            raise ServerError(
                f"the embeddings server at {self.root} returned an embedding of shape "
                f"{array.shape}; check that the model is an embedding model"
            )
        return array, False


def _unit(vectors: np.ndarray) -> np.ndarray:
    import numpy as np

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
