"""Word, PowerPoint and EPUB loaders: heading paths, slide pages, speaker notes, table rows,
chapter order and titles; and one clear line for each file they cannot read."""

from __future__ import annotations

import io
import warnings
import zipfile
from pathlib import Path

import pytest

from rag import Index
from rag.errors import LoaderError
from rag.loaders import Document, load_document

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def texts_by_heading(doc: Document) -> list[tuple[tuple[str, ...], str]]:
    return [(b.headings, doc.text[b.start : b.end]) for b in doc.blocks]


# --- builders: real files written by the libraries that write the format ----------------------


def docx_bytes() -> bytes:
    import docx
    from docx.shared import Pt

    document = docx.Document()
    document.add_heading("Field Guide", 0)
    document.add_paragraph("A guide to the wildlife of the marsh.")
    document.add_heading("Birds", 1)
    document.add_paragraph("Birds nest in the reeds.")
    table = document.add_table(rows=3, cols=3)
    rows = [["Species", "Wingspan", "Diet"], ["Heron", "185 cm", "fish"],
            ["Bittern", "130 cm", "frogs"]]  # fmt: skip
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    document.add_paragraph("After the table, more about birds.")
    document.add_heading("Owls", 2)
    document.add_paragraph("The barn owl Strigiformis Quillon hunts voles at dusk.")
    custom = document.styles.add_style("Chapter Head", 1)  # a paragraph style based on Heading 1
    custom.base_style = document.styles["Heading 1"]
    custom.font.size = Pt(20)
    document.add_paragraph("Insects", style="Chapter Head")
    document.add_paragraph("Dragonflies patrol the open water.")
    return _save(document)


def pptx_bytes() -> bytes:
    from pptx import Presentation
    from pptx.util import Inches

    prs = Presentation()
    first = prs.slides.add_slide(prs.slide_layouts[0])
    first.shapes.title.text = "Quarterly Review"
    first.placeholders[1].text = "Prepared by the finance team"
    budget = prs.slides.add_slide(prs.slide_layouts[5])  # title only
    budget.shapes.title.text = "Budget"
    low = budget.shapes.add_textbox(Inches(1), Inches(5.5), Inches(4), Inches(1))
    low.text_frame.text = "Bottom box: travel is frozen."
    high = budget.shapes.add_textbox(Inches(1), Inches(1.8), Inches(4), Inches(1))
    high.text_frame.text = "Top box: the Zephyrine fund holds 4.2 million."
    cells = budget.shapes.add_table(3, 2, Inches(1), Inches(3), Inches(6), Inches(1.5)).table
    for r, row in enumerate([["Team", "Spend"], ["Research", "1.1M"], ["Sales", "0.7M"]]):
        for c, value in enumerate(row):
            cells.cell(r, c).text = value
    budget.notes_slide.notes_text_frame.text = "Remind them the Halvorsen audit closes Friday."
    prs.slides.add_slide(prs.slide_layouts[6])  # blank: no text at all
    divider = prs.slides.add_slide(prs.slide_layouts[5])
    divider.shapes.title.text = "Questions"
    return _save(prs)


def epub_bytes() -> bytes:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("marsh-tales")
    book.set_title("Marsh Tales")
    book.set_language("en")
    book.add_author("Ann Author")
    harbour = epub.EpubHtml(title="The Harbour", file_name="text/harbour.xhtml", lang="en")
    harbour.content = (
        "<h1>The Harbour</h1><p>Boats rock at their moorings.</p>"
        "<h2>Night</h2><p>The lighthouse keeper Bartholomew Quennell trims the wick.</p>"
    )
    more = epub.EpubHtml(title="x", file_name="text/harbour-2.xhtml", lang="en")
    more.content = "<p>At dawn the fishing fleet Orvandel sets out.</p>"  # continues the chapter
    mountain = epub.EpubHtml(title="The Mountain", file_name="text/mountain.xhtml", lang="en")
    mountain.content = "<h1>Chapter One</h1><p>Snow lies on the Kelderhorn all year.</p>"
    for item in (harbour, more, mountain):
        book.add_item(item)
    book.toc = (epub.Link("text/mountain.xhtml", "The Mountain", "m"),
                epub.Link("text/harbour.xhtml", "The Harbour", "h"))  # fmt: skip
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", mountain, harbour, more]  # reading order differs from the file order
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        epub.write_epub(buffer, book)
    return buffer.getvalue()


