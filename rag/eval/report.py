"""Write a retrieval eval's report: report.json, report.md and PNG charts in one folder.

Everything works on the report's dict form (``RetrievalReport.to_dict()``, or a report.json
read back), so a baseline from an earlier run compares with the same code:
``compare(current, baseline)`` gives each metric its delta and marks it ``better`` or
``worse`` when it moved by more than ``THRESHOLD``.

Example:
    >>> files = write_report(report.to_dict(), "eval-out/scifact",
    ...                      baseline=load_report("old/report.json"))  # doctest: +SKIP
    >>> files.markdown.read_text().splitlines()[0]  # doctest: +SKIP
    '# Retrieval eval: scifact'
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rag.errors import ConfigError
from rag.eval.report_files import ReportFiles, pyplot, save_figure, write_json, write_text
from rag.eval.runner import metric_names

THRESHOLD = 0.005
STAGE_ORDER = ("embed_query", "bm25", "dense", "fusion", "fetch", "rerank")
_KIND_LABELS = {"beir": "BEIR", "qa": "QA", "labelled": "labelled"}
_LABELS = {"ndcg": "nDCG", "recall": "Recall", "mrr": "MRR", "map": "MAP", "p": "P"}


def headline_metrics(ks: Sequence[int]) -> list[str]:
    """Return the table's metrics: nDCG, MRR and P at the smallest k, Recall at the largest, MAP."""
    low, high = min(ks), max(ks)
    return [f"ndcg@{low}", f"recall@{high}", f"mrr@{low}", "map", f"p@{low}"]


def metric_label(name: str) -> str:
    """Turn ``ndcg@10`` into ``nDCG@10``."""
    kind, sep, k = name.partition("@")
    return _LABELS.get(kind, kind) + sep + k


def load_report(path: str | Path) -> dict[str, Any]:
    """Read a report.json written by ``rag eval retrieval``; raise ConfigError otherwise."""
    path = Path(path).expanduser()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: baseline report not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable report.json ({exc})") from None
    configs = data.get("configs") if isinstance(data, dict) else None
    if not isinstance(configs, list) or not all(
        isinstance(c, dict) and "mode" in c for c in configs
    ):
        raise ConfigError(
            f"{path}: not a report.json written by 'rag eval retrieval' "
            "(expected an object with a 'configs' list of {'mode', ...})"
        )
    return data


def compare(
    current: dict[str, Any], baseline: dict[str, Any], threshold: float = THRESHOLD
) -> dict[str, Any]:
    """Return `current` with each config's change against the same config in `baseline`.

    Every metric both runs have gets ``{"old", "delta", "change"}`` with change ``better``,
    ``worse`` (moved by more than `threshold`) or ``same``; latency gets old and delta only,
    as it is too noisy to judge. Configs match on mode and chunk size.
    """
    old_by_key = {(c["mode"], c.get("chunk_tokens")): c for c in baseline["configs"]}
    names = metric_names(current["ks"])
    configs = []
    for config in current["configs"]:
        config = dict(config)
        old = old_by_key.get((config["mode"], config.get("chunk_tokens")))
        if old is not None:
            deltas: dict[str, dict[str, Any]] = {}
            for name in names:
                if isinstance(old.get(name), int | float) and name in config:
                    delta = config[name] - old[name]
                    change = "same"
                    if delta > threshold:
                        change = "better"
                    elif delta < -threshold:
                        change = "worse"
                    deltas[name] = {"old": old[name], "delta": round(delta, 6), "change": change}
            for name in ("latency_ms_p50", "latency_ms_p95"):
                if isinstance(old.get(name), int | float) and config.get(name) is not None:
                    delta = round(config[name] - old[name], 3)
                    deltas[name] = {"old": old[name], "delta": delta}
            config["baseline"] = deltas
        configs.append(config)
    matched = {(c["mode"], c.get("chunk_tokens")) for c in current["configs"]}
    return {
        **current,
        "configs": configs,
        "baseline": {
            "dataset": baseline.get("dataset"),
            "created": baseline.get("created"),
            "threshold": threshold,
            "unmatched": [
                c.get("name", c["mode"]) for k, c in old_by_key.items() if k not in matched
            ],
            "regressions": sum(
                d.get("change") == "worse" for c in configs for d in c.get("baseline", {}).values()
            ),
            "improvements": sum(
                d.get("change") == "better" for c in configs for d in c.get("baseline", {}).values()
            ),
        },
    }


