"""Images (.png, .jpg, .tif): OCR'd with Tesseract; a multi-frame TIFF is one page per frame.

A single image's blocks have no page (a citation names the file alone); a multi-frame TIFF's
blocks carry the 1-based frame number as their page.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator
from typing import TYPE_CHECKING

from rag.errors import LoaderError
from rag.loaders.base import Document
from rag.loaders.ocr import OcrFailed, OcrOptions, current_options, ocr_images, unavailable
from rag.loaders.text import join_pages

if TYPE_CHECKING:
    from PIL.Image import Image

MIN_SIDE = 50  # pixels: an image smaller than this both ways is an icon, not a page of text


def load_image(key: str, data: bytes, ocr: OcrOptions | None = None) -> Document:
    """OCR an image file, frame by frame; `ocr` None: the enclosing `use_ocr`'s options."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    options = ocr or current_options()
    try:
        image = PILImage.open(io.BytesIO(data))
        frames = getattr(image, "n_frames", 1)
        width, height = image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise LoaderError(key, f"not a readable image ({_why(exc)})") from None
    except PILImage.DecompressionBombError as exc:
        raise LoaderError(key, f"not a readable image ({exc})") from None
    if width < MIN_SIDE and height < MIN_SIDE:
        raise LoaderError(key, f"image too small to hold text ({width}×{height} px)")
    reason = unavailable(options, "it")
    if reason is not None:
        raise LoaderError(key, f"an image needs OCR; {reason}")
    texts: list[str] = []
    warnings: list[str] = []
    for number, result in enumerate(ocr_images(_frames(key, image, frames), options), start=1):
        if isinstance(result, OcrFailed):
            if frames == 1:
                raise LoaderError(key, f"OCR failed ({result})")
            warnings.append(f"{key}: OCR failed on page {number} ({result})")
            result = ""
        texts.append(result)
        if options.on_page is not None and frames > 1:
            options.on_page(key, number, frames)
    text, blocks = join_pages(texts)
    if frames == 1:
        blocks = [dataclasses.replace(block, page=None) for block in blocks]
    if not blocks:
        raise LoaderError(key, "no text found by OCR in the image")
    empty = [n for n, page in enumerate(texts, start=1) if not page.strip()]
    if empty:
        listed = ", ".join(map(str, empty))
        warnings.append(f"{key}: no text on page(s) {listed} (OCR found no text)")
    ocr_pages = [n for n, page in enumerate(texts, start=1) if page.strip()]
    return Document(key=key, kind="image", text=text, blocks=blocks, pages=frames,
                    warnings=warnings, ocr_pages=ocr_pages, empty_pages=empty)  # fmt: skip


def _frames(key: str, image: Image, count: int) -> Iterator[tuple[Image, int | None]]:
    """Each frame, decoded (a truncated or corrupt one fails the file), with its DPI if known."""
    for index in range(count):
        try:
            image.seek(index)
            image.load()
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            where = f" (frame {index + 1})" if count > 1 else ""
            raise LoaderError(key, f"not a readable image{where} ({_why(exc)})") from None
        yield image.copy(), _dpi(image)


def _dpi(image: Image) -> int | None:
    """The resolution the file states, if plausible; else None (Tesseract estimates it)."""
    dpi = image.info.get("dpi")
    try:
        value = int(round(float(dpi[0])))  # type: ignore[index]
    except (TypeError, ValueError, IndexError):
        return None
    return value if 70 <= value <= 1200 else None


def _why(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 120 else text[:117] + "..."
