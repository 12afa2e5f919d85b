"""Options that several commands share, defined once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

IndexOption = Annotated[
    Path | None,
    typer.Option(
        "--index",
        help="Index directory. Default: $RAG_HOME/index, else the platform's user data dir.",
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
    str,
    typer.Option(help="How BM25 and dense results are fused: zscore, rrf or minmax."),
]
