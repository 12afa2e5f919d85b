"""OCR benchmark: pages per second and accuracy of `load_pdf` on scanned PDFs, by DPI and workers.

    .venv/bin/python evals/bench_ocr.py                # 10 generated pages + real pages
    .venv/bin/python evals/bench_ocr.py --pages 4      # a quick look

(1) Speed: a generated image-only PDF of `--pages` pages of real prose (the Federal Register
text of /work/shared/datasets/pdfs, typeset at 11 pt, "scanned" at 300 dpi: a 0.3° skew, JPEG),
OCR'd by `load_pdf` at each render DPI and number of workers; character accuracy against the
typeset text. (2) Real pages: each page of the shared PDFs is rasterised the same way into a
"scanned" copy, OCR'd, and compared with the original's text layer (pypdf).

Character accuracy: characters of the reference matched in order (difflib, whitespace
collapsed) / reference characters. Word recall: the share of the reference's word tokens
(lowercased, multiset) found in the OCR text — what search needs. Writes evals/results/ocr.md.
"""

from __future__ import annotations

import argparse
import collections
import difflib
import io
import os
import platform
import re
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PDFS = ROOT.parent / "shared" / "datasets" / "pdfs"
PROSE = PDFS / "reference_text" / "federal-register-2020-17221.pdftotext.txt"
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf")
SCAN_DPI = 300
RESULTS = ROOT / "evals" / "results" / "ocr.md"


def scanned(image):  # type: ignore[no-untyped-def]
    """Make a clean render look scanned: a slight skew, grayscale, JPEG at quality 75."""
    skewed = image.convert("L").rotate(0.3, expand=False, fillcolor=255)
    buffer = io.BytesIO()
    skewed.save(buffer, "JPEG", quality=75)
    buffer.seek(0)
    from PIL import Image

    return Image.open(buffer)


def image_pdf(images: list) -> bytes:  # type: ignore[type-arg]
    buffer = io.BytesIO()
    images[0].save(buffer, "PDF", resolution=SCAN_DPI, save_all=True, append_images=images[1:])
    return buffer.getvalue()


def generated_pages(count: int) -> tuple[bytes, list[str]]:
    """An image-only Letter PDF of `count` pages of prose, and the text typed on each page."""
    from PIL import Image, ImageDraw, ImageFont

    words = re.sub(r"\s+", " ", PROSE.read_text(encoding="utf-8")).split(" ")
    font = ImageFont.truetype(str(FONT), 46)  # 11 pt at 300 dpi
    width, height = int(8.5 * SCAN_DPI), 11 * SCAN_DPI
    images, texts, pos = [], [], 0
    for _ in range(count):
        image = Image.new("L", (width, height), 255)
        draw = ImageDraw.Draw(image)
        lines: list[str] = []
        chunk = " ".join(words[pos : pos + 450])
        pos = (pos + 450) % max(1, len(words) - 450)
        for paragraph in textwrap.wrap(chunk, 900):
            lines.extend(textwrap.wrap(paragraph, 78) + [""])
        y = 300
        for line in lines[:52]:
            draw.text((300, y), line, font=font, fill=0)
            y += 60
        images.append(scanned(image))
        texts.append(" ".join(lines[:52]))
    return image_pdf(images), texts


def real_pages() -> list[tuple[str, bytes, str]]:
    """(name, image-only one-page PDF, text layer) for pages of the shared PDFs."""
    import pypdfium2 as pdfium
    from pypdf import PdfReader

    chosen = [("scotus-transcript-p1", 0), ("federal-register-2020-17221", 0),
              ("federal-register-2020-17221", 4), ("nics-background-checks-2015-11", 0),
              ("ag-energy-round-up-2017-02-24", 0)]  # fmt: skip
    pages = []
    for stem, index in chosen:
        path = PDFS / f"{stem}.pdf"
        if not path.is_file():
            continue
        layer = PdfReader(path).pages[index].extract_text() or ""
        pdf = pdfium.PdfDocument(path)
        image = pdf[index].render(scale=SCAN_DPI / 72, grayscale=True).to_pil()
        pages.append((f"{stem} p{index + 1}", image_pdf([scanned(image)]), layer))
    return pages


def char_accuracy(reference: str, got: str) -> float:
    ref, hyp = " ".join(reference.split()), " ".join(got.split())
    matcher = difflib.SequenceMatcher(None, ref, hyp, autojunk=False)
    return sum(b.size for b in matcher.get_matching_blocks()) / max(1, len(ref))


