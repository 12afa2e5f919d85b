"""The generation queue: one answer at a time per model, a bounded line of waiting ones.

A request is admitted (or refused with `QueueFull`, which carries a Retry-After estimate)
before any work starts, then waits its turn in order; a waiter whose client went away
leaves the line without ever running.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque

from rag.errors import RagError


class QueueFull(RagError):
    """Every slot and every place in the line is taken; `retry_after` is in seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Cancelled(RagError):
    """The client went away; its answer was not finished."""


class GenerationQueue:
    """`concurrency` answers run at once, `queue` more may wait; the rest are refused.

    >>> line = GenerationQueue(concurrency=1, queue=8)
    >>> with line.admit() as ticket:
    ...     ticket.wait()
    True
    """

    def __init__(self, concurrency: int = 1, queue: int = 8) -> None:
        if concurrency < 1 or queue < 0:
            raise ValueError(f"concurrency={concurrency} must be >= 1 and queue={queue} >= 0")
        self.concurrency = concurrency
        self.queue = queue
        self._cond = threading.Condition()
        self._admitted = 0  # admitted, not finished (running or waiting)
        self._line: deque[Ticket] = deque()  # waiting in wait(), first come first served
        self._running = 0
        self._seconds = 5.0  # a moving average of how long one answer holds its slot
        self.refused = 0

    @property
    def waiting(self) -> int:
        """Admitted requests that are not running yet."""
        return self._admitted - self._running

    @property
    def running(self) -> int:
        return self._running

    def admit(self) -> Ticket:
        """A place in line, or QueueFull when the line is full."""
        with self._cond:
            if self._admitted >= self.concurrency + self.queue:
                self.refused += 1
                ahead = self.waiting + 1
                retry = max(1, math.ceil(self._seconds * ahead / self.concurrency))
                raise QueueFull(
                    f"the server is answering {self._running} question(s) with "
                    f"{self.waiting} waiting (serve.queue={self.queue}); retry in "
                    f"about {retry} s",
                    retry,
                )
            self._admitted += 1
            return Ticket(self)

    def snapshot(self) -> dict[str, float | int]:
        """What /status and /metrics show."""
        return {"running": self._running, "waiting": self.waiting,
                "concurrency": self.concurrency, "queue": self.queue, "refused": self.refused,
                "seconds_per_answer": round(self._seconds, 3)}  # fmt: skip

    def _start(self, ticket: Ticket, cancel: threading.Event | None) -> bool:
        with self._cond:
            self._line.append(ticket)
            while not (self._running < self.concurrency and self._line[0] is ticket):
                if cancel is not None and cancel.is_set():
                    self._line.remove(ticket)
                    self._cond.notify_all()
                    return False
                self._cond.wait(0.1)
            self._line.popleft()
            self._running += 1
            return True

    def _finish(self, seconds: float) -> None:
        with self._cond:
            self._running -= 1
            self._admitted -= 1
            self._seconds = 0.8 * self._seconds + 0.2 * seconds
            self._cond.notify_all()

    def _leave(self) -> None:
        with self._cond:
            self._admitted -= 1
            self._cond.notify_all()


class Ticket:
    """One admitted request: `wait()` for the slot, then leave (`with`) to free it."""

    def __init__(self, line: GenerationQueue) -> None:
        self._line = line
        self._started: float | None = None
        self._done = False

    def wait(self, cancel: threading.Event | None = None) -> bool:
        """Block until this request may run; False when `cancel` was set first."""
        if self._line._start(self, cancel):
            self._started = time.perf_counter()
            return True
        return False

    def release(self) -> None:
        """Free the slot (or the place in line); safe to call twice."""
        if self._done:
            return
        self._done = True
        if self._started is not None:
            self._line._finish(time.perf_counter() - self._started)
        else:
            self._line._leave()

    def __enter__(self) -> Ticket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
