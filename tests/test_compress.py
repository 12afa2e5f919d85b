import random
import re

import pytest

from rag.compress import (
    Compressed,
    compress,
    lexical_scorer,
    remove_near_duplicates,
    split_sentences,
)
from rag.errors import ConfigError


def sentences(text: str, **kwargs: bool) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text, **kwargs)]


def assert_well_formed(text: str, spans: list[tuple[int, int]]) -> None:
    """Spans are ordered, non-empty, trimmed, and cover every non-whitespace character."""
    covered = [False] * len(text)
    previous_end = 0
    for start, end in spans:
        assert previous_end <= start < end <= len(text)
        assert not text[start].isspace() and not text[end - 1].isspace()
        covered[start:end] = [True] * (end - start)
        previous_end = end
    assert all(covered[i] or ch.isspace() for i, ch in enumerate(text))


def test_splits_plain_sentences() -> None:
    text = "The trial ended. Mice gained weight! Was it the diet? We think so."
    assert sentences(text) == [
        "The trial ended.",
        "Mice gained weight!",
        "Was it the diet?",
        "We think so.",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "Dr. Smith and Mrs. Jones met Prof. Brown.",
        "Some drugs, e.g. metformin, lower glucose; i.e. they help.",
        "Levels rose by 3.5 percent to 12.75 mg per dl.",
        "J. R. R. Tolkien wrote it.",
        "See Fig. 2 and Eq. 3 in Smith et al. (2010) for details.",
        "It was made in the U.S. by Acme vs. Apex.",
        "Item No. 5 costs $3.50 today.",
    ],
)
def test_abbreviations_initials_and_decimals_do_not_end_a_sentence(text: str) -> None:
    assert sentences(text) == [text]


def test_quotes_and_brackets_stay_with_their_sentence() -> None:
    text = 'He said "Stop." Then he left (quietly). Finally [it ended.] Done.'
    assert sentences(text) == [
        'He said "Stop."',
        "Then he left (quietly).",
        "Finally [it ended.]",
        "Done.",
    ]


def test_lowercase_continuation_is_not_a_new_sentence() -> None:
    assert sentences("Prices fell approx. five percent... and then rose.") == [
        "Prices fell approx. five percent... and then rose."
    ]


def test_mixed_case_words_like_gene_names_can_start_a_sentence() -> None:
    text = "Levels rose in mice. mRNA levels fell. p53 was absent. and so on."
    assert sentences(text) == [
        "Levels rose in mice.",
        "mRNA levels fell.",
        "p53 was absent. and so on.",
    ]


def test_dot_leaders_do_not_make_sentences() -> None:
    assert sentences("Contents . . . . . 12 Methods . . . 14") == [
        "Contents . . . . . 12 Methods . . . 14"
    ]


def test_newlines_always_end_a_sentence() -> None:
    text = "A heading\nfirst line without a stop\n\nNext paragraph. Two sentences."
    assert sentences(text) == [
        "A heading",
        "first line without a stop",
        "Next paragraph.",
        "Two sentences.",
    ]


def test_bullet_items_are_sentences_and_keep_their_marker() -> None:
    text = "Steps:\n- Install it. Then wait\n* Run it\n1. Check. Done\n2) Stop\n• Rest"
    assert sentences(text) == [
        "Steps:",
        "- Install it.",
        "Then wait",
        "* Run it",
        "1. Check.",
        "Done",
        "2) Stop",
        "• Rest",
    ]


def test_hard_wraps_join_lines_but_keep_paragraphs_items_and_headings() -> None:
    text = (
        "# Methods\nWe measured the\nlevels twice. Then we\nstopped.\n\n"
        "New paragraph\nhere.\n- an item that\n  wraps\n- another item\n| a | b |\n| 1 | 2 |"
    )
    assert sentences(text, hard_wraps=True) == [
        "# Methods",
        "We measured the\nlevels twice.",
        "Then we\nstopped.",
        "New paragraph\nhere.",
        "- an item that\n  wraps",
        "- another item",
        "| a | b |",
        "| 1 | 2 |",
    ]


def test_windows_line_endings_and_form_feeds_break_lines() -> None:
    assert sentences("One\r\nTwo\fThree\r\n\r\nFour.") == ["One", "Two", "Three", "Four."]


@pytest.mark.parametrize("text", ["", "   ", "\n\n \t\n", ". . .", "-", "\n-\n"])
def test_degenerate_text_gives_well_formed_spans(text: str) -> None:
    spans = split_sentences(text)
    assert_well_formed(text, spans)


def test_spans_cover_all_non_whitespace_of_random_text() -> None:
    rng = random.Random(7)
    pieces = [
        "Dr.",
        "e.g.",
        "3.5",
        "word",
        "Word",
        ".",
        "!",
        "?",
        "...",
        "…",
        '"',
        ")",
        "(",
        "- ",
        "1.",
        "\n",
        "\n\n",
        " ",
        "  ",
        "\t",
        "\r\n",
        "U.S.",
        "J.",
        "#",
        "|",
        "No.",
    ]
    for _ in range(300):
        text = "".join(
            rng.choice(pieces) + rng.choice(["", " "]) for _ in range(rng.randint(0, 40))
        )
        for hard_wraps in (False, True):
            assert_well_formed(text, split_sentences(text, hard_wraps=hard_wraps))


def test_spans_point_into_the_source_text() -> None:
    text = "  Leading space. Second one.\n\nThird one.  "
    spans = split_sentences(text)
    assert spans == [(2, 16), (17, 28), (30, 40)]
    assert [text[s:e] for s, e in spans] == ["Leading space.", "Second one.", "Third one."]


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
