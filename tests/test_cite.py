"""Citation parsing, verification and repair."""

from __future__ import annotations

from rag.cite import CitationChecker, SourceText, lexical_support, strip_citations

SOURCES = [
    SourceText(1, "The battery lasts two years. It takes two AA lithium cells."),
    SourceText(2, "The radio uses 868 MHz in Europe and 915 MHz in North America."),
]


def test_strip_citations_returns_clean_text_and_numbers_in_order():
    assert strip_citations("It lasts two years [2][1, 3].") == ("It lasts two years.", [2, 1, 3])


def test_lexical_support_counts_content_words_found_in_the_source():
    assert lexical_support("the battery lasts two years", SOURCES[0].text) == 1.0
    assert lexical_support("the moon is cheese", SOURCES[0].text) == 0.0


def test_citations_to_missing_sources_are_removed_and_reported():
    [sentence] = CitationChecker().check("The radio uses 868 MHz in Europe [2][7].", SOURCES)
    assert sentence.citations == [2] and sentence.invalid == [7] and sentence.supported


def test_a_wrong_citation_is_repaired_to_the_supporting_source():
    [sentence] = CitationChecker().check("The battery lasts two years [2].", SOURCES)
    assert sentence.citations == [1] and sentence.repaired and sentence.supported


def test_a_missing_citation_is_added_when_a_source_supports_the_sentence():
    [sentence] = CitationChecker().check("It takes two AA lithium cells.", SOURCES)
    assert sentence.citations == [1] and sentence.repaired


def test_unsupported_sentence_is_flagged(embedder):
    checked = CitationChecker(embedder).check(
        "The battery lasts two years [1]. The console was designed on Mars [1].", SOURCES
    )
    assert [s.supported for s in checked] == [True, False]


def test_quote_points_at_the_best_supporting_sentence():
    [sentence] = CitationChecker().check("It uses 915 MHz in North America [2].", SOURCES)
    n, start, end = sentence.quote
    assert n == 2 and "915 MHz" in SOURCES[1].text[start:end]


def test_a_cited_source_that_does_not_back_the_sentence_is_dropped():
    [sentence] = CitationChecker().check("The battery lasts two years [1][2].", SOURCES)
    assert sentence.citations == [1] and sentence.unsupporting == [2]
    assert sentence.supported and not sentence.repaired


def test_with_the_question_a_short_answer_cites_the_source_that_says_it_about_the_question():
    sources = [
        SourceText(1, "The treaty was signed in 1973 in Paris."),
        SourceText(2, "In 1973 the oil crisis began when OPEC proclaimed an embargo."),
    ]
    [blind] = CitationChecker().check("1973 [1]", sources)
    assert blind.citations == [1], "both sources contain 1973: without the question [1] stands"
    [sentence] = CitationChecker().check("1973 [1]", sources, "When did the oil crisis begin?")
    assert sentence.citations == [2] and sentence.repaired and sentence.supported
    [both] = CitationChecker().check("1973 [1][2]", sources, "When did the oil crisis begin?")
    assert both.citations == [2] and both.unsupporting == [1] and not both.repaired
