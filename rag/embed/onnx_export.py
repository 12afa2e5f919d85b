"""Export a sentence-transformers BERT to ONNX once, fused for ONNX Runtime, and cache it.

The transformer alone is exported (input_ids, attention_mask, token_type_ids → the last hidden
state, batch and sequence axes dynamic); pooling and normalisation stay in NumPy. With
`fuse`, onnxruntime's transformer optimizer then rewrites the graph into its fused CPU kernels
(Attention, SkipLayerNormalization, BiasGelu, EmbedLayerNormalization).

The export lands in `$RAG_CACHE_DIR/onnx/<key>/` (else the user cache), where `key` hashes the
model's files, the onnxruntime, onnx and torch versions and the export settings, so a changed
model or an upgraded runtime gets a new export. A manifest records the file's sha256: a
truncated or altered file is rebuilt, not loaded.

>>> path = cached_export(resolve_embedder())  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import platformdirs

from rag.errors import ConfigError

CACHE_ENV = "RAG_CACHE_DIR"
EXPORT_FORMAT = 1  # bump when this module changes what an export contains
MODEL_FILE = "model.onnx"
MANIFEST = "export.json"
# The model folder's files that decide the exported graph (the tokenizer runs outside it).
_GRAPH_FILES = ("config.json", "model.safetensors", "pytorch_model.bin")
_READ = 1 << 20


@dataclass(frozen=True)
class ExportSettings:
    """How the graph is made: the ONNX opset, and whether onnxruntime's fusions rewrite it.

    `opt_level` is the optimizer's own onnxruntime pass before its fusions (1: basic,
    hardware-independent; higher levels would tie the file to this CPU).
    """

    opset: int = 17
    fuse: bool = True
    opt_level: int = 1


def require_onnxruntime() -> None:
    """Raise ConfigError naming the extra when onnxruntime or onnx is not installed."""
    import importlib.util

    missing = [m for m in ("onnxruntime", "onnx") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(
            f"ingest.encoder='onnx' needs {' and '.join(missing)}: pip install 'rag[onnx]' "
            "(or pip install onnxruntime onnx), or set ingest.encoder=torch"
        )


def export_cache_dir() -> Path:
    """The folder of cached exports: `$RAG_CACHE_DIR/onnx`, else the user cache's."""
    root = os.environ.get(CACHE_ENV) or platformdirs.user_cache_dir("rag")
    return Path(root).expanduser() / "onnx"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_READ):
            digest.update(block)
    return digest.hexdigest()


def export_key(folder: Path, settings: ExportSettings) -> str:
    """Hash of what decides an export: the model's files, the runtime's versions, settings."""
    digest = hashlib.sha256()
    for name in _GRAPH_FILES:
        path = folder / name
        if path.is_file():
            digest.update(f"{name}:{_sha256(path)}\n".encode())
    versions = {p: _version(p) for p in ("onnxruntime", "onnx", "torch", "transformers")}
    extra = {"format": EXPORT_FORMAT, "settings": asdict(settings), "versions": versions}
    digest.update(json.dumps(extra, sort_keys=True).encode())
    return digest.hexdigest()[:20]


def cached_export(folder: Path, settings: ExportSettings | None = None) -> Path:
    """Return the cached ONNX file of the model in `folder`, exporting it first if needed.

    An export whose manifest is missing, names another key, or whose file's sha256 differs
    (truncated, altered) is made again. Two processes exporting at once both succeed: each
    writes its own folder and the first to rename it wins.
    """
    require_onnxruntime()
    settings = settings or ExportSettings()
    key = export_key(folder, settings)
    target = export_cache_dir() / key
    if is_valid_export(target, key):
        return target / MODEL_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=target.parent))
    try:
        export_model(folder, work / MODEL_FILE, settings)
        manifest = {
            "key": key, "sha256": _sha256(work / MODEL_FILE), "model": str(folder),
            "settings": asdict(settings), "onnxruntime": _version("onnxruntime"),
        }  # fmt: skip
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        work.chmod(0o755)  # mkdtemp's 0700 would hide the export from other users
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)  # stale or corrupt: replaced
        try:
            os.rename(work, target)
        except OSError:
            if not is_valid_export(target, key):  # another process's rename won, or failed
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target / MODEL_FILE


def is_valid_export(folder: Path, key: str) -> bool:
    """Tell whether `folder` holds a complete export made for `key` (sha256 checked)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        return manifest.get("key") == key and manifest.get("sha256") == _sha256(folder / MODEL_FILE)
    except (OSError, ValueError, AttributeError):
        return False


def export_model(folder: Path, dest: Path, settings: ExportSettings) -> None:
    """Export the model's transformer to `dest` with torch.onnx (and fuse it, per `settings`)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoConfig, AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    config = AutoConfig.from_pretrained(folder, local_files_only=True)
    # eager attention: the MatMul/Softmax pattern onnxruntime's Attention fusion recognises
    model = AutoModel.from_pretrained(folder, local_files_only=True, attn_implementation="eager")
    model.eval()

    class LastHidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = model

        def forward(self, input_ids, attention_mask, token_type_ids):  # type: ignore[no-untyped-def]
            out = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                            token_type_ids=token_type_ids)  # fmt: skip
            return out.last_hidden_state

    ids = torch.ones((2, 16), dtype=torch.int64)
    inputs = (ids, torch.ones_like(ids), torch.zeros_like(ids))
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {name: {0: "batch", 1: "sequence"} for name in [*names, "last_hidden_state"]}
    raw = dest.with_suffix(".raw.onnx") if settings.fuse else dest
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on shape checks that hold for any shape
        torch.onnx.export(LastHidden(), inputs, str(raw), input_names=names,
                          output_names=["last_hidden_state"], dynamic_axes=axes,
                          opset_version=settings.opset, dynamo=False,
                          do_constant_folding=True)  # fmt: skip
    if settings.fuse:
        fuse_graph(raw, dest, config.num_attention_heads, config.hidden_size, settings.opt_level)
        raw.unlink()


def fuse_graph(source: Path, dest: Path, heads: int, hidden: int, opt_level: int) -> dict:
    """Rewrite a BERT graph into onnxruntime's fused CPU operators; return the fused counts."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    options.enable_gelu_approximation = False  # the exact erf GELU the model was trained with
    optimized = optimize_model(str(source), model_type="bert", num_heads=heads,
                               hidden_size=hidden, optimization_options=options,
                               opt_level=opt_level, use_gpu=False)  # fmt: skip
    optimized.save_model_to_file(str(dest))
    counts: dict = optimized.get_fused_operator_statistics()
    return counts
