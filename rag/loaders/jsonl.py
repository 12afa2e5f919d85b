"""JSON-lines collections (BEIR corpus.jsonl and similar): one document per line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from rag.errors import LoaderError
from rag.loaders.base import Document, Part
from rag.loaders.text import markdown_blocks


@dataclass(frozen=True)
class Record:
    """One document inside a .jsonl collection: `{"_id"|"id", "title"?, "text"}`."""

    key: str
    raw: bytes
    title: str
    text: str
    line: int = 0  # 1-based line number in the collection file


def iter_jsonl_records(path: Path, key_prefix: str) -> Iterator[Record | LoaderError]:
    """Yield each line of a JSON-lines corpus as a Record, or a LoaderError naming the line.

    Raises LoaderError when the first line is not a document: the file is not a collection.
    """
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            where = f"{key_prefix} line {number}"
            try:
                obj = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                yield LoaderError(where, f"invalid JSON ({exc})")
                continue
            if not isinstance(obj, dict) or "text" not in obj:
                problem = 'expected an object with "_id" (or "id") and "text"'
                if number == 1:
                    raise LoaderError(where, f"not a document collection: {problem} on every line")
                yield LoaderError(where, problem)
                continue
            doc_id = obj.get("_id", obj.get("id"))
            if doc_id is None:
                yield LoaderError(where, 'missing "_id" (or "id")')
                continue
            yield Record(f"{key_prefix}#{doc_id}", raw, str(obj.get("title") or ""),
                         str(obj["text"]), number)  # fmt: skip


def record_document(record: Record) -> Document:
    """Turn a jsonl record into a markdown-like document whose title is the heading.

    Raises LoaderError when the id, title or text is not valid Unicode (JSON allows unpaired
    `\\ud800`-style surrogate escapes, which no text index can store).
    """
    fields = (("_id (or the file name)", record.key), ("title", record.title),
              ("text", record.text))  # fmt: skip
    for name, value in fields:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            bad = value[exc.start : exc.end].encode("unicode_escape").decode("ascii")
            raise LoaderError(
                record.key,
                f"{name} holds an unpaired UTF-16 surrogate ({bad}), which is not "
                "valid Unicode text; fix or remove that \\u escape",
            ) from None
    text = f"# {record.title}\n\n{record.text}\n" if record.title else record.text
    blocks = markdown_blocks(text)
    if not blocks:
        raise LoaderError(record.key, "record has no text")
    return Document(key=record.key, kind="jsonl", text=text, blocks=blocks)


def iter_jsonl_parts(path: Path, key_prefix: str) -> Iterator[Part | LoaderError]:
    """Yield each record of a JSON-lines corpus as a Part (see `iter_jsonl_records`)."""
    for record in iter_jsonl_records(path, key_prefix):
        if isinstance(record, LoaderError):
            yield record
        else:
            where = f"{key_prefix} line {record.line}"
            yield Part(record.key, record.raw, where, partial(record_document, record))
