"""Calibrate the answer cache of `rag serve`: hit rate on paraphrases, false hits on near-misses.

    .venv/bin/python evals/bench_answer_cache.py              # paraphrases generated once, cached
    .venv/bin/python evals/bench_answer_cache.py --generate-only

Questions: SQuAD 2.0 dev part A (2,805: many per paragraph, and the unanswerable ones are
adversarial one-word edits of answerable ones: "exports" for "imports", an added "not"),
PubMedQA PQA-L (500) and SciFact claims (300). Split in two halves by passage (SQuAD paragraph;
a PubMedQA or SciFact item is its own passage), so a question and its hard negatives stay in
one half: the threshold is calibrated on one half, the figures are reported on the other.

In each half every question is a cache entry. Positives: for 150 sampled questions, trivial
variants (case, punctuation, spaces, "please", "can you tell me") made by rules and two
paraphrases from the packaged `default` chat model (greedy; cached in evals/cache/, which is
not committed). A positive hits when the cache returns its own original; it is a false hit
when the cache returns another entry. Negatives: every question, asked of the cache of its
half without itself; any hit is a false hit (7 SQuAD questions with the same text as another
are one entry). Guards: see rag.answer_cache; "+top-1" also requires the top retrieved chunk
(hybrid search, no rerank, an index of the SQuAD paragraphs) to agree, on SQuAD only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets"
CACHE = ROOT / "evals" / "cache" / "answer-cache"
GENERATION_LOG = CACHE / "paraphrase-seconds.txt"  # "questions seconds", over all runs
SEED = 20240612
PER_SOURCE = {"squad": 100, "pubmedqa": 25, "scifact": 25}
THRESHOLDS = [0.70, 0.75, 0.80, 0.85, 0.88, 0.90, 0.92, 0.94, 0.96, 0.98, 0.99, 0.995]


@dataclass
class Item:
    """One dataset question (or claim): a cache entry, and a negative for every other one."""

    id: str
    text: str
    source: str
    group: str  # the passage it is about: the split unit
    answers: frozenset[str] = frozenset()  # SQuAD answerable: the normalised gold answers

    @property
    def half(self) -> str:
        digest = hashlib.sha1(f"{self.source}:{self.group}".encode()).digest()
        return "calibration" if digest[0] % 2 == 0 else "held-out"


@dataclass
class Variant:
    """A rewording of one item's question that should hit that item's entry."""

    of: str  # Item.id
    text: str
    kind: str  # "trivial" (rules) or "paraphrase" (the chat model)


@dataclass
class Rates:
    positives: int = 0
    hits: int = 0
    wrong: int = 0  # a positive that got another entry
    negatives: int = 0
    false: int = 0  # a negative that got any entry
    harmful: int = 0  # a false or wrong hit whose stored answer is not a gold answer of the asker
    by_kind: dict[str, list[int]] = field(default_factory=dict)  # kind -> [hits, total]

    @property
    def hit_rate(self) -> float:
        return self.hits / self.positives if self.positives else 0.0

    @property
    def asked(self) -> int:
        return self.negatives + self.positives

    def kind_rate(self, kind: str) -> str:
        hits, total = self.by_kind.get(kind, [0, 0])
        return f"{hits / total:.3f} ({hits}/{total})" if total else "-"


def load_items() -> list[Item]:
    from rag.eval.answer_metrics import normalize_answer

    items = []
    for line in (DATA / "squad2-dev-a" / "questions.jsonl").open():
        q = json.loads(line)
        answers = frozenset(normalize_answer(a) for a in q["answers"])
        items.append(Item(q["id"], q["question"], "squad", q["gold_doc_id"], answers))
    for line in (DATA / "pubmedqa-pqal-dev" / "questions.jsonl").open():
        q = json.loads(line)
        items.append(Item(q["id"], q["question"], "pubmedqa", q["id"]))
    for line in (DATA / "scifact" / "queries.jsonl").open():
        q = json.loads(line)
        items.append(Item(q["_id"], q["text"], "scifact", q["_id"]))
    return items


def sample(items: list[Item]) -> list[Item]:
    """The questions that get variants, the sources interleaved (4 SQuAD, 1 PubMedQA, 1 SciFact)
    so that any prefix of the list (paraphrases are generated in this order) mixes them."""
    rng = random.Random(SEED)
    picked = {s: rng.sample([i for i in items if i.source == s], n) for s, n in PER_SOURCE.items()}
    chosen = []
    while any(picked.values()):
        for source, n in PER_SOURCE.items():
            take = max(1, n // min(PER_SOURCE.values()))
            chosen += picked[source][:take]
            del picked[source][:take]
    return chosen


def trivial_variants(text: str) -> list[str]:
    """What users really send: the same words, other case, spacing, punctuation, politeness."""
    bare = text.strip().rstrip("?.! ")
    lower_first = bare[:1].lower() + bare[1:]
    return [
        bare.lower(),
        "  " + re.sub(r"\s+", "  ", bare) + " ??",
        f"Please, {lower_first}?",
        f"Can you tell me {lower_first}?",
    ]


SYSTEM = (
    "You rewrite a question (or a claim) the way another person would type it. Keep the exact "
    "meaning: every name, number, date and detail stays, and it asks for the same thing. "
    'Never answer it. Reply with JSON: {"rewrites": [two different rewrites]}.'
)
# Made-up examples (no dataset text), the same prefix for every request.
EXAMPLES = [
    ("How long does the battery of the X200 last?",
     ["What is the battery life of the X200?", "how long will the X200's battery last"]),
    ("Who wrote the first draft of the 1990 treaty?",
     ["Who was the author of the 1990 treaty's first draft?",
      "The first draft of the 1990 treaty was written by whom?"]),
    ("Aspirin lowers the risk of stroke in adults over 50.",
     ["In adults older than 50, aspirin reduces the risk of stroke.",
      "Taking aspirin cuts stroke risk for adults over 50."]),
]  # fmt: skip
SCHEMA = {
    "type": "json_object",
    "schema": {
        "type": "object",
        "properties": {
            "rewrites": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2}
        },
        "required": ["rewrites"],
    },
}


def _messages(text: str) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": SYSTEM}]
    for question, rewrites in EXAMPLES:
        messages.append({"role": "user", "content": question})
        messages.append({"role": "assistant", "content": json.dumps({"rewrites": rewrites})})
    return [*messages, {"role": "user", "content": text}]


def paraphrases(chosen: list[Item], generate_missing: bool = True) -> dict[str, list[str]]:
    """Two paraphrases per chosen item from the `default` chat model, generated once."""
    path = CACHE / "paraphrases.json"
    stored: dict[str, list[str]] = json.loads(path.read_text()) if path.is_file() else {}
    todo = [i for i in chosen if i.id not in stored]
    if not todo or not generate_missing:
        return stored
    from rag.llm.base import GenerationOptions, generate
    from rag.pipeline import load_chat_model
    from rag.settings import load_settings

    model = load_chat_model(load_settings(preset="default").settings)
    options = GenerationOptions(max_tokens=100, temperature=0.0, response_format=SCHEMA)
    started = time.perf_counter()
    for n, item in enumerate(todo, 1):
        t0 = time.perf_counter()
        reply = generate(model, _messages(item.text), options).text
        try:
            rewrites = [str(x).strip() for x in json.loads(reply)["rewrites"]]
        except (ValueError, KeyError, TypeError):
            rewrites = []
        stored[item.id] = list(dict.fromkeys(x for x in rewrites if x and x != item.text))[:2]
        if n % 5 == 0 or n == len(todo):
            print(f"  paraphrased {n}/{len(todo)} in {time.perf_counter() - started:.0f} s",
                  file=sys.stderr)  # fmt: skip
        CACHE.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(stored, indent=1))
        spent = GENERATION_LOG.read_text().split() if GENERATION_LOG.is_file() else ["0", "0"]
        GENERATION_LOG.write_text(
            f"{int(spent[0]) + 1} {float(spent[1]) + time.perf_counter() - t0:.1f}"
        )
    print(f"paraphrase generation: {len(todo)} questions in {time.perf_counter() - started:.0f} s "
          f"({model.name})")  # fmt: skip
    return stored


def embed(texts: list[str]) -> np.ndarray:
    """Unit vectors of `texts`; each text is embedded once (cached by the embedder's
    fingerprint), so new paraphrases cost only their own encoding."""
    from rag.embed import SentenceTransformerEmbedder
    from rag.embed.sentence_transformers import read_info, resolve_embedder

    fingerprint = read_info(resolve_embedder()).fingerprint[:12]
    path = CACHE / f"vectors-{fingerprint}.npz"
    known: dict[str, np.ndarray] = {}
    if path.is_file():
        with np.load(path) as stored:
            known = dict(zip(stored["texts"].tolist(), stored["vectors"], strict=True))
    todo = [t for t in texts if t not in known]
    if todo:
        started = time.perf_counter()
        known.update(zip(todo, SentenceTransformerEmbedder().encode(todo), strict=True))
        print(f"embedded {len(todo)} texts in {time.perf_counter() - started:.0f} s",
              file=sys.stderr)  # fmt: skip
        CACHE.mkdir(parents=True, exist_ok=True)
        np.savez(path, texts=np.array(list(known)), vectors=np.stack(list(known.values())))
    return np.stack([known[t] for t in texts])


def top_chunks(texts: list[str]) -> dict[str, int]:
    """The top hit's chunk id (hybrid, no rerank) for each text, over the SQuAD paragraphs."""
    path = CACHE / "squad-top1.json"
    stored: dict[str, int] = json.loads(path.read_text()) if path.is_file() else {}
    todo = [t for t in dict.fromkeys(texts) if t not in stored]
    if todo:
        from rag.eval.cache import Corpus, open_cached_index
        from rag.settings import Settings

        started = time.perf_counter()
        index = open_cached_index(Corpus(DATA / "squad2-dev-a" / "corpus.jsonl"), Settings()).index
        for text in todo:
            hits = index.search(text, k=1, rerank=False)
            stored[text] = hits[0].chunk_id if hits else -1
        print(f"retrieved {len(todo)} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        path.write_text(json.dumps(stored))
    return stored


@dataclass
class Query:
    text: str
    terms: object
    vector: np.ndarray
    own: int  # the entry it should hit; -1 for a negative
    item: Item
    skip: int  # an entry it may not get (a negative's own entry)
    kind: str  # trivial, paraphrase or negative
    evidence: int | None = None


@dataclass
class Half:
    """The cache entries of one half and the queries asked of it."""

    keys: list[str]
    items: list[Item]
    terms: list
    matrix: np.ndarray
    evidence: list[int | None]
    queries: list[Query]


def build_half(name, items, variants, vectors, evidence, sources) -> Half:
    from rag.answer_cache import normalise, question_terms

    own = [i for i in items if i.half == name and i.source in sources]
    entry_of: dict[str, int] = {}
    kept: list[Item] = []
    for item in own:
        key = normalise(item.text)
        if key not in entry_of:
            entry_of[key] = len(kept)
            kept.append(item)
    texts = [i.text for i in kept]
    terms = [question_terms(t) for t in texts]
    matrix = vectors.matrix[[vectors.row[t] for t in texts]]
    half = Half(list(entry_of), kept, terms, matrix, [evidence.get(t) for t in texts], [])
    for n, item in enumerate(kept):
        half.queries.append(Query(item.text, terms[n], matrix[n], -1, item, n, "negative",
                                  evidence.get(item.text)))  # fmt: skip
    by_id = {i.id: i for i in own}
    for v in variants:
        if v.of in by_id:
            item = by_id[v.of]
            target = entry_of[normalise(item.text)]
            vector = vectors.matrix[vectors.row[v.text]]
            half.queries.append(Query(v.text, question_terms(v.text), vector, target, item, -1,
                                      v.kind, evidence.get(v.text)))  # fmt: skip
    return half


def harmless(asker: Item, entry: Item) -> bool:
    """The stored answer is right for the asker too: two answerable SQuAD questions about one
    paragraph whose gold answers meet ("What religion were the Normans" / "What was the Norman
    religion?"). Anything else counts as harmful."""
    return asker.group == entry.group and bool(asker.answers & entry.answers)


def agrees(a, b, guard: str) -> bool:
    """`same_question`, plus one guard measured here only: "words+1", the "ids" checks and
    the content words of one question with at most one more word in the other."""
    from collections import Counter

    from rag.answer_cache import _ids_agree, same_question

    if guard != "words+1":
        return same_question(a, b, guard)  # type: ignore[arg-type]
    if a.key == b.key:
        return True
    if not _ids_agree(a, b):
        return False
    small, big = sorted((Counter(a.words), Counter(b.words)), key=lambda c: c.total())
    return not (small - big) and (big - small).total() <= 1


def answer(half: Half, query: Query, scores: np.ndarray, order: np.ndarray, threshold: float,
           guard: str, use_evidence: bool) -> int:  # fmt: skip
    """The entry the cache would return for `query`, or -1 (the logic of AnswerCache.get)."""
    if query.own >= 0 and half.keys[query.own] == query.terms.key:
        return query.own  # an exact repeat
    for e in order:
        if scores[e] < threshold:
            break
        if e == query.skip:
            continue
        if use_evidence and query.evidence is not None and half.evidence[e] != query.evidence:
            continue
        if agrees(query.terms, half.terms[e], guard):
            return int(e)
    return -1


def evaluate(half: Half, thresholds, guard: str, use_evidence: bool = False) -> dict[float, Rates]:
    rates = {t: Rates() for t in thresholds}
    low = min(thresholds)
    for q in half.queries:
        scores = half.matrix @ q.vector
        above = np.flatnonzero(scores >= low)
        order = above[np.argsort(-scores[above], kind="stable")]
        for t in thresholds:
            r = rates[t]
            got = answer(half, q, scores, order, t, guard, use_evidence)
            if q.own < 0:
                r.negatives += 1
                r.false += got >= 0
            else:
                r.positives += 1
                r.hits += got == q.own
                r.wrong += got >= 0 and got != q.own
                kind = r.by_kind.setdefault(q.kind, [0, 0])
                kind[0] += got == q.own
                kind[1] += 1
            if got >= 0 and got != q.own and not harmless(q.item, half.items[got]):
                r.harmful += 1
    return rates


def examples(half: Half, threshold: float, guard: str, limit: int = 6) -> list[str]:
    """Pairs the cache gets wrong at `threshold` under `guard`: false hits (harmful or not) and
    missed variants, with their cosine."""
    false, missed = [], []
    for q in half.queries:
        scores = half.matrix @ q.vector
        got = answer(half, q, scores, np.argsort(-scores), threshold, guard, False)
        if got >= 0 and got != q.own:
            tag = "harmless" if harmless(q.item, half.items[got]) else "HARMFUL"
            false.append(f"  {tag} {scores[got]:.3f}  {q.text!r} got {half.items[got].text!r}")
        elif got < 0 and q.own >= 0:
            missed.append(f"  missed {q.kind} {scores[q.own]:.3f}  {q.text!r} for "
                          f"{half.items[q.own].text!r}")  # fmt: skip
    return false[:limit] + missed[:limit]


def pick(rates: dict[float, Rates]) -> tuple[float, bool]:
    """The rule: among thresholds with no harmful false hit on the calibration half, the one
    with the highest calibration hit rate; of equal ones, the highest threshold. When none has
    zero (the bool is False): the one with the fewest, then the best hit rate."""
    best = min(r.harmful for r in rates.values())
    ok = [(r.hit_rate, t) for t, r in rates.items() if r.harmful == best]
    return max(ok)[1], best == 0


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000


class KnownVectors:
    """An embedder that returns the bench's precomputed vectors (its `encode` costs nothing)."""

    def __init__(self, vectors: Vectors) -> None:
        self.vectors = vectors

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.vectors.matrix[[self.vectors.row[t] for t in texts]]


def _answer_text(text: str):
    from rag.ask import Answer, Usage

    return Answer("", text, False, None, [], [], "complete", Usage())


def class_check(half: Half, vectors: Vectors, threshold: float, guard: str) -> str:
    """Run AnswerCache itself on the held-out half's positives: it must return what the sweep's
    matrix computation says for every one."""
    from rag.answer_cache import AnswerCache

    cache = AnswerCache(KnownVectors(vectors), threshold, len(half.items), guard)  # type: ignore[arg-type]
    for n, item in enumerate(half.items):
        cache.put(item.text, "scope", _answer_text(str(n)))
    agree = total = 0
    for q in half.queries:
        if q.own < 0:
            continue
        scores = half.matrix @ q.vector
        expected = answer(half, q, scores, np.argsort(-scores), threshold, guard, False)
        got = cache.get(q.text, "scope")
        total += 1
        agree += (got.answer if got else "-1") == str(expected)
    return f"AnswerCache returns what the sweep computed for {agree}/{total} held-out positives"


def latency(items, vectors: Vectors, variants, threshold: float, guard: str):
    """get() timings with 1,000 entries in one scope: exact repeats, variants with their
    embedding, and the same variants again (their vectors known: the lookup and guard alone)."""
    from rag.answer_cache import AnswerCache
    from rag.embed import SentenceTransformerEmbedder

    stored = [i for i in items if i.half == "held-out"][:1000]
    known = KnownVectors(vectors)
    cache = AnswerCache(known, threshold=threshold, max_entries=1000, guard=guard)  # type: ignore[arg-type]
    for item in stored:
        cache.put(item.text, "scope", _answer_text(item.id))
    ids = {i.id for i in stored}
    asked = [v.text for v in variants if v.of in ids and v.kind != "trivial"][:100]
    asked += [v.text for v in variants if v.of in ids and v.kind == "trivial"][: 200 - len(asked)]

    def timed(texts: list[str]) -> list[float]:
        out = []
        for text in texts:
            started = time.perf_counter()
            cache.get(text, "scope")
            out.append(time.perf_counter() - started)
        return out

    exact = timed([i.text for i in stored[:200]])
    cache.embedder = SentenceTransformerEmbedder()
    cache.embedder.encode(["warm up"])
    embedded = timed(asked)  # each variant embedded once, on its first ask
    lookup = timed(asked)  # asked again: its vector is known, the lookup and guard remain
    return [
        ("exact repeat (no embedding)", pct(exact, 50), pct(exact, 95)),
        ("variant, vector known (lookup + guard)", pct(lookup, 50), pct(lookup, 95)),
        ("variant, embedded (MiniLM, 1 text) + lookup", pct(embedded, 50), pct(embedded, 95)),
    ]


@dataclass
class Vectors:
    matrix: np.ndarray
    row: dict[str, int]


def table(title: str, rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]

    def line(r: list[str]) -> str:
        return "| " + " | ".join(str(x).ljust(w) for x, w in zip(r, widths, strict=True)) + " |"

    out = [f"\n{title}\n", line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    return "\n".join(out + [line(r) for r in rows])


def sweep_rows(cal: dict, test: dict, thresholds) -> list[list[str]]:
    rows = []
    for t in thresholds:
        c, h = cal[t], test[t]
        rows.append([f"{t:.3f}", f"{c.hit_rate:.3f}", f"{c.false + c.wrong} / {c.harmful}",
                     h.kind_rate("trivial"), h.kind_rate("paraphrase"),
                     f"{h.false + h.wrong} / {h.harmful} of {h.asked}"])  # fmt: skip
    return rows


SWEEP_HEADER = ["threshold", "cal. hit rate", "cal. false / harmful", "held-out trivial",
                "held-out paraphrase", "held-out false / harmful"]  # fmt: skip


def summary_row(label: str, cal: dict[float, Rates], test: dict[float, Rates]) -> list[str]:
    t, clean = pick(cal)
    h = test[t]
    return [label, f"{t:.3f}" + ("" if clean else " *"), f"{h.hit_rate:.3f}", h.kind_rate("trivial"),
            h.kind_rate("paraphrase"),
            f"{h.false + h.wrong} / {h.harmful} of {h.asked} ({h.harmful / h.asked:.2%})"]  # fmt: skip


SUMMARY_HEADER = ["guard", "threshold", "hit rate", "trivial", "paraphrase",
                  "false / harmful (harmful rate)"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--generate-only", action="store_true")
    parser.add_argument("--limit", type=int, help="generate for the first N sampled only")
    parser.add_argument("--no-generate", action="store_true", help="use cached paraphrases only")
    parser.add_argument("--skip-retrieval", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args()
    from rag.answer_cache import GUARDS

    items = load_items()
    chosen = sample(items)
    generated = paraphrases(chosen[: args.limit], not args.no_generate)
    if args.generate_only:
        return
    variants = [Variant(i.id, t, "trivial") for i in chosen for t in trivial_variants(i.text)]
    variants += [Variant(i.id, t, "paraphrase") for i in chosen for t in generated.get(i.id, [])]
    texts = list(dict.fromkeys([i.text for i in items] + [v.text for v in variants]))
    vectors = Vectors(embed(texts), {t: n for n, t in enumerate(texts)})
    print(f"{len(items)} questions ({sum(i.half == 'calibration' for i in items)} calibration, "
          f"{sum(i.half == 'held-out' for i in items)} held-out); variants of "
          f"{len(chosen)}: {sum(v.kind == 'trivial' for v in variants)} trivial, "
          f"{sum(v.kind == 'paraphrase' for v in variants)} paraphrases of "
          f"{sum(1 for i in chosen if generated.get(i.id))}")  # fmt: skip
    print(
        "false = another entry served; harmful = ... and its answer is not a gold answer of "
        "the asker (SQuAD: same paragraph, gold answers meet)"
    )
    halves = {h: build_half(h, items, variants, vectors, {}, {"squad", "pubmedqa", "scifact"})
              for h in ("calibration", "held-out")}  # fmt: skip
    chosen_t: dict[str, float] = {}
    summary = []
    for guard in (*GUARDS, "words+1"):
        cal = evaluate(halves["calibration"], THRESHOLDS, guard)
        test = evaluate(halves["held-out"], THRESHOLDS, guard)
        print(table(f"Guard {guard!r}, all three datasets", sweep_rows(cal, test, THRESHOLDS),
                    SWEEP_HEADER))  # fmt: skip
        chosen_t[guard] = pick(cal)[0]
        summary.append(summary_row(guard, cal, test))
    for guard, t in (("none", 0.95), ("ids", 0.95), ("words", chosen_t["words"])):
        print(f"\nExamples, held-out half, guard {guard!r}, threshold {t:.3f}:")
        print("\n".join(examples(halves["held-out"], t, guard)))
    print(table("Held-out figures at the threshold the rule picks on the calibration half "
                "(no harmful false hit; the best hit rate; ties: the higher threshold; * no "
                "threshold had none: the fewest)",
                summary, SUMMARY_HEADER))  # fmt: skip
    if not args.skip_retrieval:
        squad = {i.id for i in items if i.source == "squad"}
        asked = [i.text for i in items if i.id in squad] + [
            v.text for v in variants if v.of in squad
        ]
        evidence = top_chunks(asked)
        sq = {h: build_half(h, items, variants, vectors, evidence, {"squad"})
              for h in ("calibration", "held-out")}  # fmt: skip
        rows = []
        for guard in GUARDS:
            for use in (False, True):
                cal = evaluate(sq["calibration"], THRESHOLDS, guard, use)
                test = evaluate(sq["held-out"], THRESHOLDS, guard, use)
                rows.append(summary_row(guard + (" + top-1 chunk" if use else ""), cal, test))
        print(table("SQuAD only: what requiring the same top retrieved chunk adds (same rule)",
                    rows, SUMMARY_HEADER))  # fmt: skip
    words = chosen_t["words"]
    if not args.skip_latency:
        print(class_check(halves["held-out"], vectors, words, "words"))
        rows3 = latency(items, vectors, variants, words, "words")
        print(table(f"AnswerCache.get latency, 1,000 entries in one scope, guard 'words', "
                    f"threshold {words:.3f} (ms)",
                    [[a, f"{b:.2f}", f"{c:.2f}"] for a, b, c in rows3], ["lookup", "p50", "p95"]))  # fmt: skip
    command = shlex.join([".venv/bin/python", "evals/bench_answer_cache.py", *sys.argv[1:]])
    print(f"\ncommand: {command}")


if __name__ == "__main__":
    main()
