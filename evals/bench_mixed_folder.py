"""Ingest of a mixed folder: every kind rag reads, as people keep them, in one run.

Builds a folder from real text (SciFact abstracts) written into each format with the library
that writes it — .docx, .pptx, .xlsx, .csv, .epub, .eml, .mbox, .md, .html — plus the real PDFs
of ../shared/datasets/pdfs, a scanned copy of one of them (its pages rasterised, so the text
must come back by OCR) and a PNG of one page. Then:

  1. loads every file once with its loader (no model), timing each kind;
  2. ingests the folder into a fresh index with the packaged embedder (model load included);
  3. re-ingests it with nothing changed.

    .venv/bin/python evals/bench_mixed_folder.py              # prints a table
    .venv/bin/python evals/bench_mixed_folder.py --out evals/results/mixed-folder.md
"""

from __future__ import annotations

import argparse
import csv
import json
import mailbox
import os
import tempfile
import time
import zipfile
from collections import defaultdict
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
SCIFACT = SHARED / "scifact" / "corpus.jsonl"
PDFS = SHARED / "pdfs"


def abstracts(n: int) -> list[tuple[str, str]]:
    rows = []
    with SCIFACT.open() as handle:
        for line in handle:
            obj = json.loads(line)
            if obj["text"].strip():
                rows.append((obj["title"], obj["text"]))
            if len(rows) == n:
                break
    return rows


def write_docx(path: Path, items: list[tuple[str, str]]) -> None:
    import docx

    document = docx.Document()
    document.add_heading("Collected abstracts", level=1)
    for title, text in items:
        document.add_heading(title[:120], level=2)
        document.add_paragraph(text)
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "Study", "Words"
    for title, text in items:
        cells = table.add_row().cells
        cells[0].text, cells[1].text = title[:60], str(len(text.split()))
    document.save(path)


def write_pptx(path: Path, items: list[tuple[str, str]]) -> None:
    from pptx import Presentation

    deck = Presentation()
    for title, text in items:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title[:100]
        slide.placeholders[1].text = text[:600]
        slide.notes_slide.notes_text_frame.text = text[600:900] or "No further notes."
    deck.save(path)


def write_xlsx(path: Path, items: list[tuple[str, str]]) -> None:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "Studies"
    sheet.append(["Title", "Words", "First sentence"])
    for title, text in items:
        sheet.append([title, len(text.split()), text.split(". ")[0]])
    book.save(path)


def write_csv(path: Path, items: list[tuple[str, str]]) -> None:
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["id", "title", "characters"])
        for i, (title, text) in enumerate(items, start=1):
            out.writerow([i, title, len(text)])


def write_epub(path: Path, items: list[tuple[str, str]]) -> None:
    chapters = "".join(
        f'<item id="c{i}" href="c{i}.xhtml" media-type="application/xhtml+xml"/>'
        for i in range(len(items))
    )
    spine = "".join(f'<itemref idref="c{i}"/>' for i in range(len(items)))
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        z.writestr("META-INF/container.xml", (
            '<?xml version="1.0"?><container version="1.0" '
            'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
            '<rootfile full-path="OEBPS/book.opf" media-type="application/oebps-package+xml"/>'
            "</rootfiles></container>"))  # fmt: skip
        z.writestr("OEBPS/book.opf", (
            '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0" '
            'unique-identifier="id"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/">'
            '<dc:identifier id="id">bench</dc:identifier><dc:title>Abstracts</dc:title>'
            f"<dc:language>en</dc:language></metadata><manifest>{chapters}"
            '<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" '
            f'properties="nav"/></manifest><spine>{spine}</spine></package>'))  # fmt: skip
        links = "".join(f'<li><a href="c{i}.xhtml">{t[:80]}</a></li>'
                        for i, (t, _) in enumerate(items))  # fmt: skip
        z.writestr("OEBPS/nav.xhtml", (
            '<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops">'
            f'<body><nav epub:type="toc"><ol>{links}</ol></nav></body></html>'))  # fmt: skip
        for i, (title, text) in enumerate(items):
            z.writestr(f"OEBPS/c{i}.xhtml", (
                '<html xmlns="http://www.w3.org/1999/xhtml"><body>'
                f"<h1>{title[:80]}</h1><p>{text}</p></body></html>"))  # fmt: skip


def message(i: int, title: str, text: str, attach: bool) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = title[:90]
    msg["From"] = f"author{i}@example.org"
    msg["To"] = "team@example.org"
    msg["Date"] = f"Mon, {1 + i % 28:02d} Jun 2026 09:00:00 +0000"
    msg["Message-ID"] = f"<bench-{i}@example.org>"
    msg.set_content(text)
    if attach:
        msg.add_attachment(f"# {title}\n\n{text}\n".encode(), maintype="text",
                           subtype="markdown", filename=f"abstract-{i}.md")  # fmt: skip
    return msg


def write_scanned(pdf: Path, out_pdf: Path, out_png: Path, pages: int, dpi: int = 150) -> int:
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(str(pdf))
    images = [document[i].render(scale=dpi / 72).to_pil().convert("L")
              for i in range(min(pages, len(document)))]  # fmt: skip
    images[0].save(out_pdf, "PDF", resolution=dpi, save_all=True, append_images=images[1:])
    images[0].save(out_png)
    return len(images)