def epub2_bytes(encryption: str | None = None) -> bytes:
    """A hand-built EPUB 2 book: chapter titles only in toc.ncx."""
    opf = """<?xml version="1.0"?>
<package xmlns="http://www.idpf.org/2007/opf" version="2.0" unique-identifier="id">
 <metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Old Book</dc:title></metadata>
 <manifest>
  <item id="c1" href="one.html" media-type="application/xhtml+xml"/>
  <item id="c2" href="two%20b.html" media-type="application/xhtml+xml"/>
  <item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/>
 </manifest>
 <spine toc="ncx"><itemref idref="c1"/><itemref idref="c2"/></spine>
</package>"""
    ncx = """<?xml version="1.0"?>
<ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" version="2005-1"><navMap>
 <navPoint id="a"><navLabel><text>Arrival</text></navLabel><content src="one.html"/></navPoint>
 <navPoint id="b"><navLabel><text>Departure</text></navLabel>
  <content src="two%20b.html#top"/></navPoint>
</navMap></ncx>"""
    container = """<?xml version="1.0"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
 <rootfiles><rootfile full-path="OEBPS/content.opf"
   media-type="application/oebps-package+xml"/></rootfiles></container>"""
    files = {
        "mimetype": "application/epub+zip",
        "META-INF/container.xml": container,
        "OEBPS/content.opf": opf,
        "OEBPS/toc.ncx": ncx,
        "OEBPS/one.html": "<html><body><p>The train reached Vellmoor at noon.</p></body></html>",
        "OEBPS/two b.html": "<html><body><p>We left on the night ferry.</p></body></html>",
    }
    if encryption is not None:
        files["META-INF/encryption.xml"] = encryption
    return _zip(files)


def _encryption_xml(algorithm: str, uri: str) -> str:
    return f"""<?xml version="1.0"?>
<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container"
  xmlns:enc="http://www.w3.org/2001/04/xmlenc#">
 <enc:EncryptedData><enc:EncryptionMethod Algorithm="{algorithm}"/>
  <enc:CipherData><enc:CipherReference URI="{uri}"/></enc:CipherData></enc:EncryptedData>
</encryption>"""


def password_protected_docx() -> bytes:
    """What Word writes for a password-protected file: an OLE container, not a zip."""
    names = "".join(("EncryptionInfo", "EncryptedPackage")).encode("utf-16-le")
    return OLE_MAGIC + b"\x00" * 504 + names + bytes(range(256)) * 8


def damaged(data: bytes, member: str) -> bytes:
    """The zip with the compressed bytes of one member overwritten (its directory intact)."""
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(member)
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 8
    return data[:start] + bytes(64) + data[start + 64 :]


def _save(document: object) -> bytes:
    buffer = io.BytesIO()
    document.save(buffer)  # type: ignore[attr-defined]
    return buffer.getvalue()


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


# --- Word -----------------------------------------------------------------------------------


def test_docx_paragraphs_and_table_rows_keep_heading_path_and_document_order():
    doc = load_document("guide.docx", "docx", docx_bytes())
    found = texts_by_heading(doc)
    assert found == [
        (("Field Guide",), "A guide to the wildlife of the marsh."),
        (("Field Guide", "Birds"), "Birds nest in the reeds."),
        (("Field Guide", "Birds"), "Species: Heron; Wingspan: 185 cm; Diet: fish"),
        (("Field Guide", "Birds"), "Species: Bittern; Wingspan: 130 cm; Diet: frogs"),
        (("Field Guide", "Birds"), "After the table, more about birds."),
        (
            ("Field Guide", "Birds", "Owls"),
            "The barn owl Strigiformis Quillon hunts voles at dusk.",
        ),
        (("Field Guide", "Insects"), "Dragonflies patrol the open water."),  # style based on H1
    ]
    assert doc.kind == "docx" and doc.pages is None and doc.meta.get("author")


def test_docx_outline_level_on_a_plain_paragraph_makes_a_heading():
    import docx
    from docx.oxml import parse_xml

    document = docx.Document()
    heading = document.add_paragraph("Appendix")
    w = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
    heading._p.get_or_add_pPr().append(parse_xml(f'<w:outlineLvl {w} w:val="0"/>'))
    document.add_paragraph("Extra tables live here.")
    doc = load_document("a.docx", "docx", _save(document))
    assert texts_by_heading(doc) == [(("Appendix",), "Extra tables live here.")]


