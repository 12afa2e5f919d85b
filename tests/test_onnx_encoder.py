"""The ONNX Runtime encoder: the torch fp32 vectors, one cached export reused across
constructions and rebuilt when stale, the encoder recorded in the index, the extra named."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import replace

import numpy as np
import pytest

from rag.chunking import chunk_document
from rag.embed.base import ENCODER_COSINE, REQUIRED_COSINE, EmbedderInfo, interchangeable
from rag.errors import ConfigError, IndexFormatError
from rag.loaders import kind_of, load_document
from tests.conftest import DEMO

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
onnx_export = pytest.importorskip("rag.embed.onnx_export")

from rag.embed.onnx_runtime import OnnxEmbedder  # noqa: E402


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("rag-cache")


@pytest.fixture
def exports(cache_root, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Point the export cache at one folder for the module; count the real exports made."""
    monkeypatch.setenv("RAG_CACHE_DIR", str(cache_root))
    made: list[str] = []
    real = onnx_export.export_model

    def counting(folder, dest, settings):  # type: ignore[no-untyped-def]
        made.append(str(dest))
        real(folder, dest, settings)

    monkeypatch.setattr(onnx_export, "export_model", counting)
    return made


def _demo_chunks(embedder) -> list[str]:  # type: ignore[no-untyped-def]
    texts = []
    for path in sorted(DEMO.iterdir()):
        kind = kind_of(path)
        if kind in ("txt", "md", "html", "pdf"):
            doc = load_document(str(path), kind, path.read_bytes())
            chunks = chunk_document(doc, embedder.counter, embedder.info.max_tokens)
            texts += [chunk.embed_text for chunk in chunks]
    return texts


@pytest.mark.model
def test_onnx_vectors_match_torch_fp32_on_the_demo_chunks(exports):
    from rag.embed import SentenceTransformerEmbedder

    torch_fp32 = SentenceTransformerEmbedder(dtype="fp32")
    texts = _demo_chunks(torch_fp32)
    assert len(texts) > 50
    ours = OnnxEmbedder().encode(texts)
    reference = torch_fp32.encode(texts)
    assert ours.shape == reference.shape and ours.dtype == np.float32
    cosines = (ours * reference).sum(axis=1)
    # the figure the index's tolerance table quotes, and well inside the required one
    assert cosines.min() >= ENCODER_COSINE[frozenset({"torch", "onnx"})] >= REQUIRED_COSINE
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


@pytest.mark.model
def test_a_second_embedder_reuses_the_cached_export(exports):
    first = OnnxEmbedder().model_path
    stamp = first.stat().st_mtime_ns
    made = len(exports)
    second = OnnxEmbedder()
    assert second.model_path == first and first.stat().st_mtime_ns == stamp
    assert second.encode(["a query", "and a second text", "3", "4", "five"]).shape == (5, 384)
    assert len(exports) == made  # nothing exported again


@pytest.mark.model
def test_a_corrupt_export_is_rebuilt_not_loaded(exports):
    path = OnnxEmbedder().model_path
    made = len(exports)
    with path.open("r+b") as handle:  # same size, altered weights: only the hash can tell
        handle.seek(path.stat().st_size // 2)
        handle.write(b"\x00" * 64)
    rebuilt = OnnxEmbedder()
    assert rebuilt.model_path == path
    assert len(exports) == made + 1
    manifest = json.loads((path.parent / onnx_export.MANIFEST).read_text())
    assert onnx_export.is_valid_export(path.parent, manifest["key"])
    vector = rebuilt.encode(["calibrate the rain gauge"] * 5)
    assert np.isfinite(vector).all()


def test_the_export_key_follows_the_model_files_runtime_and_settings(tmp_path, monkeypatch):
    from rag.embed.sentence_transformers import resolve_embedder

    folder = resolve_embedder()
    settings = onnx_export.ExportSettings()
    key = onnx_export.export_key(folder, settings)
    assert onnx_export.export_key(folder, settings) == key  # stable
    changed = tmp_path / "model"
    changed.mkdir()
    for item in folder.iterdir():
        (changed / item.name).symlink_to(item)
    (changed / "config.json").unlink()
    config = json.loads((folder / "config.json").read_text())
    (changed / "config.json").write_text(json.dumps({**config, "layer_norm_eps": 1e-6}))
    assert onnx_export.export_key(changed, settings) != key  # the model changed
    assert onnx_export.export_key(folder, replace(settings, fuse=False)) != key
    real = onnx_export._version
    monkeypatch.setattr(onnx_export, "_version",
                        lambda p: "0.0.1" if p == "onnxruntime" else real(p))  # fmt: skip
    assert onnx_export.export_key(folder, settings) != key  # another onnxruntime


@pytest.mark.model
def test_an_index_records_its_encoder_and_takes_the_other_within_tolerance(
    exports, tmp_path, embedder
):
    from rag import Index

    files = tmp_path / "docs"
    files.mkdir()
    for name in ("faq.md", "warranty.txt"):
        shutil.copy(DEMO / name, files / name)
    onnx = OnnxEmbedder()
    Index(tmp_path / "idx", embedder=onnx).ingest([files])
    searched = Index(tmp_path / "idx", embedder=embedder)  # torch: within the tolerance
    hits = searched.search("how long is the warranty", k=3)
    assert any(hit.path.endswith("warranty.txt") for hit in hits)
    store = searched.pipeline.store()
    recorded = store.embedder_info()
    assert recorded is not None and recorded.encoder == "onnx"
    with pytest.raises(IndexFormatError, match="ingest.encoder=onnx"):
        store.refuse_other_embedder(replace(recorded, encoder="onnx-int8"))


def test_encoders_share_an_index_only_when_measured_close():
    assert interchangeable("torch", "onnx") and interchangeable("", "onnx")
    assert interchangeable("onnx", "onnx") and not interchangeable("torch", "onnx-int8")
    old = EmbedderInfo.from_json('{"name": "m", "dim": 3, "max_tokens": 8, "fingerprint": "f"}')
    assert old.encoder == "" and old.same_vectors(replace(old, encoder="onnx"))
    assert replace(old, encoder="onnx").key == "f/onnx" and old.key == "f"


def test_a_missing_onnxruntime_names_the_extra(monkeypatch):
    from rag.embed.factory import local_embedder
    from rag.settings import IngestSettings

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'rag\[onnx\]'"):
        OnnxEmbedder()
    with pytest.raises(ConfigError, match="ingest.encoder=torch"):
        local_embedder(None, IngestSettings(encoder="onnx"))


def test_bf16_with_the_onnx_encoder_is_refused():
    from rag.settings import IngestSettings

    with pytest.raises(ConfigError, match="ingest.dtype"):
        IngestSettings(encoder="onnx", dtype="bf16")
