"""OCR with Tesseract: a PIL image in, text out, paragraphs separated by blank lines.

Tesseract runs as a subprocess (`tesseract stdin stdout … tsv`): the image goes in through a
pipe and its words come back with their block, paragraph and line numbers and a confidence,
so no temporary files are written and each call gets its own `OMP_THREAD_LIMIT=1` (Tesseract's
OpenMP threads made a page about 3× slower on a busy 2-core machine; parallel pages are
faster, see `ingest.ocr_workers`).

>>> options = OcrOptions(languages="eng", dpi=200)
>>> reason = unavailable(options)  # None when Tesseract and its language data are there
>>> text = ocr_image(image, options) if reason is None else ""  # doctest: +SKIP

Loaders read the options of the ingest they run in (`use_ocr`), else the defaults.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL.Image import Image

    from rag.settings import IngestSettings

DEFAULT_COMMAND = "tesseract"
PAGE_TIMEOUT = 300.0  # seconds for one page; a hung tesseract must not stall the ingest
MIN_WORD_CONFIDENCE = 20.0  # below this Tesseract's "words" are mostly noise from pictures
_LANGUAGE = re.compile(r"^[A-Za-z0-9_]+$")

PageCallback = Callable[[str, int, int], None]  # (document key, pages done, pages to OCR)


@dataclass(frozen=True)
class OcrOptions:
    """How to OCR: on or off, Tesseract's languages ("eng", "eng+deu"), the PDF render DPI,
    parallel pages (0: one per core), the tesseract command, and a per-page progress callback."""

    enabled: bool = True
    languages: str = "eng"
    dpi: int = 200
    workers: int = 0
    command: str = DEFAULT_COMMAND
    on_page: PageCallback | None = field(default=None, compare=False)

    @classmethod
    def from_settings(
        cls, ingest: IngestSettings, on_page: PageCallback | None = None
    ) -> OcrOptions:
        """The options the `[ingest]` settings describe."""
        return cls(ingest.ocr, ingest.ocr_languages, ingest.ocr_dpi, ingest.ocr_workers,
                   ingest.ocr_command, on_page)  # fmt: skip

    def worker_count(self) -> int:
        """Pages OCR'd at once: `workers`, or one per core when 0."""
        if self.workers:
            return self.workers
        cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        return max(1, len(cores) if cores else os.cpu_count() or 1)


_OPTIONS: ContextVar[OcrOptions | None] = ContextVar("rag_ocr_options", default=None)


@contextmanager
def use_ocr(options: OcrOptions) -> Iterator[OcrOptions]:
    """Make `options` the OCR options of every loader called inside the block."""
    token = _OPTIONS.set(options)
    try:
        yield options
    finally:
        _OPTIONS.reset(token)


def current_options() -> OcrOptions:
    """The options set by the enclosing `use_ocr`, else the defaults."""
    return _OPTIONS.get() or OcrOptions()


# ---- is Tesseract there? ------------------------------------------------------------------


def unavailable(options: OcrOptions, what: str = "them") -> str | None:
    """Why OCR cannot run, ending in what to do ("install tesseract-ocr to OCR them"); or None.

    Looks the command up on PATH and its language data up with `--list-langs`, once per
    command (cached).
    """
    if not options.enabled:
        return f"OCR is off; set ingest.ocr = true to OCR {what}"
    found = installed_languages(options.command)
    if found is None:
        where = "" if options.command == DEFAULT_COMMAND else f"; {options.command!r} not found"
        return f"install tesseract-ocr to OCR {what}{where}"
    missing = [lang for lang in options.languages.split("+") if lang not in found]
    if missing:
        packs = " ".join(f"tesseract-ocr-{lang.lower().replace('_', '-')}" for lang in missing)
        names = ", ".join(missing)
        return f"Tesseract has no language data for {names}; apt install {packs} to OCR {what}"
    return None


