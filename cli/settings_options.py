"""Options and a loader for commands that read `rag.settings` (preset, config file, --set).

A command declares the options and calls `load_cli_settings` with its own flags as dotted
overrides; flags left at None do not override anything:

    def search(..., preset: PresetOption = None, config: ConfigOption = None,
               fusion: Annotated[str | None, typer.Option()] = None, sets: SetOption = None):
        loaded = load_cli_settings(preset, config, {"retrieval.fusion": fusion}, sets)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rag_cli.output import USAGE_EXIT, error

if TYPE_CHECKING:
    from rag.settings import LoadedSettings

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="Settings file (TOML). Default: $RAG_HOME/config.toml when it exists.",
        show_default=False,
        dir_okay=False,
    ),
]
PresetOption = Annotated[
    str | None,
    typer.Option(
        "--preset",
        help="Settings preset: default, fast, tiny, or your own $RAG_HOME/presets/NAME.toml. "
        "Default: the config file's `preset`, else $RAG_PRESET, else default.",
        show_default=False,
    ),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override one setting, e.g. --set retrieval.dense_weight=0.7; repeatable.",
        show_default=False,
    ),
]


def parse_sets(sets: list[str] | None) -> dict[str, str]:
    """Turn ["section.key=value", ...] into {"section.key": "value"}."""
    from rag.errors import ConfigError

    parsed: dict[str, str] = {}
    for item in sets or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r} must look like section.key=value")
        parsed[key.strip()] = value
    return parsed


def load_cli_settings(
    preset: str | None,
    config: Path | None,
    overrides: Mapping[str, Any] | None = None,
    sets: list[str] | None = None,
) -> LoadedSettings:
    """Load the layered settings for a command; a config error prints one line and exits 2.

    `overrides` maps dotted keys to flag values; None values (flags not given) are dropped.
    `--set` values come first, so a dedicated flag given too wins over them.
    """
    from rag.errors import ConfigError
    from rag.settings import load_settings

    try:
        flags: dict[str, Any] = parse_sets(sets)
        flags.update({k: v for k, v in (overrides or {}).items() if v is not None})
        return load_settings(preset=preset, config=config, overrides=flags)
    except ConfigError as exc:
        error(str(exc))
        raise typer.Exit(USAGE_EXIT) from None
