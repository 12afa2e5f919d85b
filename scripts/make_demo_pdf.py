"""Generate the demo corpus PDF: the fictional Kestrel K2 service manual.

Each section starts on its own page, so a fact belongs to exactly one page:

    page 1  document number, tools, ESD precautions
    page 2  sensor array disassembly and fastener torques
    page 3  electrical test points and sleep current
    page 4  firmware reflashing (service header J5) and console service mode
    page 5  maintenance schedule and revision history

The output is byte-for-byte reproducible (reportlab ``invariant=1``).

Usage::

    .venv/bin/python scripts/make_demo_pdf.py [OUTPUT]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import StyleSheet1, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    Flowable,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

DEFAULT_OUTPUT = (
    Path(__file__).resolve().parents[1] / "corpora" / "demo" / "kestrel-k2-service-manual.pdf"
)
TITLE = "Kestrel K2 Service Manual"

TABLE_STYLE = TableStyle(
    [
        ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
        ("FONTSIZE", (0, 0), (-1, -1), 9),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dceef7")),
        ("GRID", (0, 0), (-1, -1), 0.5, colors.HexColor("#8aa3b3")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]
)


def _table(rows: list[list[str]], widths: list[float]) -> Table:
    """Return a gridded table whose first row is the header."""
    table = Table(rows, colWidths=[w * mm for w in widths], repeatRows=1)
    table.setStyle(TABLE_STYLE)
    return table


def _page_1(styles: StyleSheet1) -> list[Flowable]:
    """Return the title page: scope, tools and ESD precautions."""
    body, h1, h2 = styles["BodyText"], styles["Title"], styles["Heading2"]
    return [
        Paragraph(TITLE, h1),
        Paragraph(
            "Document number ASM-K2-004, revision C, April 2025. "
            "For Aldermoor authorised service partners.",
            body,
        ),
        Paragraph("1. Scope", h2),
        Paragraph(
            "This manual covers the repair of the Kestrel K2 (K2-100) and Kestrel K2 Plus "
            "(K2-150): the SA-2 and SA-3 sensor arrays and the K2-CON-01 console. It describes "
            "procedures that need the sensor array to be opened. Opening the array outside an "
            "authorised service centre voids the warranty.",
            body,
        ),
        Paragraph("2. Tools required", h2),
        Paragraph(
            "Phillips PH1 screwdriver; Torx T10 screwdriver; 2.5 mm hex key; torque "
            "screwdriver adjustable from 0.2 to 1.2 N·m; digital multimeter; USB-to-UART "
            "adapter with 3.3 V logic levels; ESD wrist strap and mat.",
            body,
        ),
        Paragraph("3. ESD precautions", h2),
        Paragraph(
            "The sensor array main board and the temperature and humidity module are sensitive "
            "to electrostatic discharge. Always work on a grounded ESD mat while wearing a wrist "
            "strap. Hold the temperature and humidity module by its edges and never touch the "
            "white membrane filter over the sensing element: skin oils on the filter cause "
            "permanent humidity errors.",
            body,
        ),
        Paragraph("4. Before you start", h2),
        Paragraph(
            "Record the console serial number (K2A- followed by eight digits) and the console "
            "and sensor array firmware versions in the service log. Remove both AA batteries "
            "from the array and cover the solar panel before opening the housing.",
            body,
        ),
    ]


def _page_2(styles: StyleSheet1) -> list[Flowable]:
    """Return the sensor array disassembly page with the torque table."""
    body, h1, h2 = styles["BodyText"], styles["Heading1"], styles["Heading2"]
    return [
        Paragraph("5. Sensor array disassembly", h1),
        Paragraph("5.1 Radiation shield", h2),
        Paragraph(
            "The eight-plate radiation shield is held by three Torx T10 screws on the underside "
            "of the array. Remove the screws and lower the shield straight down. On reassembly "
            "tighten each screw to 0.6 N·m. Overtightening cracks the lowest plate.",
            body,
        ),
        Paragraph("5.2 Temperature and humidity module", h2),
        Paragraph(
            "The module (K2-THM-11) plugs into a four-pin socket inside the shield mount. Pull "
            "it straight out by its edges. After fitting a new module, the console shows its "
            "readings within two transmissions; no calibration is needed because each module "
            "carries its own factory calibration.",
            body,
        ),
        Paragraph("5.3 Anemometer cups and bearings", h2),
        Paragraph(
            "The cup set is fixed to the shaft by one set screw. Loosen it with the 2.5 mm hex "
            "key and lift the cups off. Refit with the screw against the flat on the shaft and "
            "tighten it to 0.4 N·m. The shaft runs in two sealed bearings supplied as kit "
            "K2-BRG-12; see section 9 for the replacement interval.",
            body,
        ),
        Paragraph("5.4 Fastener torques", h2),
        _table(
            [
                ["Fastener", "Tool", "Torque"],
                ["Radiation shield screws (3)", "Torx T10", "0.6 N·m"],
                ["Anemometer cup set screw", "2.5 mm hex", "0.4 N·m"],
                ["Wind vane set screw", "2.5 mm hex", "0.4 N·m"],
                ["Main housing screws (6)", "Phillips PH1", "0.8 N·m"],
                ["Battery door screw", "Phillips PH1", "hand tight"],
            ],
            [70, 40, 35],
        ),
        Spacer(1, 4 * mm),
        Paragraph(
            "Always replace the rubber gasket of the main housing (supplied with every service "
            "part) when the housing has been opened; the IP65 rating depends on it.",
            body,
        ),
    ]


def _page_3(styles: StyleSheet1) -> list[Flowable]:
    """Return the electrical test page with the test point table."""
    body, h1, h2 = styles["BodyText"], styles["Heading1"], styles["Heading2"]
    return [
        Paragraph("6. Electrical tests", h1),
        Paragraph(
            "Measure with the array on the bench, batteries fitted, solar panel uncovered under "
            "a bright lamp unless stated otherwise. The negative probe goes to test point TP0 "
            "(ground) next to the battery connector.",
            body,
        ),
        Paragraph("6.1 Test points", h2),
        _table(
            [
                ["Test point", "Signal", "Expected value"],
                ["TP1", "Solar panel input", "5.5 to 6.5 V (open circuit 6.2 V)"],
                ["TP2", "Battery", "2.4 to 3.4 V"],
                ["TP3", "Main 3.3 V rail", "3.20 to 3.40 V"],
                ["TP4", "Radio supply", "3.0 V, within 0.1 V"],
                ["TP5", "Rain gauge reed switch", "below 1 ohm when closed"],
            ],
            [30, 55, 70],
        ),
        Paragraph("6.2 Current consumption", h2),
        Paragraph(
            "With the solar panel covered and the array idle between transmissions, the "
            "current drawn from the batteries should be 38 microamps. A reading above "
            "100 microamps points to a leaking capacitor or a damaged radio module and explains "
            "short battery life. During a transmission the current rises to about 28 milliamps "
            "for 40 milliseconds.",
            body,
        ),
        Paragraph("6.3 Rain gauge switch", h2),
        Paragraph(
            "Tip the bucket slowly by hand while measuring across TP5 and TP0. The reed switch "
            "must close once per tip. A switch that stays open causes error E08 on the console.",
            body,
        ),
    ]


def _page_4(styles: StyleSheet1) -> list[Flowable]:
    """Return the firmware reflashing and console service mode page."""
    body, h1, h2 = styles["BodyText"], styles["Heading1"], styles["Heading2"]
    return [
        Paragraph("7. Reflashing the sensor array firmware", h1),
        Paragraph(
            "Normally the console updates the array over the radio. If an update was "
            "interrupted and the array no longer transmits, reflash it through the five-pin "
            "service header J5 on the main board.",
            body,
        ),
        Paragraph("7.1 Service header J5", h2),
        _table(
            [
                ["Pin", "Signal", "Connect to"],
                ["1", "GND", "Adapter GND"],
                ["2", "TX (array output)", "Adapter RX"],
                ["3", "RX (array input)", "Adapter TX"],
                ["4", "3V3", "Leave unconnected when batteries are fitted"],
                ["5", "BOOT", "Hold at GND during power-up"],
            ],
            [20, 45, 90],
        ),
        Spacer(1, 4 * mm),
        Paragraph(
            "Set the serial port to 115200 baud, 8 data bits, no parity, 1 stop bit. Hold BOOT "
            "at ground, fit the batteries, then release BOOT. Run the Aldermoor flashing tool "
            "alderflash 1.2 with the sensor array firmware file (SA 1.4, file sa14.hex).",
            body,
        ),
        Paragraph("8. Console service mode", h1),
        Paragraph(
            "Service mode shows raw sensor values, radio packet statistics and the internal "
            "temperature of the console. To enter it, hold MODE and ALARM while connecting "
            "the power, then enter the service menu code 2741 with UP, DOWN and SET. Service "
            "mode ends when the console is restarted. Do not change the radio frequency table "
            "in service mode; it is set for the market the console was sold in.",
            body,
        ),
    ]


def _page_5(styles: StyleSheet1) -> list[Flowable]:
    """Return the maintenance schedule and revision history page."""
    body, h1, h2 = styles["BodyText"], styles["Heading1"], styles["Heading2"]
    return [
        Paragraph("9. Maintenance schedule", h1),
        Paragraph(
            "Give owners this schedule when returning a repaired unit. Intervals assume a "
            "garden site; coastal and dusty sites need more frequent cleaning.",
            body,
        ),
        _table(
            [
                ["Task", "Interval", "Part"],
                ["Clean rain funnel and mesh filter", "every 3 months", "K2-RF-06"],
                ["Wash radiation shield plates", "every 12 months", "-"],
                ["Replace radiation shield if yellowed", "as needed", "K2-RS-07"],
                ["Replace anemometer bearings", "every 5 years", "K2-BRG-12"],
                ["Replace AA lithium batteries", "when E02 appears", "-"],
            ],
            [75, 40, 35],
        ),
        Spacer(1, 4 * mm),
        Paragraph(
            "Worn bearings show as a rising starting threshold: if the cups do not turn in a "
            "light breeze that moves leaves, replace the bearings even if the interval has not "
            "passed.",
            body,
        ),
        Paragraph("10. Revision history", h2),
        _table(
            [
                ["Revision", "Date", "Changes"],
                ["A", "1 March 2023", "First issue"],
                ["B", "10 February 2024", "Added SA-3 array"],
                ["C", "15 April 2025", "Added J5 reflashing for SA 1.4"],
            ],
            [25, 40, 85],
        ),
    ]


def _footer(canvas: Canvas, doc: SimpleDocTemplate) -> None:
    """Draw the manual title and the page number at the foot of each page."""
    canvas.saveState()
    canvas.setFont("Helvetica", 8)
    canvas.drawString(20 * mm, 12 * mm, TITLE)
    canvas.drawRightString(A4[0] - 20 * mm, 12 * mm, f"Page {doc.page}")
    canvas.restoreState()


def build(output: Path) -> Path:
    """Write the service manual PDF to ``output`` and return the path."""
    styles = getSampleStyleSheet()
    pages = [_page_1, _page_2, _page_3, _page_4, _page_5]
    story: list[Flowable] = []
    for number, page in enumerate(pages):
        if number:
            story.append(PageBreak())
        story.extend(page(styles))
    output.parent.mkdir(parents=True, exist_ok=True)
    doc = SimpleDocTemplate(
        str(output),
        pagesize=A4,
        leftMargin=20 * mm,
        rightMargin=20 * mm,
        topMargin=20 * mm,
        bottomMargin=22 * mm,
        title=TITLE,
        author="Aldermoor Instruments Ltd. (fictional)",
        subject="Demo corpus document for the rag project",
        creator="scripts/make_demo_pdf.py",
        invariant=1,
    )
    doc.build(story, onFirstPage=_footer, onLaterPages=_footer)
    return output


def main() -> None:
    """Parse the optional output path and build the PDF."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    print(build(args.output))


if __name__ == "__main__":
    main()