def write_report(
    data: dict[str, Any], out_dir: str | Path, baseline: dict[str, Any] | None = None
) -> ReportFiles:
    """Write report.json, report.md, metrics.png and latency.png into `out_dir`."""
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    if baseline is not None:
        data = compare(data, baseline)
    files = ReportFiles(json=out / "report.json", markdown=out / "report.md")
    write_json(files.json, data)
    write_text(files.markdown, render_markdown(data))
    try:
        files.charts.append(plot_metrics(data, out / "metrics.png"))
        files.charts.append(plot_latency(data, out / "latency.png"))
    except ImportError:
        files.warnings.append(
            "charts skipped: matplotlib is not installed (pip install matplotlib)"
        )
    return files


def render_markdown(data: dict[str, Any]) -> str:
    """Render the report as Markdown tables: metrics, latency per stage, index builds."""
    names = headline_metrics(data["ks"])
    lines = [f"# Retrieval eval: {data['dataset']}", ""]
    skipped = data.get("skipped_queries") or 0
    skipped_text = f" ({skipped} without a relevant document left out)" if skipped else ""
    machine = data.get("machine", {})
    kind = _KIND_LABELS.get(data["kind"], data["kind"])
    lines.append(
        f"{data['queries']} queries{skipped_text} · {kind} dataset `{data['dataset_path']}` · "
        f"{data['created']} · {machine.get('cpus', '?')} CPUs · "
        f"run took {data['seconds']:.0f} s"
    )
    lines.append("")
    lines.append(f"Reranker: {data.get('reranker') or 'none configured'}.")
    if data.get("command"):
        lines += ["", "Command:", "", "```", data["command"], "```"]
    baseline = data.get("baseline")
    if baseline:
        lines += [
            "",
            f"Compared with a baseline from {baseline.get('created')}: ▲ better, ▼ worse by more "
            f"than {baseline['threshold']}; {baseline['improvements']} improvement(s), "
            f"{baseline['regressions']} regression(s).",
        ]
        if baseline.get("unmatched"):
            lines.append(f"Baseline configs not in this run: {', '.join(baseline['unmatched'])}.")
    header = ["config", *map(metric_label, names), "p50 ms", "p95 ms"]
    lines += ["", *_table_head(header, left=1)]
    for config in data["configs"]:
        deltas = config.get("baseline", {})
        cells = [f"`{config['name']}`"]
        cells += [_metric_cell(config.get(name), deltas.get(name)) for name in names]
        for name in ("latency_ms_p50", "latency_ms_p95"):
            cells.append(_latency_cell(config.get(name), deltas.get(name)))
        lines.append(_row(cells))
    others = [n for n in metric_names(data["ks"]) if n not in names]
    if others:
        lines += ["", "All metrics:", "", *_table_head(["config", *map(metric_label, others)], 1)]
        for config in data["configs"]:
            cells = [f"`{config['name']}`"] + [_number(config.get(n)) for n in others]
            lines.append(_row(cells))
    stages = stage_names(data)
    lines += ["", "## Latency per stage (ms, p50 / p95)", ""]
    lines += _table_head(["config", *stages], left=1)
    for config in data["configs"]:
        latency = config.get("latency_ms", {})
        cells = [f"`{config['name']}`"]
        for stage in stages:
            value = latency.get(stage)
            cells.append(f"{value['p50']:.1f} / {value['p95']:.1f}" if value else "–")
        lines.append(_row(cells))
    lines += ["", "## Index", ""]
    head = ["chunk tokens", "documents", "chunks", "build s", "size MB", "this run"]
    lines += _table_head(head, left=1)
    for build in data.get("indexes", []):
        tokens = build["chunk_tokens"] or "embedder limit"
        this_run = (
            f"reused ({build['check_seconds']:.1f} s check)"
            if build["reused"]
            else f"built, {build['embedded_chunks']} chunks embedded"
        )
        cells = [
            str(tokens),
            f"{build['documents']:,}",
            f"{build['chunks']:,}",
            f"{build['build_seconds']:.1f}",
            f"{build['bytes'] / 2**20:.1f}",
            this_run,
        ]
        lines.append(_row(cells))
        if build.get("failed"):
            lines.append(f"\n{len(build['failed'])} document(s) failed to index.")
    notes = list(data.get("notes", []))
    notes.append(
        "Rankings are documents (a document scores as its best chunk), cut at "
        f"{max(data['ks'])}; MAP is MAP@{max(data['ks'])}. Latency is the wall time of one "
        "`Index.search` call after a warm-up query; the machine is shared, so it is noisy."
    )
    lines += ["", "Notes:", "", *[f"- {note}" for note in notes], ""]
    return "\n".join(lines)


