"""How many word pieces an ingest of SciFact embeds with the title on every chunk or the first
only (`chunk.repeat_heading`), and with 15 % overlap or none (`chunk.overlap`): counts only,
no model is run, so the figures are exact on any machine.

    .venv/bin/python evals/count_embedded_tokens.py              # all 5,183 abstracts
    .venv/bin/python evals/count_embedded_tokens.py --docs 200   # a quick look

Chunks are cut exactly as `rag ingest` cuts them (jsonl record → "# title" heading → chunks
of at most the embedder's limit); a chunk costs its word pieces plus [CLS] and [SEP]. The
lines after the table are the `rag eval retrieval` commands that measure SciFact nDCG@10 of
each variant (each builds its own cached index; the first is today's settings).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "datasets" / "scifact"
VARIANTS = (  # (label, repeat_heading, overlap)
    ("title on every chunk, 15 % overlap (today)", True, 0.15),
    ("title on every chunk, no overlap", True, 0.0),
    ("title on first chunk, 15 % overlap", False, 0.15),
    ("title on first chunk, no overlap", False, 0.0),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=SCIFACT, help="a BEIR folder")
    parser.add_argument("--docs", type=int, default=0, help="only the first N documents")
    opts = parser.parse_args()

    from rag.chunking import chunk_document
    from rag.embed.sentence_transformers import WordPieceCounter, read_info, resolve_embedder
    from rag.loaders import Record, record_document

    folder = resolve_embedder()
    counter = WordPieceCounter(folder / "tokenizer.json")
    max_tokens = read_info(folder).max_tokens
    documents = []
    with (opts.dataset / "corpus.jsonl").open() as handle:
        for number, line in enumerate(handle, start=1):
            if opts.docs and number > opts.docs:
                break
            row = json.loads(line)
            record = Record(f"corpus#{row['_id']}", line.encode(), row.get("title") or "",
                            row["text"], number)  # fmt: skip
            documents.append(record_document(record))
    rows = []
    for label, repeat, overlap in VARIANTS:
        texts = [chunk.embed_text for doc in documents
                 for chunk in chunk_document(doc, counter, max_tokens, overlap, repeat)]  # fmt: skip
        pieces = sum(counter.count_many(texts)) + 2 * len(texts)
        rows.append((label, len(texts), pieces))
    today = rows[0][2]
    print(f"{len(documents):,} documents, chunks of at most {max_tokens} word pieces")
    print(f"{'variant':44s} | {'chunks':>7s} | {'word pieces':>11s} | vs today")
    for label, chunks, pieces in rows:
        print(f"{label:44s} | {chunks:7,d} | {pieces:11,d} | {pieces / today - 1:+7.1%}")
    docs = f" --docs {opts.docs}" if opts.docs else ""
    dataset = os.path.relpath(opts.dataset, ROOT)  # as typed from the repository root
    print(f"\ncommand: .venv/bin/python evals/count_embedded_tokens.py{docs}")
    print("nDCG@10 of each (dense and hybrid modes; compare report.md's tables):")
    for _, repeat, overlap in VARIANTS:
        name = f"scifact-title-{'every' if repeat else 'first'}-overlap-{int(overlap * 100)}"
        sets = f" --set chunk.overlap={overlap}" + ("" if repeat else
                                                    " --set chunk.repeat_heading=false")  # fmt: skip
        print(f"  rag eval retrieval {dataset} --mode dense --mode hybrid{sets} "
              f"--out /tmp/{name}")  # fmt: skip


if __name__ == "__main__":
    main()
