"""The files of an eval report: written atomically, charts drawn with matplotlib if present.

Shared by the retrieval report (`rag.eval.report`) and the answers report
(`rag.eval.answers_report`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ReportFiles:
    """The files written, and anything that could not be (e.g. charts without matplotlib)."""

    json: Path
    markdown: Path
    charts: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def write_text(path: Path, text: str) -> None:
    """Write `text` to `path` through a `.part` file, so a reader never sees half of it."""
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    """Write `data` as indented UTF-8 JSON, atomically like `write_text`."""
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def pyplot() -> Any:
    """Return matplotlib.pyplot on the non-interactive Agg backend (ImportError without it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path) -> Path:
    """Save `fig` as a PNG at `path` atomically, close it, and return `path`."""
    fig.tight_layout()
    tmp = path.with_name(path.name + ".part")
    fig.savefig(tmp, dpi=110, format="png")
    pyplot().close(fig)
    os.replace(tmp, path)
    return path