@lru_cache(maxsize=8)
def installed_languages(command: str = DEFAULT_COMMAND) -> frozenset[str] | None:
    """The languages `command --list-langs` reports, or None when Tesseract is not installed."""
    path = shutil.which(command)
    if path is None:
        return None
    try:
        done = subprocess.run([path, "--list-langs"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (done.stdout + done.stderr).decode("utf-8", "replace").splitlines()
    return frozenset(line.strip() for line in lines if _LANGUAGE.match(line.strip()))


# ---- OCR ----------------------------------------------------------------------------------


class OcrFailed(Exception):
    """Tesseract could not read one image; the message says why."""


def ocr_image(image: Image, options: OcrOptions, dpi: int | None = None) -> str:
    """OCR one image: paragraphs separated by blank lines, lines by newlines; "" if none.

    `dpi` is the image's resolution when known (a rendered PDF page); else Tesseract guesses.
    Raises OcrFailed when Tesseract fails or times out.
    """
    path = shutil.which(options.command)
    if path is None:
        raise OcrFailed(f"{options.command!r} not found; install tesseract-ocr")
    buffer = io.BytesIO()
    _ocr_ready(image).save(buffer, "PNG", compress_level=1)
    args = [path, "stdin", "stdout", "-l", options.languages]
    if dpi:
        args += ["--dpi", str(dpi)]
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    try:
        done = subprocess.run(args + ["tsv"], input=buffer.getvalue(), capture_output=True,
                              timeout=PAGE_TIMEOUT, env=env, check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise OcrFailed(f"tesseract took over {PAGE_TIMEOUT:.0f} s") from None
    except OSError as exc:
        raise OcrFailed(f"tesseract could not run ({exc})") from None
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise OcrFailed(f"tesseract failed: {lines[-1] if lines else f'exit {done.returncode}'}")
    return tsv_to_text(done.stdout.decode("utf-8", "replace"))


def ocr_images(
    images: Iterable[tuple[Image, int | None]], options: OcrOptions
) -> Iterator[str | OcrFailed]:
    """OCR (image, dpi) pairs on `options.worker_count()` threads; yield texts in order.

    Images are pulled from `images` only as workers free up, so a long PDF is never held in
    memory whole. A page that fails yields its OcrFailed instead of text.
    """
    workers = options.worker_count()
    if workers == 1:
        for image, dpi in images:
            yield _attempt(image, options, dpi)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rag-ocr") as pool:
        running: deque[Future[str | OcrFailed]] = deque()
        for image, dpi in images:
            running.append(pool.submit(_attempt, image, options, dpi))
            if len(running) > workers:
                yield running.popleft().result()
        while running:
            yield running.popleft().result()


def _attempt(image: Image, options: OcrOptions, dpi: int | None) -> str | OcrFailed:
    try:
        return ocr_image(image, options, dpi)
    except OcrFailed as exc:
        return exc


def _ocr_ready(image: Image) -> Image:
    """Grayscale or RGB, with any transparency flattened onto white (else it reads as black)."""
    from PIL import Image as PILImage

    if image.mode in ("1", "L", "RGB"):
        return image
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = PILImage.new("RGBA", rgba.size, (255, 255, 255, 255))
        return PILImage.alpha_composite(white, rgba).convert("RGB")
    if image.mode.startswith("I;16") or image.mode == "I":
        return image.point(lambda v: v / 256).convert("L")  # type: ignore[no-any-return]
    return image.convert("RGB")


def tsv_to_text(tsv: str) -> str:
    """Turn Tesseract's TSV into text: a blank line between paragraphs, a newline between lines.

    Words under MIN_WORD_CONFIDENCE and paragraphs without a letter or digit are dropped.
    """
    paragraphs: dict[tuple[str, str, str], dict[str, list[str]]] = {}
    for row in tsv.splitlines()[1:]:
        cols = row.split("\t")
        if len(cols) < 12 or cols[0] != "5":
            continue
        word = cols[11].strip()
        try:
            confidence = float(cols[10])
        except ValueError:
            continue
        if not word or confidence < MIN_WORD_CONFIDENCE:
            continue
        lines = paragraphs.setdefault((cols[1], cols[2], cols[3]), {})
        lines.setdefault(cols[4], []).append(word)
    texts = []
    for lines in paragraphs.values():
        text = "\n".join(" ".join(words) for words in lines.values())
        if any(ch.isalnum() for ch in text):
            texts.append(text)
    return "\n\n".join(texts)
