"""OCR with the real Tesseract: scanned PDF pages, images, multi-frame TIFFs, and bad inputs."""

from __future__ import annotations

import io
import re
import shutil
import textwrap
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from rag import Index
from rag.errors import LoaderError
from rag.loaders import kind_of, load_document
from rag.loaders.ocr import OcrOptions, installed_languages, use_ocr
from rag.settings import load_settings

pytestmark = pytest.mark.skipif(
    shutil.which("tesseract") is None,
    reason="Tesseract is not installed (apt install tesseract-ocr tesseract-ocr-eng)",
)

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
MISSING = OcrOptions(command="/nonexistent/bin/tesseract")


def _page_image(text: str, size: tuple[int, int] = (1240, 1754), px: int = 34) -> Image.Image:
    """A white page (A4 at 150 dpi by default) with `text` typed on it, paragraph by paragraph."""
    font = ImageFont.truetype(str(FONT), px) if FONT.is_file() else ImageFont.load_default(px)
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    y = 120
    for paragraph in text.split("\n\n"):
        for line in textwrap.wrap(paragraph, 52):
            draw.text((110, y), line, font=font, fill=0)
            y += int(px * 1.4)
        y += px
    return image


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


FACT = (
    "The Marlow pumping station was rebuilt in 1987 after the flood destroyed its "
    "turbines.\n\nChief engineer Odile Brennan signed the inspection report."
)


def _mixed_pdf() -> bytes:
    """Page 1 has a text layer, page 2 is a scanned image of text, page 3 is text again."""
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=(595, 842))
    pdf.drawString(72, 760, "Maintenance log, volume two: routine greasing of the sluice gates.")
    pdf.showPage()
    pdf.drawImage(ImageReader(_page_image(FACT)), 0, 0, width=595, height=842)
    pdf.showPage()
    pdf.drawString(72, 760, "Appendix: the list of spare parts kept in the depot at Henley.")
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def _scan_only_pdf() -> bytes:
    buffer = io.BytesIO()
    _page_image(FACT).save(buffer, "PDF", resolution=150)
    return buffer.getvalue()


def test_scanned_page_is_ocrd_and_found_on_its_page(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "log.pdf").write_bytes(_mixed_pdf())
    (tmp_path / "docs" / "note.txt").write_text("Spare parts are ordered every spring.\n")
    index = Index(tmp_path / "idx", preset="tiny")
    report = index.ingest([tmp_path / "docs"])
    assert report.ok and report.added == 2
    hits = index.search("Who signed the Marlow pumping station inspection report?", k=3)
    assert hits[0].path.endswith("log.pdf") and hits[0].page == 2
    assert "Brennan" in hits[0].text
    (row,) = [r for r in index.pipeline.store().documents() if r.path.endswith("log.pdf")]
    assert row.info["ocr_pages"] == [2]
    assert "empty_pages" not in row.info


def test_ocr_keeps_paragraphs_and_page_numbers():
    doc = load_document("log.pdf", "pdf", _mixed_pdf())
    assert doc.ocr_pages == [2] and doc.empty_pages == [] and doc.pages == 3
    page2 = [doc.text[b.start : b.end] for b in doc.blocks if b.page == 2]
    assert len(page2) == 2  # Tesseract's two paragraphs, a blank line between them
    assert "1987" in page2[0] and "Brennan" in page2[1]


def test_missing_tesseract_names_the_pages_it_could_not_read():
    with use_ocr(MISSING):
        doc = load_document("log.pdf", "pdf", _mixed_pdf())
    assert doc.ocr_pages == [] and doc.empty_pages == [2]
    assert doc.warnings == ["log.pdf: no text on page(s) 2 (install tesseract-ocr to OCR them; "
                            "'/nonexistent/bin/tesseract' not found)"]  # fmt: skip


def test_image_only_pdf_without_tesseract_fails_saying_so():
    with use_ocr(MISSING), pytest.raises(LoaderError, match="install tesseract-ocr to OCR it"):
        load_document("scan.pdf", "pdf", _scan_only_pdf())


def test_ocr_off_says_how_to_turn_it_on():
    with use_ocr(OcrOptions(enabled=False)):
        doc = load_document("log.pdf", "pdf", _mixed_pdf())
        with pytest.raises(LoaderError, match=r"OCR is off; set ingest.ocr = true to OCR it"):
            load_document("scan.pdf", "pdf", _scan_only_pdf())
    assert doc.warnings == ["log.pdf: no text on page(s) 2 (OCR is off; set ingest.ocr = true "
                            "to OCR them)"]  # fmt: skip


def test_missing_language_pack_is_named():
    assert "eng" in (installed_languages() or ())
    with use_ocr(OcrOptions(languages="eng+zzz")):
        doc = load_document("log.pdf", "pdf", _mixed_pdf())
    assert "apt install tesseract-ocr-zzz" in doc.warnings[0]