def word_recall(reference: str, got: str) -> float:
    ref = collections.Counter(re.findall(r"\w+", reference.lower()))
    hyp = collections.Counter(re.findall(r"\w+", got.lower()))
    return sum((ref & hyp).values()) / max(1, sum(ref.values()))


def ocr_pdf(data: bytes, dpi: int, workers: int) -> tuple[float, list[str]]:
    """Seconds to OCR the PDF with `load_pdf`, and each page's text."""
    from rag.loaders.ocr import OcrOptions
    from rag.loaders.pdf import load_pdf

    started = time.perf_counter()
    doc = load_pdf("bench.pdf", data, OcrOptions(dpi=dpi, workers=workers))
    seconds = time.perf_counter() - started
    texts = [""] * (doc.pages or 0)
    for block in doc.blocks:
        texts[(block.page or 1) - 1] += doc.text[block.start : block.end] + "\n"
    return seconds, texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=10)
    parser.add_argument("--dpis", default="150,200,300")
    parser.add_argument("--workers", default="1,2,3")
    args = parser.parse_args()
    dpis = [int(d) for d in args.dpis.split(",")]
    workers = [int(w) for w in args.workers.split(",")]
    load_before = os.getloadavg()

    data, truth = generated_pages(args.pages)
    speed_rows = []
    runs = [(200, w) for w in workers] + [(d, 0) for d in dpis if d != 200]
    for dpi, count in runs:
        from rag.loaders.ocr import OcrOptions

        shown = count or OcrOptions().worker_count()
        seconds, texts = ocr_pdf(data, dpi, count)
        acc = sum(char_accuracy(t, h) for t, h in zip(truth, texts, strict=True)) / len(truth)
        rec = sum(word_recall(t, h) for t, h in zip(truth, texts, strict=True)) / len(truth)
        speed_rows.append((dpi, shown, seconds, args.pages / seconds, acc, rec))
        print(f"generated dpi={dpi} workers={shown}: {seconds:.1f} s, {acc:.3f}, {rec:.3f}")

    real_rows = []
    for name, pdf, layer in real_pages():
        for dpi in dpis:
            seconds, texts = ocr_pdf(pdf, dpi, 0)
            got = "\n".join(texts)
            real_rows.append((name, dpi, seconds, char_accuracy(layer, got),
                              word_recall(layer, got), len(" ".join(layer.split()))))  # fmt: skip
            print(f"{name} dpi={dpi}: {seconds:.1f} s, {real_rows[-1][3]:.3f}")
    load_after = os.getloadavg()

    command = "PYTHONPATH=. .venv/bin/python evals/bench_ocr.py" + (
        f" --pages {args.pages}" if args.pages != 10 else ""
    )
    lines = [
        "# OCR speed and accuracy (Tesseract via rag.loaders.ocr)",
        "",
        f"Command: `{command}`  ",
        f"Machine: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), shared; "
        f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after.  ",
        f"Tesseract: {_tesseract_version()}, `OMP_THREAD_LIMIT=1` per page, language eng.",
        "",
        f"## Speed: {args.pages} generated scanned pages (11 pt prose, 300 dpi scan, JPEG, 0.3° skew)",
        "",
        "| render dpi | workers | seconds | pages/s | char accuracy | word recall |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for dpi, count, seconds, rate, acc, rec in speed_rows:
        lines.append(f"| {dpi} | {count} | {seconds:.1f} | {rate:.2f} | {acc:.3f} | {rec:.3f} |")
    lines += [
        "",
        "## Real pages, rasterised at 300 dpi into a 'scanned' copy, against their text layer",
        "",
        "| page | render dpi | seconds | char accuracy | word recall | reference chars |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, dpi, seconds, acc, rec, chars in real_rows:
        lines.append(f"| {name} | {dpi} | {seconds:.1f} | {acc:.3f} | {rec:.3f} | {chars} |")
    lines += [
        "",
        "Character accuracy is order-sensitive (a table or columns read in another order than",
        "the text layer count as misses); word recall is not.",
        "",
    ]
    RESULTS.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    print(f"wrote {RESULTS.relative_to(ROOT)}")


def _tesseract_version() -> str:
    import subprocess

    try:
        out = subprocess.run(["tesseract", "--version"], capture_output=True, text=True).stdout
    except OSError:
        return "not installed"
    return out.splitlines()[0] if out else "unknown"


if __name__ == "__main__":
    main()