def build(folder: Path, n: int, scanned_pages: int) -> None:
    items = abstracts(n)
    per = max(1, n // 8)
    groups = [items[i * per : (i + 1) * per] for i in range(8)]
    write_docx(folder / "abstracts.docx", groups[0])
    write_pptx(folder / "talk.pptx", groups[1])
    write_xlsx(folder / "studies.xlsx", groups[2])
    write_csv(folder / "studies.csv", groups[3])
    write_epub(folder / "abstracts.epub", groups[4])
    mail = folder / "mail"
    mail.mkdir()
    for i, (title, text) in enumerate(groups[5]):
        (mail / f"msg-{i}.eml").write_bytes(bytes(message(i, title, text, attach=i % 2 == 0)))
    box = mailbox.mbox(folder / "archive.mbox")
    for i, (title, text) in enumerate(groups[6]):
        box.add(message(100 + i, title, text, attach=i % 3 == 0))
    box.close()
    for i, (title, text) in enumerate(groups[7]):
        if i % 2:
            (folder / f"note-{i}.md").write_text(f"# {title}\n\n{text}\n")
        else:
            (folder / f"page-{i}.html").write_text(
                f"<html><body><nav>Home | About</nav><main><h1>{title}</h1><p>{text}</p>"
                "</main></body></html>")  # fmt: skip
    pdfs = sorted(PDFS.glob("*.pdf"), key=lambda p: -p.stat().st_size)  # the longest first
    for pdf in pdfs:
        (folder / pdf.name).write_bytes(pdf.read_bytes())
    if pdfs and scanned_pages:
        write_scanned(pdfs[0], folder / "scanned.pdf", folder / "scanned-page.png", scanned_pages)


def load_all(folder: Path) -> dict[str, dict]:
    """Load every file with its loader (no model): seconds, files, documents, pages per kind."""
    from rag.discover import discover
    from rag.errors import LoaderError
    from rag.loaders import CONTAINERS, load_document

    kinds: dict[str, dict] = defaultdict(lambda: defaultdict(float))
    for source in discover([folder]).files:
        started = time.perf_counter()
        row = kinds[source.kind]
        try:
            if source.kind in CONTAINERS:
                docs = [p.load() for p in CONTAINERS[source.kind](Path(source.path), source.path)
                        if not isinstance(p, LoaderError)]  # fmt: skip
            else:
                docs = [load_document(source.path, source.kind, Path(source.path).read_bytes())]
        except LoaderError as exc:
            row["failed"] += 1
            print(f"failed: {exc}")
            docs = []
        row["seconds"] += time.perf_counter() - started
        row["files"] += 1
        row["documents"] += len(docs)
        row["ocr_pages"] += sum(len(d.ocr_pages) for d in docs)
        row["bytes"] += os.path.getsize(source.path)
    return kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--abstracts", type=int, default=400, help="SciFact abstracts used")
    parser.add_argument("--scanned-pages", type=int, default=4)
    parser.add_argument("--out", type=Path, help="also write the table as markdown here")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from rag import Index
    from rag.loaders import kind_of

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "mixed"
        folder.mkdir()
        build(folder, args.abstracts, args.scanned_pages)
        kinds = load_all(folder)
        started = time.perf_counter()
        index = Index(Path(tmp) / "idx")
        report = index.ingest([folder])
        wall = time.perf_counter() - started
        chunks_by_kind: dict[str, int] = defaultdict(int)
        docs_by_kind: dict[str, int] = defaultdict(int)
        for row in index.documents():  # by the file it came from: attachments with their mail
            kind = kind_of(Path(row.path.split("#", 1)[0])) or row.kind
            chunks_by_kind[kind] += row.chunks
            docs_by_kind[kind] += 1
        started = time.perf_counter()
        again = index.ingest([folder])
        rerun = time.perf_counter() - started
    lines = [
        f"Mixed folder: {sum(int(k['files']) for k in kinds.values())} files, "
        f"{report.added} documents indexed, {report.chunks} chunks, {len(report.failed)} failed, "
        f"load average {os.getloadavg()[0]:.1f}",
        "",
        "| kind | files | MB | documents (loader) | indexed documents (with attachments) | chunks "
        "| OCR'd pages | load s (no model) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind in sorted(kinds):
        k = kinds[kind]
        lines.append(
            f"| {kind} | {int(k['files'])} | {k['bytes'] / 2**20:.2f} | {int(k['documents'])} | "
            f"{docs_by_kind.get(kind, 0)} | {chunks_by_kind.get(kind, 0)} | {int(k['ocr_pages'])} "
            f"| {k['seconds']:.2f} |"
        )
    lines += [
        "",
        f"Ingest (fresh index, model load included): **{wall:.1f} s**, "
        f"{report.chunks / wall:.1f} chunks/s; re-ingest with nothing changed: {rerun:.2f} s "
        f"({again.unchanged} unchanged).",
        "",
        "Command: `.venv/bin/python evals/bench_mixed_folder.py"
        + (f" --abstracts {args.abstracts}" if args.abstracts != 400 else "")
        + "`",
    ]
    for failure in report.failed:
        lines.append(f"- failed: {failure.path}: {failure.error}")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