def test_ingest_reads_the_tesseract_command_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_INGEST_OCR_COMMAND", "/nonexistent/bin/tesseract")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "scan.pdf").write_bytes(_scan_only_pdf())
    (tmp_path / "docs" / "log.pdf").write_bytes(_mixed_pdf())
    index = Index(tmp_path / "idx", settings=load_settings(preset="tiny").settings)
    report = index.ingest([tmp_path / "docs"])
    assert report.added == 1
    assert [f.error for f in report.failed] == [
        "PDF has no text layer (scanned?); install tesseract-ocr to OCR it; "
        "'/nonexistent/bin/tesseract' not found"
    ]
    assert any("no text on page(s) 2 (install tesseract-ocr" in w for w in report.warnings)
    (row,) = index.documents()
    assert row.info["ocr_pending"] == "2" and "ocr_pages" not in row.info
    index.close()

    monkeypatch.delenv("RAG_INGEST_OCR_COMMAND")  # Tesseract "installed": the page is read now
    index = Index(tmp_path / "idx", settings=load_settings(preset="tiny").settings)
    again = index.ingest([tmp_path / "docs"])
    assert (again.added, again.updated, again.unchanged) == (1, 1, 0)
    assert again.ocr_pages == {str(tmp_path / "docs" / "log.pdf"): [2],
                               str(tmp_path / "docs" / "scan.pdf"): [1]}  # fmt: skip
    assert all("ocr_pending" not in row.info for row in index.documents())
    assert index.ingest([tmp_path / "docs"]).unchanged == 2  # and then it is left alone


def test_png_is_ocrd_without_a_page():
    assert kind_of(Path("photo.PNG")) == "image" and kind_of(Path("a.jpeg")) == "image"
    doc = load_document("receipt.png", "image", _png(_page_image(FACT, (1240, 600))))
    assert doc.kind == "image" and doc.pages == 1 and doc.ocr_pages == [1]
    assert "Odile Brennan" in doc.text
    assert {b.page for b in doc.blocks} == {None}


def test_multi_frame_tiff_is_one_page_per_frame():
    frames = [_page_image("Frame one lists the valves.", (900, 400)),
              _page_image("Frame two names the welder Tomasz Quill.", (900, 400))]  # fmt: skip
    buffer = io.BytesIO()
    frames[0].save(buffer, "TIFF", save_all=True, append_images=frames[1:])
    doc = load_document("fax.tiff", "image", buffer.getvalue())
    assert doc.pages == 2 and doc.ocr_pages == [1, 2]
    (block,) = [b for b in doc.blocks if "Quill" in doc.text[b.start : b.end]]
    assert block.page == 2


def test_image_without_tesseract_fails_saying_so():
    with use_ocr(MISSING), pytest.raises(LoaderError, match="install tesseract-ocr to OCR it"):
        load_document("receipt.png", "image", _png(_page_image(FACT, (1240, 600))))


def test_bad_images_fail_with_one_clear_line(tmp_path):
    picture = Image.new("RGB", (400, 300), (40, 120, 200))
    ImageDraw.Draw(picture).ellipse((100, 60, 300, 240), fill=(250, 200, 30))
    full = _png(_page_image(FACT, (1240, 600)))
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "empty.png").write_bytes(b"")
    (docs / "cut.png").write_bytes(full[: len(full) // 2])
    (docs / "junk.jpg").write_bytes(b"not an image at all" * 10)
    (docs / "icon.png").write_bytes(_png(Image.new("L", (32, 32), 0)))
    (docs / "sunset.png").write_bytes(_png(picture))
    (docs / "good.png").write_bytes(full)
    report = Index(tmp_path / "idx", preset="tiny").ingest([docs])
    errors = {Path(f.path).name: f.error for f in report.failed}
    assert report.added == 1 and len(errors) == 5
    assert errors["empty.png"].startswith("file is empty (0 bytes)")
    assert errors["cut.png"].startswith("not a readable image")
    assert errors["junk.jpg"].startswith("not a readable image")
    assert errors["icon.png"] == "image too small to hold text (32×32 px)"
    assert errors["sunset.png"] == "no text found by OCR in the image"
    assert all("\n" not in e for e in errors.values())


def test_doctor_says_whether_scans_can_be_read(tmp_path):
    from rag.doctor import run_checks
    from rag.settings import Settings

    ocr = {c.name: c for c in run_checks(Settings(), tmp_path / "idx")}["ocr"]
    assert ocr.status == "ok" and "tesseract at " in ocr.detail
    missing = Settings().replace(**{"ingest.ocr_command": "/nonexistent/bin/tesseract"})
    ocr = {c.name: c for c in run_checks(missing, tmp_path / "idx")}["ocr"]
    assert ocr.status == "warn" and ocr.fix.startswith("install tesseract-ocr")


def test_ocr_settings_are_checked():
    from rag.errors import ConfigError

    settings = load_settings(env={"RAG_INGEST_OCR": "0", "RAG_INGEST_OCR_DPI": "300"}).settings
    assert OcrOptions.from_settings(settings.ingest) == OcrOptions(enabled=False, dpi=300)
    for key, value, problem in [("ingest.ocr_languages", "eng deu", 'joined by "+"'),
                                ("ingest.ocr_dpi", "30", "between 72 and 600"),
                                ("ingest.ocr_workers", "-1", "between 0 and 64")]:  # fmt: skip
        with pytest.raises(ConfigError, match=re.escape(problem)):
            load_settings(env={}, overrides={key: value})
