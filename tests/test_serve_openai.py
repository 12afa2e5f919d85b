"""`rag serve` with the real tiny model, driven by the unmodified official `openai` client:
answers with sources, streaming with the sources before [DONE], abstention, usage, models
and embeddings."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest

from rag.serve import RagService, create_app
from rag.settings import load_settings
from tests.conftest import DEMO
from tests.live_app import running

pytestmark = [pytest.mark.llm, pytest.mark.model]
openai = pytest.importorskip("openai")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, embedder):
    """An OpenAI client on a live `rag serve` over the demo corpus with the tiny preset."""
    from rag import Index
    from rag.models import resolve_model

    try:
        resolve_model(preset="tiny")
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"tiny generator not installed: {exc}")
    settings = load_settings(preset="tiny").settings
    index = tmp_path_factory.mktemp("serve-openai") / "index"
    Index(index, settings=settings, embedder=embedder).ingest([DEMO])
    service = RagService(index, settings, preset="tiny", embedder=embedder)
    service.start()
    with running(create_app(service)) as url:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def demo_path(path: str) -> bool:
    return Path(path).parent == DEMO.resolve()


def test_the_client_gets_an_answer_or_an_abstention_with_sources_and_usage(client):
    reply = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "When was the Kestrel K2 launched?"}]
    )
    extra = reply.model_extra
    text = reply.choices[0].message.content
    assert text and reply.choices[0].finish_reason in ("stop", "length")
    if extra["abstained"]:
        assert text == "Not found in your documents."
        assert extra["nearest"] and all(demo_path(s["path"]) for s in extra["nearest"])
    else:
        assert extra["sources"] and all(demo_path(s["path"]) for s in extra["sources"])
        assert "[" in text  # verified citations
        assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0
        assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
        assert reply.usage.model_extra["ttft_s"] > 0


def test_streaming_keeps_the_sources_in_the_last_chunk(client):
    stream = client.chat.completions.create(
        model="tiny", stream=True,
        messages=[{"role": "user", "content": "When was the Kestrel K2 Plus launched?"}],
    )  # fmt: skip
    chunks = list(stream)
    pieces = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    final = chunks[-1]
    assert final.choices[0].finish_reason in ("stop", "length")
    extra = final.model_extra
    assert extra["answer"]
    if extra["abstained"]:
        assert extra["answer"] == "Not found in your documents."
    else:
        assert pieces.strip()  # the answer streamed in before the verified one arrived
        assert extra["sources"] and all(demo_path(s["path"]) for s in extra["sources"])
        assert final.usage is not None and final.usage.completion_tokens > 0
    events = [c.model_extra.get("event") for c in chunks if not c.choices]
    assert "retrieving" in events


def test_a_question_the_documents_cannot_answer_is_not_answered(client):
    reply = client.chat.completions.create(
        model="rag",
        messages=[{"role": "user", "content": "Who won the 1998 football world cup final?"}],
    )
    assert reply.model_extra["abstained"] is True
    assert reply.choices[0].message.content == "Not found in your documents."
    assert reply.model_extra["abstain_reason"]


def test_models_and_embeddings_through_the_client(client):
    assert [m.id for m in client.models.list()] == ["tiny", "rag"]
    floats = client.embeddings.create(model="rag", input=["anemometer"], encoding_format="float")
    vector = np.asarray(floats.data[0].embedding)
    assert vector.shape == (384,) and abs(np.linalg.norm(vector) - 1) < 1e-3
    packed = client.embeddings.create(model="rag", input="anemometer")  # the client's base64
    again = packed.data[0].embedding
    if isinstance(again, str):
        again = np.frombuffer(base64.b64decode(again), dtype="<f4")
    assert np.allclose(np.asarray(again), vector, atol=1e-5)


def test_an_unknown_model_is_a_404_the_client_raises(client):
    with pytest.raises(openai.NotFoundError, match="unknown model 'gpt-4'"):
        client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "hi"}])


def test_the_same_question_again_comes_from_the_answer_cache(client):
    question = [{"role": "user", "content": "Who is the managing director of Aldermoor?"}]
    first = client.chat.completions.create(model="tiny", messages=question)
    again = client.chat.completions.create(model="tiny", messages=question)
    assert first.model_extra["cached"] is False and again.model_extra["cached"] is True
    assert again.choices[0].message.content == first.choices[0].message.content
