"""`rag config …`: show the effective settings and where each came from; where files live."""

from __future__ import annotations

from typing import Any

import typer

from rag_cli.options import DebugOption, JsonOption
from rag_cli.output import out, print_json, run_command
from rag_cli.settings_options import ConfigOption, PresetOption, SetOption, parse_sets

CONFIG_HELP = (
    "Show the effective settings (defaults < preset < config file < RAG_* environment "
    "variables < flags) and where each value came from."
)

config_app = typer.Typer(
    help=CONFIG_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@config_app.callback()
def _group() -> None:
    """Show the effective settings and where each came from."""


@config_app.command()
def show(
    preset: PresetOption = None,
    config: ConfigOption = None,
    sets: SetOption = None,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Print every effective setting, grouped by section, with where its value came from.

    Sources: default, the preset, the config file, an env var (RAG_<SECTION>_<KEY>) or a flag.
    An unknown key or a bad value anywhere exits 2 naming it and where it was set.

    Example:  RAG_RETRIEVAL_DENSE_WEIGHT=0.7 rag config show --preset fast
    """
    from rag.settings import load_settings

    def work() -> int:
        loaded = load_settings(preset=preset, config=config, overrides=parse_sets(sets))
        if as_json:
            print_json(loaded.to_dict())
            return 0
        _print_table(loaded)
        return 0

    raise typer.Exit(run_command(work, debug))


def _print_table(loaded: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    out.print(
        f"preset [bold]{escape(loaded.preset)}[/] [dim](from {escape(loaded.preset_source)})[/]"
        f" · config file [bold]{escape(str(loaded.config) if loaded.config else 'none')}[/]",
        markup=True,
    )
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("setting")
    table.add_column("value")
    table.add_column("source")
    for section, values in loaded.settings.to_dict().items():
        table.add_row(f"[bold cyan]\\[{section}][/]", "", "")
        names = list(values)
        for i, (name, value) in enumerate(values.items()):
            source = loaded.sources[f"{section}.{name}"]
            style = "dim" if source == "default" else "yellow"
            table.add_row(
                f"  {name}",
                escape(_format(value)),
                f"[{style}]{escape(source)}[/]",
                end_section=i == len(names) - 1,
            )
    out.print(table)


def _format(value: Any) -> str:
    """A value as it would be written in a TOML file or an env var."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@config_app.command()
def path(as_json: JsonOption = False, debug: DebugOption = False) -> None:
    """Print where the config file and your own presets live, and the presets there are."""
    from rag.settings import available_presets, config_path, preset_dir

    def work() -> int:
        file, folder = config_path(), preset_dir()
        presets = {
            name: {"path": str(p), "bundled": bundled}
            for name, (p, bundled) in available_presets().items()
        }
        if as_json:
            print_json({
                "config": str(file), "config_exists": file.is_file(),
                "presets_dir": str(folder), "presets": presets,
            })  # fmt: skip
            return 0
        out.print(f"config file  {file}{'' if file.is_file() else '  (not created yet)'}")
        out.print(f"presets dir  {folder}{'' if folder.is_dir() else '  (not created yet)'}")
        for name, info in presets.items():
            where = "bundled" if info["bundled"] else info["path"]
            out.print(f"  preset {name:<10} {where}")
        return 0

    raise typer.Exit(run_command(work, debug))
