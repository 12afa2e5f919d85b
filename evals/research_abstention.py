"""Which signal tells an unanswerable question from an answerable one? Post-hoc, on a finished
`rag eval answers` run.

For every question the run answered, re-runs the same retrieval (no generation) and measures:

- `found_p`: the model's P(found=true) at the start of its structured reply (recorded by the run);
- `evidence`: the best dense similarity of the retrieved passages (recorded by the run);
- `q_cover`: the share of the question's content words found around the answer in its cited
  passage (the sentence holding the answer and its neighbours). SQuAD 2.0's unanswerable
  questions are written against the paragraph with one detail changed (a swapped entity, a
  negation), so that detail is often missing next to the plausible answer.

For each signal it prints the ROC AUC (answerable vs unanswerable) and the trade-off: the
share of unanswerable questions abstained on at the thresholds that keep 0.95 / 0.9 / 0.8 of
the answerable ones answered. Usage:

    HF_HUB_OFFLINE=1 RAG_HOME=/tmp/evalhome .venv/bin/python evals/research_abstention.py \\
        ../shared/datasets/squad2-dev-a --questions sample_350.jsonl \\
        --run evals/results/squad2-dev-a-answers-json/answers.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rag.cite import CITATION
from rag.eval.answers import load_questions
from rag.eval.cache import open_cached_index
from rag.settings import AnswerSettings, Settings
from rag.text.sentences import split_sentences
from rag.text.words import content_words


def question_cover(question: str, answer: str, passages: list[str], window: int = 1) -> float:
    """Share of the question's content words in the sentences around `answer` (best passage)."""
    wanted = set(content_words(question)) - set(content_words(answer))
    if not wanted:
        return 1.0
    needle = answer.lower().strip(" .")
    best = 0.0
    for text in passages:
        spans = split_sentences(text)
        sentences = [text[s:e] for s, e in spans]
        holding = [i for i, s in enumerate(sentences) if needle and needle in s.lower()]
        for i in holding or range(len(sentences)):
            near = " ".join(sentences[max(0, i - window) : i + window + 1])
            words = set(content_words(near))
            best = max(best, len(wanted & words) / len(wanted))
    return best


def auc(positive: list[float], negative: list[float]) -> float:
    """P(a random answerable question scores above a random unanswerable one); ties count 1/2."""
    if not positive or not negative:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in positive for n in negative)
    return wins / (len(positive) * len(negative))


def trade_off(answerable: list[float], impossible: list[float], keep: float) -> tuple[float, float]:
    """The threshold that keeps `keep` of answerable answered, and the abstention recall there."""
    ranked = sorted(answerable)
    cut = ranked[int(round((1 - keep) * len(ranked)))] if ranked else 0.0
    return cut, sum(v < cut for v in impossible) / len(impossible) if impossible else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--questions", default=None)
    parser.add_argument("--run", type=Path, required=True, help="answers.jsonl of the run")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()

    _, corpus, questions = load_questions(args.dataset, args.questions)
    by_id = {q.id: q for q in questions}
    cached = open_cached_index(corpus, Settings(), cache_dir=args.cache_dir)
    retriever = cached.index.retriever
    rows = [json.loads(line) for line in args.run.read_text().splitlines() if line.strip()]
    features: list[dict[str, float | bool]] = []
    for row in rows:
        if row["id"] not in by_id or row["abstained"]:
            continue
        answer = CITATION.sub("", row["answer"]).strip()
        hits = retriever.search(row["question"], k=AnswerSettings().candidates, mode="hybrid")
        cited = [h.text for h in hits if cached.doc_id(h.path) in row["cited_docs"]]
        features.append(
            {
                "impossible": row["is_impossible"],
                "found_p": row.get("found_p") if row.get("found_p") is not None else 1.0,
                "evidence": row["evidence"],
                "q_cover": question_cover(row["question"], answer, cited or [h.text for h in hits]),
            }
        )
    names = ["found_p", "evidence", "q_cover"]
    answerable = [f for f in features if not f["impossible"]]
    impossible = [f for f in features if f["impossible"]]
    print(f"{args.run}: {len(answerable)} answerable and {len(impossible)} unanswerable answered")
    print("| signal | AUC | recall @ 0.95 answered | @ 0.9 | @ 0.8 |")
    print("|---|---:|---:|---:|---:|")
    for name in names:
        pos = [float(f[name]) for f in answerable]
        neg = [float(f[name]) for f in impossible]
        cells = [trade_off(pos, neg, keep) for keep in (0.95, 0.9, 0.8)]
        print(f"| {name} | {auc(pos, neg):.3f} | "
              + " | ".join(f"{r:.2f} (≥{c:.4g})" for c, r in cells) + " |")  # fmt: skip


if __name__ == "__main__":
    main()
