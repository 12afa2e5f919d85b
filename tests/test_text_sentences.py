"""Sentence spans: abbreviations, lists, hard wraps, and spans that cover the text."""

import random

import pytest

from rag.text.sentences import sentences_or_whole, split_sentences


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


def test_sentences_or_whole_falls_back_to_one_span_of_the_text() -> None:
    assert sentences_or_whole("One. Two.") == [(0, 4), (5, 9)]
    assert sentences_or_whole("  \n ") == [(0, 4)]
    assert sentences_or_whole("") == [(0, 0)]