def test_docx_table_without_a_header_row_joins_cells_and_reads_merged_cells_once():
    import docx

    document = docx.Document()
    table = document.add_table(rows=2, cols=3)
    look = table._tbl.tblPr.find(
        "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}tblLook"
    )
    for attr in list(look.attrib):
        del look.attrib[attr]  # no header row
    table.cell(0, 0).text, table.cell(0, 1).text, table.cell(0, 2).text = "1", "2", "3"
    merged = table.cell(1, 0).merge(table.cell(1, 1))
    merged.text = "wide cell"
    table.cell(1, 2).text = "end"
    doc = load_document("t.docx", "docx", _save(document))
    assert [text for _, text in texts_by_heading(doc)] == ["1 | 2 | 3", "wide cell | end"]


# --- PowerPoint -----------------------------------------------------------------------------


def test_pptx_one_page_per_slide_with_title_heading_in_reading_order():
    doc = load_document("review.pptx", "pptx", pptx_bytes())
    assert doc.kind == "pptx" and doc.pages == 4 and doc.empty_pages == [3]
    by_slide = [(b.page, b.headings, doc.text[b.start : b.end]) for b in doc.blocks]
    assert by_slide == [
        (1, ("Quarterly Review",), "Prepared by the finance team"),
        (2, ("Budget",), "Top box: the Zephyrine fund holds 4.2 million."),
        (2, ("Budget",), "Team: Research; Spend: 1.1M"),
        (2, ("Budget",), "Team: Sales; Spend: 0.7M"),
        (2, ("Budget",), "Bottom box: travel is frozen."),
        (2, ("Budget",), "Speaker notes: Remind them the Halvorsen audit closes Friday."),
        (4, ("Questions",), "Questions"),  # a title-only slide stays findable
    ]


def test_pptx_footer_date_and_slide_number_placeholders_are_left_out():
    import copy

    from pptx import Presentation

    prs = Presentation()
    layout = prs.slide_layouts[1]
    slide = prs.slides.add_slide(layout)
    slide.shapes.title.text = "Roadmap"
    slide.placeholders[1].text = "Ship the Vantor release."
    for placeholder in list(layout.placeholders)[2:]:  # date, footer, slide number
        slide.shapes._spTree.append(copy.deepcopy(placeholder._element))
    for shape in list(slide.shapes)[2:]:
        shape.text_frame.text = "Confidential"
    doc = load_document("r.pptx", "pptx", _save(prs))
    assert "Confidential" not in doc.text and "Ship the Vantor release." in doc.text


# --- EPUB -----------------------------------------------------------------------------------


def test_epub_chapters_follow_the_spine_under_their_toc_titles():
    doc = load_document("tales.epub", "epub", epub_bytes())
    assert doc.meta == {"title": "Marsh Tales", "author": "Ann Author"}
    assert texts_by_heading(doc) == [
        (("The Mountain", "Chapter One"), "Snow lies on the Kelderhorn all year."),
        (("The Harbour",), "Boats rock at their moorings."),  # the h1 repeating the title: once
        (("The Harbour", "Night"), "The lighthouse keeper Bartholomew Quennell trims the wick."),
        (("The Harbour",), "At dawn the fishing fleet Orvandel sets out."),  # split chapter
    ]


def test_epub2_titles_come_from_the_ncx():
    doc = load_document("old.epub", "epub", epub2_bytes())
    assert texts_by_heading(doc) == [
        (("Arrival",), "The train reached Vellmoor at noon."),
        (("Departure",), "We left on the night ferry."),
    ]


def test_epub_with_only_obfuscated_fonts_is_not_drm():
    font_only = _encryption_xml("http://www.idpf.org/2008/embedding", "OEBPS/font.otf")
    doc = load_document("fonts.epub", "epub", epub2_bytes(encryption=font_only))
    assert len(doc.blocks) == 2


# --- files the loaders cannot read: one clear line each ---------------------------------------


def _no_text_docx() -> bytes:
    import docx

    return _save(docx.Document())


def _no_text_pptx() -> bytes:
    from pptx import Presentation

    prs = Presentation()
    prs.slides.add_slide(prs.slide_layouts[6])
    return _save(prs)


