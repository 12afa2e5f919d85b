"""Key terms: the numbers, names and acronyms of a claim, which a paraphrase may not change.

A sentence can share most of its words with a source and still invent the one fact that
matters: the other airline, a neighbouring option's default, an acronym's made-up expansion.
Similarity scores miss that; a term check does not.

Example:
    >>> sorted(key_terms("Flight 214 was operated by Asiana Airlines in July."))
    ['214', 'airlines', 'asiana', 'july']
    >>> missing_terms("It was operated by Asiana.", "The flight was run by Korean Air.")
    ['asiana']
"""

from __future__ import annotations

import re
import unicodedata

from rag.text.sentences import ABBREVIATIONS, sentences_or_whole
from rag.text.words import content_words

_TOKEN = re.compile(r"[^\W_]+(?:(?:[-_.'’]|(?<=\d),(?=\d))[^\W_]+)*")
_DIGIT = re.compile(r"\d")
_NUMBER_WORDS = {
    **{word: str(n) for n, word in enumerate(
        ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
         "eighteen", "nineteen", "twenty"))},
    "thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70",
    "eighty": "80", "ninety": "90", "hundred": "100", "thousand": "1000",
}  # fmt: skip
# Words that refer back to an earlier sentence's subject ("It opened in 1973.").
_REFERRING = frozenset(
    ("it", "its", "he", "him", "his", "she", "her", "they", "them", "their", "this", "these",
     "those")
)  # fmt: skip
# Capitalised words that are grammar, not names, wherever they stand in a sentence.
_NOT_NAMES = frozenset(
    ("i", "a", "an", "the", "this", "that", "these", "those", "it", "its", "he", "she", "they",
     "we", "you", "his", "her", "their", "our", "yes", "no", "not", "and", "or", "but", "if",
     "in", "on", "at", "of", "to", "for", "by", "with", "from", "as", "is", "are", "was",
     "were", "be", "been")
)  # fmt: skip


def _fold(word: str) -> str:
    """Lower-case, strip accents and a possessive "'s", drop thousands separators."""
    word = unicodedata.normalize("NFKD", word)
    word = "".join(c for c in word if not unicodedata.combining(c)).lower()
    word = re.sub(r"['’]s$", "", word)
    if _DIGIT.search(word):
        word = re.sub(r"(?<=\d),(?=\d{3}\b)", "", word).rstrip(".")
    return _NUMBER_WORDS.get(word, word)


def words(text: str) -> set[str]:
    """Every folded word of `text`, and the parts of hyphenated or dotted ones."""
    found: set[str] = set()
    for match in _TOKEN.finditer(text):
        token = match.group()
        found.add(_fold(token))
        if any(sep in token for sep in "-_.'’"):
            found.update(_fold(part) for part in re.split(r"[-_.'’]", token) if part)
    return found


def key_terms(sentence: str) -> set[str]:
    """The folded numbers, names and acronyms of `sentence`.

    A number is any token with a digit. A name is a capitalised word that is not the first
    word of the sentence (there a capital is only grammar), unless it is an acronym (two or
    more capitals) or has a capital inside it ("iPhone", "McDonald").
    """
    terms: set[str] = set()
    for i, match in enumerate(_TOKEN.finditer(sentence)):
        token = match.group()
        if _DIGIT.search(token):
            terms.add(_fold(token))
            continue
        if token.lower() in _NOT_NAMES or token.lower().rstrip(".") in ABBREVIATIONS:
            continue
        if "_" in token:  # an identifier: option and field names
            terms.add(_fold(token))
            continue
        capitals = sum(c.isupper() for c in token)
        inner_capital = any(c.isupper() for c in token[1:])
        if capitals >= 2 or inner_capital or (i > 0 and token[0].isupper()):
            terms.add(_fold(token))
    return terms


def missing_terms(sentence: str, source: str, exempt: str = "") -> list[str]:
    """The key terms of `sentence` that `source` does not contain, sorted.

    Terms that occur in `exempt` (the question) are not required: the question supplies them,
    and a source may refer to its subject by a pronoun.
    """
    given = words(exempt) if exempt else set()
    have = words(source)
    return sorted(t for t in key_terms(sentence) if t not in given and t not in have)


def bound(sentence: str, source: str, question: str) -> bool:
    """Whether each key term the sentence adds to the question stands in `source` next to what
    the question asks about: in one sentence, line or table row with one of the question's
    key terms (its content words when it has none), or in the sentence before it when that
    sentence refers back with a pronoun.

    A value that occurs only in a neighbouring row or another entity's sentence is not bound.
    When the source never names what the question asks about, nothing can be judged: True.
    """
    asked = words(question)
    novel = key_terms(sentence) - asked
    anchors = key_terms(question) or {_fold(w) for w in content_words(question)}
    if not novel or not anchors:
        return True
    spans = sentences_or_whole(source)
    windows: list[set[str]] = []
    for k, (start, end) in enumerate(spans):
        window = words(source[start:end])
        if k and window & _REFERRING:
            window |= words(source[spans[k - 1][0] : spans[k - 1][1]])
        windows.append(window)
    if not any(anchors & w for w in windows):
        return True
    return all(any(term in w and anchors & w for w in windows) for term in novel)
