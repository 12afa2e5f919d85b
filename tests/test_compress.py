import random
import re

import pytest

from rag.compress import Compressed, compress, lexical_scorer, remove_near_duplicates
from rag.errors import ConfigError
from rag.text.sentences import split_sentences

ABSTRACT = (
    "Obesity is common in adults. "
    "Metformin lowers blood glucose in type 2 diabetes. "
    "The study enrolled 300 patients. "
    "Glucose fell by 20 percent with metformin. "
    "Weather did not affect the results."
)


def test_compress_keeps_the_most_relevant_sentences_in_original_order() -> None:
    result = compress("does metformin lower glucose", ABSTRACT, keep_ratio=0.4)
    assert result.text == (
        "Metformin lowers blood glucose in type 2 diabetes. … "
        "Glucose fell by 20 percent with metformin."
    )
    assert [ABSTRACT[s:e] for s, e in result.kept_spans] == [
        "Metformin lowers blood glucose in type 2 diabetes.",
        "Glucose fell by 20 percent with metformin.",
    ]
    assert len(result.dropped_spans) == 3
    assert sorted(result.kept_spans + result.dropped_spans) == split_sentences(ABSTRACT)


def test_compress_joins_adjacent_kept_sentences_with_the_original_text() -> None:
    text = "Alpha one.\nAlpha two. Beta three."
    result = compress("alpha", text, keep_ratio=0.5)
    assert result.text == "Alpha one.\nAlpha two."


def test_compress_always_keeps_the_best_sentence() -> None:
    result = compress("zebra", ABSTRACT, keep_ratio=0.01, min_score=100.0)
    assert len(result.kept_spans) == 1
    assert result.text == "Obesity is common in adults."  # all score 0: first one wins


def test_compress_min_score_drops_irrelevant_sentences() -> None:
    result = compress("metformin", ABSTRACT, keep_ratio=1.0, min_score=1e-9)
    assert [ABSTRACT[s:e] for s, e in result.kept_spans] == [
        "Metformin lowers blood glucose in type 2 diabetes.",
        "Glucose fell by 20 percent with metformin.",
    ]


def test_compress_uses_a_custom_scorer() -> None:
    def by_length(query: str, sents: list[str]) -> list[float]:
        return [float(len(s)) for s in sents]

    result = compress("ignored", ABSTRACT, score_sentence=by_length, keep_ratio=0.2)
    assert result.text == "Metformin lowers blood glucose in type 2 diabetes."


def test_compress_of_empty_text_is_empty() -> None:
    assert compress("query", "  \n ") == Compressed("", [], [])
    assert Compressed("", [], []).kept_fraction == 1.0


def test_compress_rejects_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="keep_ratio"):
        compress("q", ABSTRACT, keep_ratio=0)
    with pytest.raises(ValueError, match="1 scores for 5 sentences"):
        compress("q", ABSTRACT, score_sentence=lambda q, s: [1.0])


def test_lexical_scorer_matches_stems_and_weights_rare_terms() -> None:
    score = lexical_scorer()
    sents = ["Cells divide.", "Dividing cells grow.", "Cells die.", "Nothing here."]
    scores = score("how do cells divide", sents)
    assert scores[1] == scores[0] > scores[2] > scores[3] == 0.0
    assert lexical_scorer(idf=False)("cells divide", sents) == [2.0, 2.0, 1.0, 0.0]


def test_remove_near_duplicates_keeps_the_first_of_each_group() -> None:
    base = " ".join(f"word{i}" for i in range(60))
    near = base.replace("word30", "changed")  # one word differs: Jaccard 52/62
    almost = base + " extra"  # Jaccard 56/57
    other = " ".join(f"other{i}" for i in range(60))
    texts = [base, other, almost, near, base.upper()]
    assert remove_near_duplicates(texts, threshold=0.9) == [0, 1, 3]
    assert remove_near_duplicates(texts, threshold=0.8) == [0, 1]


def test_remove_near_duplicates_handles_short_and_empty_texts() -> None:
    assert remove_near_duplicates(["a b", "A, b!", "a c", "", " "]) == [0, 2, 3]
    assert remove_near_duplicates([]) == []


def test_remove_near_duplicates_matches_brute_force_jaccard() -> None:
    rng = random.Random(3)
    vocab = [f"w{i}" for i in range(12)]
    texts = [" ".join(rng.choices(vocab, k=rng.randint(3, 20))) for _ in range(80)]

    def grams(text: str) -> set[tuple[str, ...]]:
        words = re.findall(r"\w+", text.lower())
        if len(words) < 3:
            return {tuple(words)}
        return {tuple(words[i : i + 3]) for i in range(len(words) - 2)}

    kept: list[int] = []
    for i, text in enumerate(texts):
        g = grams(text)
        if all(len(g & grams(texts[j])) / len(g | grams(texts[j])) < 0.3 for j in kept):
            kept.append(i)
    assert remove_near_duplicates(texts, threshold=0.3, shingle_size=3) == kept
    assert 5 < len(kept) < 80


def test_remove_near_duplicates_rejects_bad_threshold() -> None:
    with pytest.raises(ConfigError, match="threshold"):
        remove_near_duplicates(["a"], threshold=0)


def test_keep_ratio_rounds_up_without_float_error() -> None:
    text = " ".join(f"Sentence {i} is here." for i in range(10))
    assert len(compress("sentence", text, keep_ratio=0.3).kept_spans) == 3
    assert len(compress("sentence", text, keep_ratio=0.25).kept_spans) == 3
