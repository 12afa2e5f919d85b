"""Content words: stopwords dropped, numbers kept whole."""

from rag.text.words import content_words


def test_content_words_drop_stopwords_and_keep_numbers_whole() -> None:
    assert content_words("The dose was 3.5 mg, given to 1,200 mice.") == [
        "dose", "3.5", "mg", "given", "1,200", "mice",
    ]  # fmt: skip
    assert content_words("it is what it is") == []
