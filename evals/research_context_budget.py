"""How many context tokens does `rag ask` need? Gold passage in the packed sources per budget.

For every answerable question of a QA set, runs the real retrieval → compression → packing of
`rag.ask.Asker` (no generation) at several context budgets, counted with the generator's own
tokenizer, and prints how often the gold passage is among the sources the model would read,
and how often a gold answer string is in their text, with the mean tokens and sources packed. Prefill time is proportional to those tokens, so this
picks the smallest budget that keeps the evidence:

    HF_HUB_OFFLINE=1 .venv/bin/python evals/research_context_budget.py \\
        ../shared/datasets/squad2-dev-a --questions sample_350.jsonl --budgets 600 1000 1500
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from rag.ask import Asker
from rag.eval.answers import load_questions
from rag.eval.cache import open_cached_index
from rag.pipeline import load_chat_model
from rag.settings import AnswerSettings, Settings, load_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--questions", default=None, help="questions file in the folder")
    parser.add_argument("--budgets", type=int, nargs="+", default=[600, 1000, 1500])
    parser.add_argument("--candidates", type=int, default=AnswerSettings().candidates)
    parser.add_argument(
        "--preset", default=None, help="settings preset (its model's tokenizer counts)"
    )
    parser.add_argument("--cache-dir", default=None, help="eval index cache (as rag eval)")
    parser.add_argument(
        "--compare-compression",
        action="store_true",
        help="also pack whole passages (compression off) at each budget",
    )
    args = parser.parse_args()

    _, corpus, questions = load_questions(args.dataset, args.questions)
    cached = open_cached_index(corpus, Settings(), cache_dir=args.cache_dir)
    all_settings = load_settings(preset=args.preset).settings
    generator = load_chat_model(all_settings)
    answerable = [q for q in questions if not q.is_impossible]
    print(
        f"{args.dataset.name}: {len(answerable)} answerable questions, "
        f"{args.candidates} candidates, model {generator.name}"
    )
    print(
        "| context budget | compression | gold passage in sources | gold answer in sources "
        "| mean tokens packed | mean sources |"
    )
    print("|---|---|---|---|---|---|")
    modes = (True, False) if args.compare_compression else (True,)
    for budget, compress in [(b, c) for b in args.budgets for c in modes]:
        settings = replace(all_settings.answer, context_tokens=budget,
                           candidates=args.candidates, compress=compress)  # fmt: skip
        asker = Asker(cached.index.retriever, generator, settings)
        found = answer_found = tokens = sources = 0
        for q in answerable:
            hits = asker.retriever.search(q.question, k=settings.candidates, mode="hybrid")
            packed, used, _ = asker.build_sources(q.question, hits, settings)
            docs = {cached.doc_id(s.path) for s in packed}
            found += any(d in q.gold_doc_ids for d in docs)
            text = " ".join(s.text for s in packed).lower()
            answer_found += any(a.lower() in text for a in q.answers)
            tokens += used
            sources += len(packed)
        n = len(answerable)
        print(
            f"| {budget} | {'on' if compress else 'off'} | {found / n:.3f} "
            f"| {answer_found / n:.3f} | {tokens / n:.0f} | {sources / n:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
