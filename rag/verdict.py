"""Yes/no questions: recognise them, so the answer is a verdict and the sentence behind it.

A bare "Yes" has no words a source can back, so the citation check could never accept it;
a verdict followed by the source sentence it rests on can be checked like any answer.

Example:
    >>> is_yes_no_question("Does aspirin lower the risk of stroke?")
    True
    >>> is_yes_no_question("Which airline operated flight 214?")
    False
    >>> verdict_text("yes", "Aspirin lowered the risk by 20%.")
    'Yes: aspirin lowered the risk by 20%.'
"""

from __future__ import annotations

import re

VERDICTS = ("yes", "no", "maybe")
_AUXILIARIES = frozenset(
    ("is", "are", "was", "were", "am", "do", "does", "did", "can", "could", "should", "shall",
     "will", "would", "has", "have", "had", "may", "might", "must", "isn't", "aren't", "wasn't",
     "weren't", "don't", "doesn't", "didn't", "can't", "couldn't", "shouldn't", "won't",
     "wouldn't", "hasn't", "haven't", "hadn't")
)  # fmt: skip
# A question that offers its own alternatives ("Is it A or B?") wants one of them, not yes/no.
_ALTERNATIVES = re.compile(r"\bor\b(?!\s+not\b)", re.IGNORECASE)
_LEAD = re.compile(r"^[\s\"'“(\[]+")


def is_yes_no_question(question: str) -> bool:
    """Whether `question` is answered by yes, no or maybe: it opens with an auxiliary verb
    ("Does…", "Is…", "Can…") and does not offer alternatives ("Is it A or B?")."""
    text = _LEAD.sub("", question.strip())
    first = text.split(maxsplit=1)[0].lower().rstrip(",") if text else ""
    return first in _AUXILIARIES and not _ALTERNATIVES.search(text)


def verdict_text(verdict: str, evidence: str) -> str:
    """The answer shown for a verdict: "Yes: <the sentence it rests on>"."""
    evidence = evidence.strip()
    if evidence[:1].isupper() and not evidence[:2].isupper():  # "Aspirin…", not "NATO…"
        evidence = evidence[0].lower() + evidence[1:]
    return f"{verdict.strip().capitalize()}: {evidence}" if evidence else verdict.capitalize()
