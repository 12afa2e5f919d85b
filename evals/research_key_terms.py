"""What the key-term rule of the citation check does, without a generator.

For SQuAD 2.0 answerable questions, the gold paragraph is the one source and two answers are
checked against it with the question:

- right: the question's own gold answer (must stay supported);
- wrong row: the gold answer of *another* question on the same paragraph — a value that does
  occur in the source but does not answer this question, the misattribution the issue reports
  (the check should reject it).

Both are scored with the key-term rule on (today) and off (`KEY_TERM_PENALTY = 1`, the check
before it), with the embedder the pipeline uses. Answers are checked as the short phrases the
JSON prompt makes the model write, and as "The answer is …" sentences.

    HF_HUB_OFFLINE=1 python evals/research_key_terms.py ../shared/datasets/squad2-dev-a --limit 600
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

import rag.cite as cite
from rag.cite import CitationChecker, SourceText, strip_citations
from rag.embed import SentenceTransformerEmbedder
from rag.text.sentences import sentences_or_whole


class CachedEmbedder:
    """The embedder, with every text this run checks encoded once, in large batches."""

    def __init__(self, texts: list[str]) -> None:
        self.model = SentenceTransformerEmbedder()
        unique = list(dict.fromkeys(texts))
        self.vectors = dict(zip(unique, self.model.encode(unique), strict=True))

    def encode(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.vectors]
        if missing:  # answers the checker split differently
            self.vectors.update(zip(missing, self.model.encode(missing), strict=True))
        return np.stack([self.vectors[t] for t in texts])


def load(dataset: Path, limit: int) -> tuple[dict[str, str], list[dict]]:
    corpus = {}
    with (dataset / "corpus.jsonl").open() as f:
        for line in f:
            row = json.loads(line)
            corpus[row["_id"]] = row["text"]
    questions = []
    with (dataset / "questions.jsonl").open() as f:
        for line in f:
            row = json.loads(line)
            if not row["is_impossible"] and row["answers"]:
                questions.append(row)
            if len(questions) >= limit:
                break
    return corpus, questions


def pairs(questions: list[dict]) -> list[tuple[dict, str, str]]:
    """(question, its answer, another question's answer on the same paragraph)."""
    by_doc: dict[str, list[dict]] = defaultdict(list)
    for q in questions:
        by_doc[q["gold_doc_id"]].append(q)
    out = []
    for group in by_doc.values():
        for i, q in enumerate(group):
            own = {a.lower() for a in q["answers"]}
            for other in group[i + 1 :] + group[:i]:
                wrong = other["answers"][0]
                if all(wrong.lower() not in a and a not in wrong.lower() for a in own):
                    out.append((q, q["answers"][0], wrong))
                    break
    return out


def rates(
    checker: CitationChecker, corpus: dict[str, str], items, template: str
) -> tuple[float, float]:
    kept = rejected = 0
    for q, right, wrong in items:
        source = [SourceText(1, corpus[q["gold_doc_id"]])]
        good = checker.check(template.format(right) + " [1]", source, q["question"])
        bad = checker.check(template.format(wrong) + " [1]", source, q["question"])
        kept += any(s.supported for s in good)
        rejected += not any(s.supported for s in bad)
    return kept / len(items), rejected / len(items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--limit", type=int, default=600, help="answerable questions read")
    args = parser.parse_args()
    corpus, questions = load(args.dataset, args.limit)
    items = pairs(questions)
    forms = (("short phrase", "{}"), ("sentence", "The answer is {}."))
    texts = []
    for q, right, wrong in items:
        doc = corpus[q["gold_doc_id"]]
        texts += [doc[a:b] for a, b in sentences_or_whole(doc)]
        for _, template in forms:
            texts += [strip_citations(template.format(a))[0] for a in (right, wrong)]
    checker = CitationChecker(CachedEmbedder(texts), threshold=0.6)  # type: ignore[arg-type]
    print(f"{len(items)} questions with a wrong-row answer, from {len(questions)} answerable\n")
    print("| answer form | key-term rule | right answer supported | wrong-row answer rejected |")
    print("| --- | --- | ---: | ---: |")
    for form, template in forms:
        for label, penalty in (("off (before)", 1.0), ("on (now)", cite.KEY_TERM_PENALTY)):
            saved, cite.KEY_TERM_PENALTY = cite.KEY_TERM_PENALTY, penalty
            try:
                kept, rejected = rates(checker, corpus, items, template)
            finally:
                cite.KEY_TERM_PENALTY = saved
            print(f"| {form} | {label} | {kept:.3f} | {rejected:.3f} |")
    print("\ncommand: python evals/research_key_terms.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
