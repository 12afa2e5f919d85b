"""Key terms: invented or misattributed numbers and names are caught, paraphrases are not."""

from __future__ import annotations

from rag.cite import CitationChecker, SourceText
from rag.text.key_terms import bound, key_terms, missing_terms

OPTIONS = (
    "Option | Type | Default | Meaning\n"
    "read_timeout | int | 30 | Seconds to wait for a reply\n"
    "connect_timeout | int | 10 | Seconds to wait for a connection"
)


def test_key_terms_are_numbers_names_acronyms_and_identifiers():
    terms = key_terms("In 2013, Asiana flight 214 carried 3.5% more NATO staff, Dr. McDonald said.")
    assert terms == {"2013", "asiana", "214", "3.5", "nato", "mcdonald"}
    assert key_terms("Set read_timeout to 30.") == {"read_timeout", "30"}
    assert (
        key_terms("The sensor is calibrated monthly.") == set()
    )  # a first-word capital is grammar


def test_a_name_the_source_does_not_state_is_missing():
    source = "Flight 214 was operated by Asiana Airlines. Korean Air flew the other route."
    assert missing_terms("It was operated by Korean Air.", source) == []
    assert missing_terms("It was operated by Lufthansa.", source) == ["lufthansa"]


def test_an_invented_acronym_expansion_is_missing():
    source = "NATO, the North Atlantic Treaty Organization, was founded in 1949."
    sentence = "NATO stands for North Atlantic Trade Organization."
    assert missing_terms(sentence, source, "What does NATO stand for?") == ["trade"]


def test_paraphrased_numbers_are_not_missing():
    assert (
        missing_terms("Calibrate it every 6 months.", "Calibrate the sensor every six months.")
        == []
    )
    assert missing_terms("It costs $1,200.", "The price is 1200 dollars.") == []
    assert missing_terms("Beyoncé's album.", "Beyonce released the album.") == []


def test_terms_the_question_supplies_are_not_required():
    assert (
        missing_terms(
            "Kestrel K2 weighs 2 kg.", "It weighs 2 kg.", "How much does Kestrel K2 weigh?"
        )
        == []
    )


def test_a_neighbouring_rows_value_is_not_bound_to_the_option_asked_about():
    question = "What is the default of read_timeout?"
    assert bound("The default is 30.", OPTIONS, question)
    assert not bound("The default is 10.", OPTIONS, question)


def test_a_value_in_a_sentence_that_refers_back_is_bound():
    source = ("Beyoncé Knowles is an American singer. Raised in Houston, she rose to fame in the "
              "late 1990s. Destiny's Child sold 60 million records.")  # fmt: skip
    question = "When did Beyoncé become famous?"
    assert bound("In the late 1990s.", source, question)
    assert not bound("It sold 60 million records.", "Destiny's Child sold 60 million records. "
                     "Beyoncé went solo.", question)  # fmt: skip


def test_a_source_that_never_names_the_subject_cannot_unbind():
    assert bound("It weighs 2 kg.", "The unit weighs 2 kg.", "How much does Kestrel K2 weigh?")


def test_checker_moves_a_citation_to_the_source_that_states_the_value():
    sources = [SourceText(1, OPTIONS.replace("| 30 |", "| 45 |")), SourceText(2, OPTIONS)]
    [sentence] = CitationChecker().check("The default is 30 [1].", sources,
                                          "What is the default of read_timeout?")  # fmt: skip
    assert sentence.supported and sentence.citations == [2]


def test_checker_rejects_a_value_from_the_wrong_row():
    [sentence] = CitationChecker().check("The default of read_timeout is 10 [1].",
                                          [SourceText(1, OPTIONS)],
                                          "What is the default of read_timeout?")  # fmt: skip
    assert not sentence.supported


def test_checker_rejects_an_invented_name_and_says_which():
    source = SourceText(1, "Flight 214 was operated by Asiana Airlines on 6 July 2013.")
    [sentence] = CitationChecker().check("Flight 214 was operated by Korean Air [1].", [source],
                                          "Which airline operated flight 214?")  # fmt: skip
    assert not sentence.supported
    assert sentence.missing == ["air", "korean"]
    [good] = CitationChecker().check("Flight 214 was operated by Asiana Airlines [1].", [source],
                                      "Which airline operated flight 214?")  # fmt: skip
    assert good.supported and good.missing == []
