"""Loaders: visible text, heading paths, PDF pages, encodings, and clear errors on bad input."""

from __future__ import annotations

import io
import re

import pytest

from rag.errors import LoaderError
from rag.loaders import decode_text, html_to_text, load_document, markdown_blocks
from tests.conftest import DEMO


def test_markdown_blocks_carry_heading_path_and_ignore_fenced_hashes():
    text = (
        "# Guide\n\nIntro.\n\n## Setup\n\nStep one.\n\n```\n# not a heading\n```\n\n## Use\n\nGo."
    )
    blocks = markdown_blocks(text)
    found = [(text[b.start : b.end], b.headings) for b in blocks]
    assert ("Intro.", ("Guide",)) in found
    assert ("Step one.", ("Guide", "Setup")) in found
    assert ("```\n# not a heading\n```", ("Guide", "Setup")) in found
    assert ("Go.", ("Guide", "Use")) in found


def test_html_keeps_main_content_and_drops_scripts_styles_and_chrome():
    html = (DEMO / "product-page.html").read_text()
    text = html_to_text(html)
    assert "Kestrel K2" in text
    for marker in ("dataLayer", "addToBasket", "font-family", "<"):
        assert marker not in text
    doc = load_document("page.html", "html", html.encode())
    assert any(b.headings for b in doc.blocks)


def test_html_without_main_drops_nav_header_footer():
    html = (
        "<html><head><title>T</title><style>p{color:red}</style></head><body>"
        "<nav>Home | About</nav><header>Site banner</header><h1>Title</h1><p>Body text.</p>"
        "<script>var secret = 1;</script><footer>Copyright</footer></body></html>"
    )
    text = html_to_text(html)
    assert "Body text." in text and "# Title" in text
    for chrome in ("Home | About", "Site banner", "Copyright", "secret", "color:red"):
        assert chrome not in text


def test_pdf_blocks_carry_one_based_page_numbers():
    data = (DEMO / "kestrel-k2-service-manual.pdf").read_bytes()
    doc = load_document("manual.pdf", "pdf", data)
    assert doc.pages == 5
    pages_with = {b.page for b in doc.blocks if "38 microamps" in doc.text[b.start : b.end]}
    assert pages_with == {3}


def _pdf_bytes(pages: list[str], password: str | None = None) -> bytes:
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    c = canvas.Canvas(buffer, encrypt=password)
    for text in pages:
        if text:
            c.drawString(72, 720, text)
        c.showPage()
    c.save()
    return buffer.getvalue()


def test_pdf_warns_naming_pages_without_text():
    doc = load_document("scan.pdf", "pdf", _pdf_bytes(["First page text.", "", "Third."]))
    assert any("page(s) 2" in w for w in doc.warnings)


def test_encrypted_pdf_is_refused_with_a_hint():
    with pytest.raises(LoaderError, match="encrypted"):
        load_document("secret.pdf", "pdf", _pdf_bytes(["Hidden."], password="s3cret"))


def test_corrupt_pdf_names_the_file():
    data = _pdf_bytes(["Some text."])[:300]
    with pytest.raises(LoaderError, match=r"^broken\.pdf: not a readable PDF"):
        load_document("broken.pdf", "pdf", data)


def test_empty_file_is_an_error():
    with pytest.raises(LoaderError, match="empty"):
        load_document("empty.txt", "txt", b"")


def test_binary_data_named_txt_is_refused():
    with pytest.raises(LoaderError, match="binary"):
        load_document("image.txt", "txt", bytes(range(256)) * 10)


def test_legacy_encoding_is_detected_and_reported():
    data = "Le café coûte trois euros. Très bien, merci à vous.".encode("cp1252")
    text, warning = decode_text("menu.txt", data)
    assert "café" in text and "à vous" in text
    assert warning is not None and "not UTF-8" in warning


def test_undecodable_bytes_give_a_clear_error():
    import random

    rng = random.Random(7)
    data = bytes(rng.randrange(1, 256) for _ in range(4000))  # invalid UTF-8, no NUL bytes
    with pytest.raises(LoaderError, match="menu.txt: .*(encoding|binary)"):
        load_document("menu.txt", "txt", data)


def test_real_pdf_extraction_recalls_pdftotext_words(shared):
    folder = shared / "datasets" / "pdfs"
    doc = load_document("fr.pdf", "pdf", (folder / "federal-register-2020-17221.pdf").read_bytes())
    reference = (
        folder / "reference_text" / "federal-register-2020-17221.pdftotext.txt"
    ).read_text()
    ours = set(re.findall(r"[a-z0-9]+", doc.text.lower()))
    words = re.findall(r"[a-z0-9]+", reference.lower())
    recall = sum(w in ours for w in words) / len(words)
    assert doc.pages == 15
    assert recall >= 0.95
