"""Stop strings: hold back text that could start one, cut the reply at the first one."""

from __future__ import annotations

from collections.abc import Sequence


class StopFilter:
    """Hold back text that could be the start of a stop string; cut at the first one."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = list(stops)
        self.buffer = ""
        self.stopped = False

    def feed(self, text: str) -> tuple[str, bool]:
        """Return (text safe to emit now, whether a stop string was reached)."""
        self.buffer += text
        if not self.stops:
            out, self.buffer = self.buffer, ""
            return out, False
        hits = [i for i in (self.buffer.find(s) for s in self.stops) if i >= 0]
        if hits:
            out, self.buffer, self.stopped = self.buffer[: min(hits)], "", True
            return out, True
        keep = max((overlap(self.buffer, s) for s in self.stops), default=0)
        cut = len(self.buffer) - keep
        out, self.buffer = self.buffer[:cut], self.buffer[cut:]
        return out, False

    def flush(self, text: str = "") -> str:
        """Return whatever is still held back once generation has ended."""
        out, self.buffer = self.buffer + text, ""
        return out


def overlap(text: str, stop: str) -> int:
    """Return the length of the longest suffix of `text` that is a prefix of `stop`."""
    for n in range(min(len(text), len(stop) - 1), 0, -1):
        if text.endswith(stop[:n]):
            return n
    return 0