DRM = _encryption_xml("http://www.w3.org/2001/04/xmlenc#aes128-cbc", "OEBPS/one.html")
BAD_INPUTS = [
    ("corrupt.docx", lambda: docx_bytes()[:300], "not a valid .docx (corrupt or not a zip file)"),
    ("notzip.pptx", lambda: b"just some text, not a zip", "not a valid .pptx (corrupt"),
    ("corrupt.epub", lambda: epub_bytes()[:-200], "not a valid .epub"),
    ("damaged.docx", lambda: damaged(docx_bytes(), "word/document.xml"), "corrupt zip data"),
    ("damaged.pptx", lambda: damaged(pptx_bytes(), "ppt/slides/slide2.xml"), "corrupt zip"),
    ("damaged.epub", lambda: damaged(epub_bytes(), "EPUB/text/harbour.xhtml"), "corrupt zip"),
    ("locked.docx", password_protected_docx, "is password-protected (encrypted); save an"),
    ("old.pptx", lambda: OLE_MAGIC + bytes(1000), "PowerPoint 97–2003 (.ppt) file or password"),
    ("blank.docx", _no_text_docx, "no text found in the document"),
    ("blank.pptx", _no_text_pptx, "no text found in the presentation"),
    ("drm.epub", lambda: epub2_bytes(encryption=DRM), "is DRM-protected"),
    ("deck.docx", pptx_bytes, "is not a Word document"),
    ("~$guide.docx", lambda: b"\x05Alice" + bytes(157), "is an Office lock file"),
]


@pytest.mark.parametrize(("name", "make", "message"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_unreadable_files_give_one_clear_line(name, make, message):
    kind = name.rsplit(".", 1)[1]
    with pytest.raises(LoaderError) as caught:
        load_document(f"/docs/{name}", kind, make())
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert str(caught.value).startswith(f"/docs/{name}: ")


def test_a_zip_that_unpacks_past_the_limit_is_refused_before_it_is_read(monkeypatch):
    monkeypatch.setattr("rag.loaders.office.MAX_UNPACKED_BYTES", 10_000)
    with pytest.raises(LoaderError, match=r"MB limit for one document \(a zip bomb\?\)"):
        load_document("big.docx", "docx", docx_bytes())


# --- end to end: ingest a folder, search, cite ------------------------------------------------


@pytest.mark.model
def test_ingest_and_search_cite_the_slide_heading_and_chapter(tmp_path: Path, embedder):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "guide.docx").write_bytes(docx_bytes())
    (folder / "review.pptx").write_bytes(pptx_bytes())
    (folder / "tales.epub").write_bytes(epub_bytes())
    (folder / "locked.docx").write_bytes(password_protected_docx())
    (folder / "broken.pptx").write_bytes(pptx_bytes()[:500])
    (folder / "drm.epub").write_bytes(epub2_bytes(encryption=DRM))
    (folder / "empty.docx").write_bytes(b"")
    index = Index(tmp_path / "idx", preset="tiny", embedder=embedder)
    report = index.ingest([folder])

    errors = {Path(f.path).name: f.error for f in report.failed}
    assert sorted(errors) == ["broken.pptx", "drm.epub", "empty.docx", "locked.docx"]
    assert "password-protected" in errors["locked.docx"]
    assert "not a valid .pptx" in errors["broken.pptx"]
    assert "DRM-protected" in errors["drm.epub"]
    assert "empty" in errors["empty.docx"]
    assert report.added == 3

    def top(query: str):
        hit = index.search(query, k=3)[0]
        return Path(hit.path).name, hit.kind, hit.page, hit.heading, hit.text

    name, kind, page, heading, text = top("Strigiformis Quillon barn owl")
    assert (name, kind, page, heading) == ("guide.docx", "docx", None, "Field Guide > Birds > Owls")
    assert top("Bittern wingspan")[3] == "Field Guide > Birds"
    name, kind, page, heading, text = top("Zephyrine fund")
    assert (name, kind, page, heading) == ("review.pptx", "pptx", 2, "Budget")
    name, kind, page, heading, text = top("Halvorsen audit")
    assert (name, page) == ("review.pptx", 2) and "Speaker notes: Remind them" in text
    name, kind, page, heading, text = top("lighthouse keeper Bartholomew Quennell")
    assert (name, kind, heading) == ("tales.epub", "epub", "The Harbour > Night")
    assert top("Kelderhorn snow")[3] == "The Mountain > Chapter One"


def test_office_lock_files_in_a_folder_are_skipped_not_failed(tmp_path):
    from rag.discover import discover

    (tmp_path / "guide.docx").write_bytes(docx_bytes())
    (tmp_path / "~$guide.docx").write_bytes(b"\x05Alice" + bytes(157))
    found = discover([tmp_path])
    assert [Path(f.path).name for f in found.files] == ["guide.docx"]
    assert [Path(p).name for p in found.skipped] == ["~$guide.docx"]
