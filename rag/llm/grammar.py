"""Constrained output: turn an OpenAI-style `response_format` into a llama.cpp grammar."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rag.errors import ConfigError


def response_schema(response_format: Mapping[str, Any]) -> dict | None:
    """Return the JSON schema a `response_format` asks for (None: any JSON object).

    Takes `{"type": "json_object", "schema": {...}}` (llama.cpp's and llama-cpp-python's
    server shape) and `{"type": "json_schema", "json_schema": {"schema": {...}}}` (OpenAI's).
    """
    kind = response_format.get("type")
    if kind == "json_object":
        return response_format.get("schema")
    if kind == "json_schema":
        return (response_format.get("json_schema") or {}).get("schema")
    raise ConfigError(f"response_format type must be 'json_object' or 'json_schema', got {kind!r}")


class GrammarCache:
    """Compiled grammars by schema: building one costs more than a short decode."""

    def __init__(self) -> None:
        self._grammars: dict[str, Any] = {}

    def get(self, response_format: Mapping[str, Any]) -> Any:
        """Return the cached llama.cpp grammar for `response_format`."""
        from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

        schema = response_schema(response_format)
        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            if schema is None:
                self._grammars[key] = LlamaGrammar.from_string(JSON_GBNF, verbose=False)
            else:  # properties keep their order: the model writes them in schema order
                text = json.dumps(schema)
                self._grammars[key] = LlamaGrammar.from_json_schema(text, verbose=False)
        return self._grammars[key]
