"""Sentence splitting: the character spans of a text's sentences.

Spans, not strings, so whatever is kept of a sentence can still be cited by its offsets in
the source text.

Example:
    >>> text = "Dr. Lee ran the trial. Mice got 3.5 mg. The weather was fine."
    >>> [text[s:e] for s, e in split_sentences(text)]
    ['Dr. Lee ran the trial.', 'Mice got 3.5 mg.', 'The weather was fine.']
"""

from __future__ import annotations

import re

Span = tuple[int, int]

# Words that end with a period without ending the sentence (lowercase, final period removed).
_ABBREVIATION_LINES = (
    "mr mrs ms mx dr prof sr jr st mt rev hon gen col lt capt sgt cmdr gov sen rep pres messrs mme",
    "e.g i.e cf vs viz al approx ca resp incl esp dept univ assn bros",
    "fig figs eq eqs ref refs vol vols pp ch chap sect para ed eds op cit",
    "jan feb mar apr jun jul aug sep sept oct nov dec",
)
ABBREVIATIONS = frozenset(word for line in _ABBREVIATION_LINES for word in line.split())
# Abbreviations only when a number follows ("No. 5", "Art. 12"); otherwise ordinary words.
NUMBER_ABBREVIATIONS = frozenset({"no", "nos", "art", "sec"})

_BREAK_RE = re.compile(r"\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")
_BOUNDARY_RE = re.compile(r"(?:[.!?]+|…)[\"'”’»)\]]*(?=\s+(\S+))")
_PLAIN_LOWER_RE = re.compile(r"[^\W\d_A-Z]+(?:['’-][^\W\d_A-Z]+)*\W*")  # "and", "well-known,"
_DOTTED_RE = re.compile(r"(?:[^\W\d_]\.)+[^\W\d_]")  # U.S, e.g, Ph.D
_BULLET = r"(?:[-*+•‣◦▪·–—]|\(?\d{1,3}[.)]|\(?[a-zA-Z][.)]|\(?[ivxlcdmIVXLCDM]{1,6}[.)])"
_MARKER_RE = re.compile(_BULLET)
_BLOCK_START_RE = re.compile(rf"[ \t]*(?:{_BULLET}[ \t]|#{{1,6}}[ \t]|\|)")
_BLOCK_ALONE_RE = re.compile(r"[ \t]*(?:#{1,6}[ \t]|\|)")  # headings, table rows
_OPENERS = "([{\"'“‘«"


def split_sentences(text: str, hard_wraps: bool = False) -> list[Span]:
    """Return the (start, end) character spans of the sentences in `text`.

    Every line break ends a sentence, so each line, bullet item or heading is at least one
    sentence. Set `hard_wraps=True` for text wrapped at a fixed width (plain text, PDF): then
    only blank lines, bullet items, headings and table rows break, and single newlines are
    spaces. Abbreviations ("e.g.", "Dr.", "Fig. 2"), initials and decimals do not end a
    sentence. Spans are never empty, never start or end with whitespace, and cover every
    non-whitespace character of `text`.
    """
    blocks = _paragraphs(text) if hard_wraps else _lines(text)
    spans: list[Span] = []
    for start, end in blocks:
        spans.extend(_split_block(text, start, end))
    return spans


def _lines(text: str) -> list[Span]:
    """Return the spans of the lines of `text`, without their line breaks (may be empty)."""
    spans, pos = [], 0
    for match in _BREAK_RE.finditer(text):
        spans.append((pos, match.start()))
        pos = match.end()
    spans.append((pos, len(text)))
    return spans


def _paragraphs(text: str) -> list[Span]:
    """Return spans of paragraphs, list items, headings and table rows; other lines join."""
    blocks: list[Span] = []
    current: Span | None = None
    alone = False  # the current block is a heading or table row and ends with its line
    for start, end in _lines(text):
        line = text[start:end]
        if not line.strip():
            if current:
                blocks.append(current)
            current = None
        elif current is None or alone or _BLOCK_START_RE.match(line):
            if current:
                blocks.append(current)
            current = (start, end)
        else:
            current = (current[0], end)
        alone = bool(_BLOCK_ALONE_RE.match(line))
    if current:
        blocks.append(current)
    return blocks


def _split_block(text: str, start: int, end: int) -> list[Span]:
    """Split one block into sentences and trim whitespace from each."""
    block = text[start:end]
    cuts = [0]
    for match in _BOUNDARY_RE.finditer(block):
        if _is_sentence_end(block, cuts[-1], match):
            cuts.append(match.end())
    cuts.append(len(block))
    spans = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        piece = block[a:b]
        left = len(piece) - len(piece.lstrip())
        right = len(piece.rstrip())
        if right > left:
            spans.append((start + a + left, start + a + right))
    return spans


def _is_sentence_end(block: str, sentence_start: int, match: re.Match[str]) -> bool:
    """Decide whether the punctuation in `match` ends the sentence begun at `sentence_start`."""
    following = match.group(1)
    if following[0] in ".,;:!?…":
        return False  # dot leaders ". . . ." and stray punctuation
    if following[0].islower() and _PLAIN_LOWER_RE.fullmatch(following):
        return False  # a sentence goes on; "mRNA", "p53", "miR-21" may still start one
    if match.end() - sentence_start <= 12 and _MARKER_RE.fullmatch(
        block[sentence_start : match.end()].strip()
    ):
        return False  # "1." or "a)" opening a list item
    punct = match.group(0)
    if not punct.startswith(".") or punct.startswith(".."):
        return True  # "!", "?", "..." and "…" always end a sentence before a non-lowercase
    before = block[max(sentence_start, match.start() - 40) : match.start()].split()
    word = before[-1].lstrip(_OPENERS) if before else ""
    if word and not word.strip(".…"):
        return False  # the last dot of a leader ". . . . 12"
    lowered = word.lower()
    if lowered in ABBREVIATIONS or _DOTTED_RE.fullmatch(word):
        return False
    if lowered in NUMBER_ABBREVIATIONS and following[0].isdigit():
        return False
    return not (len(word) == 1 and word.isalpha())  # an initial: "J. K. Rowling"


def sentences_or_whole(text: str) -> list[Span]:
    """Return the sentence spans of `text`, or one span of all of it when it has none."""
    return split_sentences(text) or [(0, len(text))]
