"""`rag models …`: the packaged GGUF generators, whether they are installed, where they are."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from rag_cli.options import DebugOption, JsonOption
from rag_cli.output import out, print_json, run_command

if TYPE_CHECKING:
    from rag.models import PresetStatus

MODELS_HELP = (
    "List the packaged GGUF generators (default, fast, tiny) and print a model's file path, "
    'e.g. to serve it: python -m llama_cpp.server --model "$(rag models path fast)"'
)

models_app = typer.Typer(
    help=MODELS_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@models_app.callback()
def _group() -> None:
    """List the packaged generators and print their file paths."""


@models_app.command("list")
def list_models(as_json: JsonOption = False, debug: DebugOption = False) -> None:
    """Print each packaged generator: what it is, whether it is installed, where its file is.

    Instant: nothing is assembled or hashed. A split model shows "not assembled" until its
    first use (or `rag models path NAME`) joins its packages into the cache.

    Example:  rag models list --json
    """
    from rag.models import PRESETS, model_cache_dir, preset_status

    def work() -> int:
        statuses = [preset_status(p) for p in PRESETS.values()]
        if as_json:
            print_json({
                "cache_dir": str(model_cache_dir()),
                "presets": [s.to_dict() for s in statuses],
            })  # fmt: skip
            return 0
        from rich.markup import escape

        width = max(len(name) for name in PRESETS)
        for s in statuses:
            state, detail = _describe(s)
            out.print(
                f"[bold]{s.preset.name:<{width}}[/]  {state}  "
                f"{escape(s.preset.description)} · {detail}",
                markup=True,
            )
        return 0

    raise typer.Exit(run_command(work, debug))


def _describe(status: PresetStatus) -> tuple[str, str]:
    """The state column and what follows it (a path, a command or a problem), as markup."""
    from rich.markup import escape

    if status.state == "ready":
        return "[green]ready        [/]", escape(str(status.path))
    if status.state == "not assembled":
        return "[yellow]not assembled[/]", (
            f"installed; `rag models path {status.preset.name}` joins its packages into the cache"
        )
    if status.state == "not installed":
        total = len(status.preset.packages)
        return "[red]not installed[/]", (
            f"{len(status.missing)} of {total} package(s) missing; install with: "
            f"{escape(status.install or '')}"
        )
    return "[red]broken       [/]", escape(status.problem or "")


@models_app.command()
def path(
    name: Annotated[str, typer.Argument(help="A packaged generator: default, fast or tiny.")],
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Print only the GGUF file of a packaged generator, assembling a split one on first use.

    Errors go to stderr: exit 2 for an unknown name, 1 when its packages are missing or
    its file fails verification (the message gives the pip command that fixes it).

    Example:  python -m llama_cpp.server --model "$(rag models path fast)" --port 8080
    """
    from rag.models import resolve_model

    def work() -> int:
        file = resolve_model(preset=name)
        if as_json:
            print_json({"name": name, "path": str(file)})
        else:
            typer.echo(str(file))  # exactly the path: no markup, emoji codes or wrapping
        return 0

    raise typer.Exit(run_command(work, debug))
