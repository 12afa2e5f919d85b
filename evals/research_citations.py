"""Citation repair with and without the question, post hoc on a finished `rag eval answers` run.

For every answered question, rebuilds the exact sources the model read (the same retrieval,
compression and packing as `rag ask`, counted with the generator's tokenizer; nothing is
generated), re-checks the model's raw answer with `CitationChecker.check(answer, sources)` and
with `check(answer, sources, question)`, and prints the citation precision and recall of each
(the cited passage is the gold one):

    HF_HUB_OFFLINE=1 RAG_HOME=/tmp/evalhome .venv/bin/python evals/research_citations.py \\
        ../shared/datasets/squad2-dev-a --questions sample_350.jsonl \\
        --run evals/results/squad2-dev-a-answers-json/answers.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rag.ask import Asker
from rag.cite import CitationChecker, SourceText
from rag.eval.answers import load_questions
from rag.eval.cache import open_cached_index
from rag.pipeline import load_chat_model
from rag.settings import Settings, load_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--questions", default=None)
    parser.add_argument("--run", type=Path, required=True, help="answers.jsonl of the run")
    parser.add_argument("--preset", default=None, help="the run's settings preset")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()

    _, corpus, questions = load_questions(args.dataset, args.questions)
    gold = {q.id: set(q.gold_doc_ids) for q in questions}
    cached = open_cached_index(corpus, Settings(), cache_dir=args.cache_dir)
    all_settings = load_settings(preset=args.preset).settings
    settings = all_settings.answer
    asker = Asker(cached.index.retriever, load_chat_model(all_settings), settings)
    checker = CitationChecker(
        cached.index.retriever.embedder, settings.support_threshold, settings.claim_margin
    )
    rows = [json.loads(line) for line in args.run.read_text().splitlines() if line.strip()]
    tally = {"without": [0, 0, 0], "with question": [0, 0, 0]}  # right, cited, any right
    answered = 0
    for row in rows:
        if row["id"] not in gold or row["abstained"] or row["is_impossible"]:
            continue
        answered += 1
        hits = asker.retriever.search(row["question"], k=settings.candidates, mode="hybrid")
        sources = asker.build_sources(row["question"], hits, settings)[0]
        texts = [SourceText(s.n, s.text) for s in sources]
        for name, question in (("without", None), ("with question", row["question"])):
            checked = checker.check(row["raw_answer"], texts, question)
            docs = {cached.doc_id(sources[n - 1].path) for s in checked for n in s.citations}
            tally[name][0] += len(docs & gold[row["id"]])
            tally[name][1] += len(docs)
            tally[name][2] += bool(docs & gold[row["id"]])
    print(f"{args.run}: {answered} answered answerable questions")
    print("| citation repair | citation precision | citation recall |")
    print("|---|---:|---:|")
    for name, (right, cited, any_right) in tally.items():
        print(f"| {name} | {right / max(cited, 1):.3f} | {any_right / max(answered, 1):.3f} |")


if __name__ == "__main__":
    main()
