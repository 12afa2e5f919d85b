"""Write an answer eval's report: report.json, report.md (tables) and curve.png."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rag.eval.report_files import ReportFiles, pyplot, save_figure, write_json, write_text

HEADLINE = (
    ("exact_match", "exact match"),
    ("f1", "token F1"),
    ("gold_contained", "gold answer contained"),
    ("answered_rate", "answerable questions answered"),
    ("abstain_precision", "abstention precision"),
    ("abstain_recall", "abstention recall (unanswerable)"),
    ("citation_precision", "citation precision (cited passage is gold)"),
    ("citation_recall", "citation recall (an answer cites a gold passage)"),
    ("support_rate", "answer sentences supported by their citation"),
    ("gold_in_sources", "gold passage among the sources read"),
)


def write_answers_report(data: dict[str, Any], out_dir: Path, command: str = "") -> ReportFiles:
    """Write report.json, report.md and curve.png for one `rag eval answers` run."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(json=out_dir / "report.json", markdown=out_dir / "report.md")
    write_json(files.json, data)
    write_text(files.markdown, render_answers_markdown(data, command))
    try:
        files.charts.append(plot_trade_off(data, out_dir / "curve.png"))
    except ImportError:
        files.warnings.append("chart skipped: matplotlib is not installed (pip install matplotlib)")
    return files


def render_answers_markdown(data: dict[str, Any], command: str = "") -> str:
    """Headline metrics, cost, and the abstention trade-off tables."""
    settings = data.get("settings", {})
    lines = [
        f"# Answers: {data['dataset']}",
        "",
        f"{data['questions']} questions ({data['answerable']} answerable, "
        f"{data['unanswerable']} unanswerable), model `{settings.get('model', '?')}`, "
        f"evidence threshold {data['threshold']}, minimum support {data.get('min_support', 0)}, "
        f"minimum P(found) {data.get('min_found', 0)}.",
    ]
    if command:
        lines += ["", "Made with:", "", "```sh", command, "```"]
    lines += ["", "| metric | value |", "|:---|---:|"]
    lines += [f"| {label} | {data[key]:.3f} |" for key, label in HEADLINE if key in data]
    lines += [
        f"| completion tokens (mean) | {data['completion_tokens_mean']:.1f} |",
        f"| seconds per question (mean) | {data['seconds_mean']:.2f} |",
        f"| time to first token (p50, s) | {data['ttft_s_p50']:.2f} |",
    ]
    for title, key, column in (
        ("Evidence threshold (best dense similarity of the retrieved passages)", "curve",
         "threshold"),
        ("Minimum support of the best answer sentence, at the evidence threshold above",
         "support_curve", "min_support"),
        ("Minimum P(found): the model's probability that the sources answer the question "
         "(structured answers)", "found_curve", "min_found"),
    ):  # fmt: skip
        rows = data.get(key) or []
        if not rows:
            continue
        lines += ["", f"## {title}", "",
                  f"| {column} | abstain precision | abstain recall | answerable answered "
                  "| gold answer contained |", "|---:|---:|---:|---:|---:|"]  # fmt: skip
        lines += [
            f"| {r[column]:.4g} | {r['abstain_precision']:.3f} | {r['abstain_recall']:.3f} "
            f"| {r['answerable_recall']:.3f} | {r.get('gold_contained', 0):.3f} |"
            for r in rows
        ]
    return "\n".join(lines) + "\n"


def plot_trade_off(data: dict[str, Any], path: Path) -> Path:
    """Abstention recall against answerable questions answered, one point per threshold."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for key, label in (
        ("curve", "evidence threshold"),
        ("support_curve", "minimum support"),
        ("found_curve", "minimum P(found)"),
    ):
        rows = data.get(key) or []
        ax.plot([r["answerable_recall"] for r in rows], [r["abstain_recall"] for r in rows],
                marker="o", markersize=3, label=label)  # fmt: skip
    ax.set_xlabel("answerable questions answered")
    ax.set_ylabel("unanswerable questions abstained on")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(f"{data['dataset']}: abstention trade-off")
    ax.legend(fontsize=8)
    return save_figure(fig, path)
