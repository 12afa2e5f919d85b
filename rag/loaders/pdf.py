"""PDF: text page by page, every block carrying its 1-based page number.

Pages without a text layer (fewer than MIN_TEXT_CHARS non-space characters while something is
drawn on them: a scan, a photo) are rendered with pypdfium2 and OCR'd (rag.loaders.ocr), so a
PDF that is text on some pages and scanned on others is read page by page.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rag.errors import LoaderError
from rag.loaders.base import Document
from rag.loaders.ocr import OcrFailed, OcrOptions, current_options, ocr_images, unavailable
from rag.loaders.text import join_pages

if TYPE_CHECKING:
    from PIL.Image import Image

MIN_TEXT_CHARS = 20  # a page with less text than this, and an image on it, is OCR'd


def load_pdf(key: str, data: bytes, ocr: OcrOptions | None = None) -> Document:
    """Extract a PDF page by page; every block carries its 1-based page number.

    `ocr` None uses the options of the enclosing `rag.loaders.ocr.use_ocr` (the ingest's).
    """
    options = ocr or current_options()
    texts = [page.replace("\x00", "") for page in _page_texts(key, data)]
    warnings: list[str] = []
    ocr_pages: list[int] = []
    thin = [n for n, text in enumerate(texts, start=1) if _chars(text) < MIN_TEXT_CHARS]
    drawn = _drawn_pages(key, data, {n: texts[n - 1] for n in thin}) if thin else []
    reason = unavailable(options) if drawn else None
    if drawn and reason is None:
        results = _ocr_pages(key, data, drawn, options)
        for done, (number, result) in enumerate(zip(drawn, results, strict=True), start=1):
            if isinstance(result, OcrFailed):
                warnings.append(f"{key}: OCR failed on page {number} ({result})")
            elif _chars(result) > _chars(texts[number - 1]):
                texts[number - 1] = result
                ocr_pages.append(number)
            if options.on_page is not None:
                options.on_page(key, done, len(drawn))
    empty = [n for n, text in enumerate(texts, start=1) if not text.strip()]
    text, blocks = join_pages(texts)
    if not blocks:
        if reason is not None:
            hint = unavailable(options, "it")
            raise LoaderError(key, f"PDF has no text layer (scanned?); {hint}")
        if drawn:
            raise LoaderError(key, f"PDF has no text layer and OCR found no text on its "
                                   f"{len(texts)} page(s)")  # fmt: skip
        raise LoaderError(key, "PDF has no text (its pages are blank)")
    warnings.extend(_empty_warnings(key, empty, drawn, reason))
    # pages OCR could not read now: the next ingest that can run OCR re-reads the file
    meta = {"ocr_pending": ", ".join(map(str, drawn))} if reason is not None and drawn else {}
    return Document(key=key, kind="pdf", text=text, blocks=blocks, pages=len(texts),
                    warnings=warnings, ocr_pages=ocr_pages, empty_pages=empty,
                    meta=meta)  # fmt: skip


def _page_texts(key: str, data: bytes) -> list[str]:
    """Every page's text layer, read with pypdf."""
    import logging

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not _decrypts_with_empty_password(reader):
            raise LoaderError(key, "PDF is encrypted; decrypt it first (e.g. qpdf --decrypt)")
        pages = list(reader.pages)
    except LoaderError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise LoaderError(key, f"not a readable PDF ({type(exc).__name__}: {exc})") from None
    texts = []
    for number, page in enumerate(pages, start=1):
        try:
            texts.append(page.extract_text() or "")
        except Exception as exc:  # pypdf raises many types on damaged content streams
            raise LoaderError(key, f"page {number} could not be read ({exc})") from None
    return texts


def _empty_warnings(key: str, empty: list[int], drawn: list[int], reason: str | None) -> list[str]:
    """One warning per cause of pages left without text: OCR missing or off, none found, blank."""
    causes: dict[str, list[int]] = {}
    for number in empty:
        if number not in drawn:
            cause = "blank page"
        elif reason is not None:
            cause = reason
        else:
            cause = "OCR found no text"
        causes.setdefault(cause, []).append(number)
    return [f"{key}: no text on page(s) {', '.join(map(str, pages))} ({cause})"
            for cause, pages in causes.items()]  # fmt: skip


def _chars(text: str) -> int:
    return sum(1 for ch in text if not ch.isspace())


def _open_pdfium(key: str, data: bytes) -> Any:
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(data, password="")
    except pdfium.PdfiumError as exc:
        raise LoaderError(key, f"not a readable PDF (pdfium: {exc})") from None


def _drawn_pages(key: str, data: bytes, thin: dict[int, str]) -> list[int]:
    """The pages of `thin` (1-based number -> its little text) to OCR: those showing an image,
    and those with no text at all but something drawn (text may be drawn as outlines)."""
    import pypdfium2.raw as pdfium_c

    pdf = _open_pdfium(key, data)
    drawn = []
    try:
        for number, text in thin.items():
            page = pdf[number - 1]
            try:
                kinds = {obj.type for obj in page.get_objects()}
            finally:
                page.close()
            shapes = kinds - {pdfium_c.FPDF_PAGEOBJ_TEXT}
            if pdfium_c.FPDF_PAGEOBJ_IMAGE in kinds or (shapes and not text.strip()):
                drawn.append(number)
    finally:
        pdf.close()
    return drawn


def _ocr_pages(
    key: str, data: bytes, numbers: list[int], options: OcrOptions
) -> Iterator[str | OcrFailed]:
    """OCR pages `numbers` (1-based), rendered at `options.dpi`; texts in order."""
    pdf = _open_pdfium(key, data)
    try:
        yield from ocr_images(_rendered(key, pdf, numbers, options), options)
    finally:
        pdf.close()


def _rendered(
    key: str, pdf: Any, numbers: list[int], options: OcrOptions
) -> Iterator[tuple[Image, int | None]]:
    """Render pages `numbers` one at a time, as the OCR workers ask for them."""
    for number in numbers:
        page = pdf[number - 1]
        try:
            bitmap = page.render(scale=options.dpi / 72, grayscale=True)
            yield bitmap.to_pil(), options.dpi
        finally:
            page.close()


def _decrypts_with_empty_password(reader: object) -> bool:
    try:
        return bool(reader.decrypt(""))  # type: ignore[attr-defined]
    except Exception:
        return False
