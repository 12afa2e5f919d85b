"""The ports: a chat model and a vector index written here, not in rag/, run the pipeline."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from rag import Index
from rag.llm.base import ChatModel, Generation, GenerationOptions, Message, Stream
from rag.settings import load_settings
from rag.vectors.base import VectorBackend, VectorIndex


class EchoModel:
    """Answers with the first sentence of source [1], cited; counts words as tokens."""

    name = "echo"
    n_ctx = 2048

    def __init__(self) -> None:
        self.calls = 0

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def chat_prompt_tokens(self, messages: Sequence[Message]) -> int:
        return sum(len(m["content"].split()) + 2 for m in messages)

    def stream(self, messages: Sequence[Message], options: GenerationOptions) -> Stream:
        self.calls += 1
        user = messages[-1]["content"]
        body = user.split('">', 1)[1].split("</source>", 1)[0].strip()
        reply = body.split(". ")[0].rstrip(".") + ". [1]"
        stream = Stream(iter(()))

        def pieces() -> Iterator[str]:
            words = reply.split(" ")
            for i, word in enumerate(words):
                yield word if i == 0 else " " + word
            stream.generation = Generation(reply, "complete", 10, len(words), 0.001, 0.002)

        stream.pieces = pieces()
        return stream


class DictIndex:
    """Brute-force inner product over a dict: the whole vector-index port in a few lines."""

    def __init__(self) -> None:
        self.rows: dict[int, np.ndarray] = {}
        self.searches = 0

    def __len__(self) -> int:
        return len(self.rows)

    def ids(self) -> np.ndarray:
        return np.asarray(sorted(self.rows), dtype=np.int64)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        for i, v in zip(ids.tolist(), vectors, strict=True):
            self.rows[int(i)] = np.asarray(v, dtype=np.float32)

    def remove(self, ids: np.ndarray) -> bool:
        for i in ids.tolist():
            self.rows.pop(int(i), None)
        return True

    def search(
        self, vector: np.ndarray, k: int, allowed: Collection[int] | None = None
    ) -> list[tuple[int, float]]:
        self.searches += 1
        scored = [(i, float(v @ vector[0])) for i, v in self.rows.items()
                  if allowed is None or i in allowed]  # fmt: skip
        return sorted(scored, key=lambda p: -p[1])[:k]

    def save(self, path: Path) -> None:
        vectors = np.asarray([self.rows[i] for i in self.ids().tolist()], dtype=np.float32)
        np.savez(path.with_suffix(".tmp.npz"), ids=self.ids(), vectors=vectors)
        path.with_suffix(".tmp.npz").replace(path)


class DictBackend:
    kind = "dict"
    name = "dictvectors"

    def __init__(self) -> None:
        self.made: list[DictIndex] = []

    def file_name(self, generation: int) -> str:
        return f"dictvectors-{generation}.npz"

    def create(self, dim: int) -> DictIndex:
        self.made.append(DictIndex())
        return self.made[-1]

    def load(self, path: Path) -> DictIndex | None:
        return None  # always rebuilt from SQLite


def test_the_ports_are_what_the_test_classes_implement() -> None:
    assert isinstance(EchoModel(), ChatModel)
    assert isinstance(DictIndex(), VectorIndex)
    assert isinstance(DictBackend(), VectorBackend)


@pytest.mark.model
def test_a_custom_chat_model_and_vector_index_answer_from_the_index(tmp_path, embedder) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "pump.md").write_text(
        "# Pump\n\nThe P4 pump delivers 12 litres a minute. It is quiet.\n"
    )
    (docs / "fan.md").write_text("# Fan\n\nThe F2 fan spins at 900 rpm in summer.\n")
    model, backend = EchoModel(), DictBackend()
    settings = load_settings(preset="tiny", overrides={"answer.min_evidence": 0.0}).settings
    index = Index(tmp_path / "idx", settings=settings, embedder=embedder, chat_model=model,
                  vectors=backend)  # fmt: skip
    report = index.ingest([docs])
    assert report.added == 2 and report.failed == []
    hits = index.search("how many litres does the pump deliver", k=1, mode="dense")
    assert hits[0].path.endswith("pump.md")
    assert backend.made and backend.made[-1].searches > 0, "dense search went through the port"
    answer = index.ask("How many litres a minute does the P4 pump deliver?")
    assert model.calls == 1
    assert not answer.abstained, answer.abstain_reason
    assert "12 litres" in answer.answer and answer.sentences[0].supported
    assert answer.sources[answer.sentences[0].citations[0] - 1].path.endswith("pump.md")
    assert answer.abstention_signal.startswith("none"), "text output has no P(found) signal"
    assert answer.generation is not None and answer.generation.completion_tokens > 0
    assert (tmp_path / "idx" / "dictvectors-1.npz").exists(), "the backend's own file is saved"
