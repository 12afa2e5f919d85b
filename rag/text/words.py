"""Content words: the lower-cased words of a text that carry meaning, numbers kept whole.

Example:
    >>> content_words("The dose was 3.5 mg, given to 1,200 mice.")
    ['dose', '3.5', 'mg', 'given', '1,200', 'mice']
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9]+(?:[.,][0-9]+)*")
_STOPWORDS = (
    "a an the of to in on at by for with from and or but is are was were be been being it its "
    "this that these those as not no do does did has have had can could will would should may "
    "might must shall which who whom whose what when where why how than then there their they "
    "them he she his her you your we our i me my"
)
STOPWORDS = frozenset(_STOPWORDS.split())  # also the answer cache's function words
_STOP = STOPWORDS


def content_words(text: str) -> list[str]:
    """Lower-cased words minus stopwords; numbers kept whole (3.5, 1,200)."""
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]
