"""`rag mcp`: serve an index to an AI assistant or coding agent over MCP on stdio."""

from __future__ import annotations

import typer

from rag_cli.options import DebugOption, IndexOption
from rag_cli.output import USAGE_EXIT, err, error, run_command
from rag_cli.settings_options import ConfigOption, PresetOption, SetOption, load_cli_settings


def mcp(
    index: IndexOption = None,
    preset: PresetOption = None,
    config: ConfigOption = None,
    sets: SetOption = None,
    debug: DebugOption = False,
) -> None:
    """Serve the index to an AI assistant or coding agent over MCP (stdio).

    Two tools: search (passages with their file, page and character span) and ask (an
    answer with checked \\[n] citations, or "Not found in your documents."). Only MCP
    messages go to stdout; logs go to stderr. Runs until the client closes stdin.
    Exit code 2 when the index does not exist (run `rag ingest` first).

    A desktop assistant (e.g. Claude Desktop's claude_desktop_config.json; Cursor's
    .cursor/mcp.json) starts it from a config entry; use absolute paths (`which rag`):

    {"mcpServers": {"rag": {"command": "/path/to/rag",
      "args": ["mcp", "--index", "/path/to/index", "--preset", "default"]}}}

    A coding agent, e.g. Claude Code:  claude mcp add rag -- rag mcp --index ~/rag-index

    Assistants start it with few environment variables, so give --index (and --config)
    rather than relying on RAG_HOME, or add "env": {"RAG_HOME": "/path/to/home"}.
    `rag serve` offers the same tools over HTTP at http://HOST:PORT/mcp.

    Example:  rag mcp --index ~/rag-index --preset fast
    """
    from rag.index import Index

    def work() -> int:
        try:
            from rag.serve.mcp import run_stdio
        except ModuleNotFoundError as exc:
            if (exc.name or "").partition(".")[0] != "mcp":
                raise
            error("rag mcp needs the MCP SDK: pip install 'mcp>=2.3,<3'")
            return USAGE_EXIT
        loaded = load_cli_settings(preset, config, None, sets)
        idx = Index(index, settings=loaded.settings)
        try:
            stats = idx.status()  # fail now, not on the first tool call, when there is no index
            err.print(f"rag mcp: serving {idx.path} ({stats.documents} documents) over stdio")
            run_stdio(idx)
        finally:
            idx.close()
        return 0

    raise typer.Exit(run_command(work, debug))
