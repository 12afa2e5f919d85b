"""Token counters for an embedder behind a server: its own tokenizer over HTTP, or an estimate.

Both do what chunking needs from a `TokenCounter`: count texts, and cut a text into character
spans that each fit a token budget.

The estimate (`EstimatedTokenCounter`) is for servers without a tokenize endpoint. It is
deliberately high so that no chunk is longer than the server reads: a run of ASCII letters
counts one token per 3 letters (capital runs: per 2), every digit, punctuation mark and
whitespace run (bar one space before a word) one, and every other character one per UTF-8
byte. On the demo corpus it never undercounts SmolLM2's tokenizer and counts about 1.5 times
as many tokens, so chunks come out about a third shorter than the limit allows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

_PIECE = re.compile(r"[A-Z]{2,}|[A-Z]?[a-z]+|[A-Z]|[0-9]|\s+|[\x00-\x7f]|[^\x00-\x7f]")
_CACHE_SIZE = 8192


class ServerTokenCounter:
    """Count with the server's tokenizer: `count(text)` asks it (one request per new text)."""

    def __init__(self, count: Callable[[str], int]) -> None:
        self._count = count
        self._cache: dict[str, int] = {}

    def count(self, text: str) -> int:
        """Tokens in `text` as the server sees it, without special tokens (cached)."""
        found = self._cache.get(text)
        if found is None:
            found = self._count(text)
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            self._cache[text] = found
        return found

    def count_many(self, texts: Sequence[str]) -> list[int]:
        return [self.count(t) for t in texts]

    def split_to_fit(self, text: str, max_tokens: int) -> list[tuple[int, int]]:
        """Cut text into spans of at most `max_tokens` tokens, at word starts where possible.

        The server gives no offsets, so each cut is a binary search over prefix lengths
        (about log2(words) requests); a single word too long is cut between characters.
        """
        spans: list[tuple[int, int]] = []
        start, end = 0, len(text)
        while start < end:
            if self.count(text[start:]) <= max_tokens:
                spans.append((start, end))
                break
            words = [k for k in range(start + 1, end) if text[k - 1].isspace()
                     and not text[k].isspace()]  # fmt: skip
            cut = self._longest_fit(text, start, words, max_tokens)
            if cut is None:
                cut = self._longest_fit(text, start, list(range(start + 1, end)), max_tokens)
            cut = cut if cut is not None else start + 1  # one character over the budget
            spans.append((start, cut))
            start = cut
        return spans

    def _longest_fit(self, text: str, start: int, cuts: list[int], limit: int) -> int | None:
        """The last cut in `cuts` (ascending) whose prefix `text[start:cut]` fits `limit`."""
        lo, hi, best = 0, len(cuts) - 1, None
        while lo <= hi:
            mid = (lo + hi) // 2
            if self.count(text[start : cuts[mid]]) <= limit:
                best, lo = cuts[mid], mid + 1
            else:
                hi = mid - 1
        return best


class EstimatedTokenCounter:
    """A conservative token estimate for servers that cannot tokenize (see the module doc)."""

    def count(self, text: str) -> int:
        return sum(cost for _, _, cost in _units(text))

    def count_many(self, texts: Sequence[str]) -> list[int]:
        return [self.count(t) for t in texts]

    def split_to_fit(self, text: str, max_tokens: int) -> list[tuple[int, int]]:
        """Cut text into spans of at most `max_tokens` estimated tokens, before a space where
        possible (so each span counts as it did inside the text)."""
        units = _units(text)
        spans: list[tuple[int, int]] = []
        first, used, i = 0, 0, 0
        while i < len(units):
            cost = units[i][2]
            if used + cost > max_tokens and i > first:
                cut = i
                for k in range(i, first, -1):  # the last space in the chunk's back half
                    if text[units[k][0]].isspace():  # cut before it: a space before a word
                        if _cost(units, first, k) >= max_tokens // 2:  # is free, at an end not
                            cut = k
                        break
                spans.append((units[first][0], units[cut][0]))
                first, used, i = cut, 0, cut
                continue
            used += cost
            i += 1
        if units:
            spans.append((units[first][0], len(text)))
        return spans


def _cost(units: list[tuple[int, int, int]], first: int, stop: int) -> int:
    return sum(c for _, _, c in units[first:stop])


def _units(text: str) -> list[tuple[int, int, int]]:
    """(start, end, estimated tokens) pieces covering `text`; letter runs are cut into pieces
    of 3 letters (2 for capitals) worth one token each."""
    units: list[tuple[int, int, int]] = []
    for match in _PIECE.finditer(text):
        start, end = match.span()
        piece = match.group()
        if piece.isascii() and piece.isalpha():
            step = 2 if len(piece) > 1 and piece.isupper() else 3
            units.extend((k, min(k + step, end), 1) for k in range(start, end, step))
        elif piece.isspace():
            before_word = piece == " " and end < len(text) and text[end].isascii() \
                and text[end].isalpha()  # fmt: skip
            units.append((start, end, 0 if before_word else 1))
        else:
            units.append((start, end, len(piece.encode("utf-8"))))
    return units
