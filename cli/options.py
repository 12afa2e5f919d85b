"""Options that several commands share, defined once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

INDEX_HELP = (
    "Index: a name (letters, digits, . _ -) is a named index in $RAG_HOME/indexes/NAME "
    "('rag indexes' lists them; 'default' is the default one), anything with a / is a folder "
    "(./idx, ~/idx). A bare name that is an index folder here still means that folder, with a "
    "note: write ./NAME for it. Default: $RAG_HOME/index, else the platform's user data dir."
)


def index_value(value: str) -> Path:
    """Parse one `--index` value into its directory (rag.collections.resolve_index); a
    notice goes to stderr, an invalid name is a usage error."""
    from rag.collections import resolve_index
    from rag.errors import ConfigError
    from rag_cli.output import err

    try:
        return resolve_index(value, note=lambda text: err.print(text, markup=False))
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from None


IndexOption = Annotated[
    Path | None,
    typer.Option(
        "--index", parser=index_value, metavar="NAME|PATH", help=INDEX_HELP, show_default=False
    ),
]
IndexesOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--index",
        parser=index_value,
        metavar="NAME|PATH",
        help=f"{INDEX_HELP} Repeat it to search several indexes as one (--index docs --index "
        "mail): the results are merged, and each says which collection it came from.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
DebugOption = Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")]
RerankerOption = Annotated[
    str | None,
    typer.Option(
        "--reranker",
        help="Rerank the fused candidates: 'sentence' (best-sentence similarity, helps Q&A "
        "style text) or the path of a local cross-encoder folder. Default: none.",
        show_default=False,
    ),
]
FusionOption = Annotated[
    str | None,
    typer.Option(
        help="How BM25 and dense results are fused: zscore (default), rrf or minmax.",
        show_default=False,
    ),
]
LlmUrlOption = Annotated[
    str | None,
    typer.Option(
        "--llm-url",
        help="Answer with the model behind this OpenAI-compatible server (llama.cpp server, "
        "vLLM, Ollama…), e.g. http://127.0.0.1:8080/v1, instead of a local GGUF. API key: "
        "the RAG_LLM_API_KEY environment variable. Default: llm.url (RAG_LLM_URL).",
        show_default=False,
    ),
]
LlmModelOption = Annotated[
    str | None,
    typer.Option(
        "--llm-model",
        help="With --llm-url: the server's model id. Default: the server's only model.",
        show_default=False,
    ),
]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="The chat model: a packaged one (default, fast, tiny) or any local GGUF file. "
        "Default: the preset's.",
        show_default=False,
    ),
]
StrictOption = Annotated[
    bool | None,
    typer.Option(
        "--strict/--no-strict",
        help="Drop answer sentences that their sources do not support.",
        show_default=False,
    ),
]
QuotesOption = Annotated[
    bool,
    typer.Option(
        "--quotes",
        help="Show each cited source's supporting quotes in full with their support score, "
        "and every passage read but not cited on its own line (folded into one by default).",
    ),
]