def stage_names(data: dict[str, Any]) -> list[str]:
    """Return the latency stages present in any config, pipeline order first, total last."""
    seen: list[str] = []
    for config in data["configs"]:
        for stage in config.get("latency_ms", {}):
            if stage not in seen:
                seen.append(stage)
    known = [s for s in STAGE_ORDER if s in seen]
    extra = [s for s in seen if s not in STAGE_ORDER and s != "total"]
    return known + extra + (["total"] if "total" in seen else [])


def plot_metrics(data: dict[str, Any], path: Path) -> Path:
    """Draw the headline metrics per configuration as grouped bars."""
    plt = pyplot()
    names = headline_metrics(data["ks"])
    configs = data["configs"]
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(configs) + 2), 4.2))
    for i, name in enumerate(names):
        xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(configs))]
        values = [c.get(name) or 0.0 for c in configs]
        bars = ax.bar(xs, values, width, label=metric_label(name))
        ax.bar_label(bars, fmt="%.2f", fontsize=6, padding=1)
    ax.set_xticks(range(len(configs)), [c["name"] for c in configs], rotation=15)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score")
    ax.set_title(f"{data['dataset']}: retrieval quality ({data['queries']} queries)")
    ax.legend(ncols=len(names), fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15))
    return save_figure(fig, path)


def plot_latency(data: dict[str, Any], path: Path) -> Path:
    """Draw each configuration's median latency per stage as stacked bars, total marked."""
    plt = pyplot()
    configs = data["configs"]
    stages = [s for s in stage_names(data) if s != "total"]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(configs) + 2), 4.2))
    xs = range(len(configs))
    bottom = [0.0] * len(configs)
    for stage in stages:
        values = [c.get("latency_ms", {}).get(stage, {}).get("p50", 0.0) for c in configs]
        ax.bar(xs, values, 0.6, bottom=bottom, label=stage)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    totals = [c.get("latency_ms_p50") or 0.0 for c in configs]
    ax.scatter(xs, totals, color="black", marker="_", s=600, zorder=3, label="total (p50)")
    for x, total in zip(xs, totals, strict=True):
        ax.annotate(f"{total:.1f}", (x, total), textcoords="offset points", xytext=(0, 4),
                    ha="center", fontsize=8)  # fmt: skip
    ax.set_xticks(list(xs), [c["name"] for c in configs], rotation=15)
    ax.set_ylabel("milliseconds per query (p50)")
    ax.set_title(f"{data['dataset']}: latency per stage")
    ax.legend(fontsize=8, ncols=4, loc="upper center", bbox_to_anchor=(0.5, -0.15))
    return save_figure(fig, path)


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "–"


def _metric_cell(value: Any, delta: dict[str, Any] | None) -> str:
    cell = _number(value)
    if delta is None:
        return cell
    mark = {"better": " ▲", "worse": " ▼"}.get(delta["change"], "")
    return f"{cell}{mark} ({delta['delta']:+.4f})"


def _latency_cell(value: Any, delta: dict[str, Any] | None) -> str:
    cell = f"{value:.1f}" if isinstance(value, int | float) else "–"
    return cell if delta is None else f"{cell} ({delta['delta']:+.1f})"


def _table_head(header: list[str], left: int) -> list[str]:
    align = [":---"] * left + ["---:"] * (len(header) - left)
    return [_row(header), _row(align)]


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"
