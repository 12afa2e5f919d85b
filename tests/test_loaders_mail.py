"""E-mail: a message is a document under its subject, each supported attachment one of its
own keyed below it; an mbox is indexed message by message, and a deleted message goes."""

from __future__ import annotations

import io
import mailbox
from email.message import EmailMessage
from pathlib import Path

import pytest

from rag import Index
from rag.errors import LoaderError
from rag.loaders import CONTAINERS, Part, load_document
from rag.store import Store

_TYPES = {"pdf": ("application", "pdf"), "png": ("image", "png"),
          "eml": ("application", "octet-stream")}  # fmt: skip


def _mail(subject: str, body: str | None = "", *, html: str | None = None, msg_id: str = "",
          attachments: tuple[tuple[str, bytes], ...] = ()) -> EmailMessage:  # fmt: skip
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = "Ada Lovelace <ada@example.org>"
    message["To"] = "Charles Babbage <charles@example.org>"
    message["Date"] = "Tue, 12 Mar 2024 10:30:00 +0000"
    if msg_id:
        message["Message-ID"] = f"<{msg_id}>"
    if body:
        message.set_content(body)
    if html is not None:
        if body:
            message.add_alternative(html, subtype="html")
        else:
            message.set_content(html, subtype="html")
    for name, data in attachments:
        maintype, subtype = _TYPES.get(name.rsplit(".", 1)[-1], ("text", "plain"))
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return message


def _pdf(text: str) -> bytes:
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    page = canvas.Canvas(buffer)
    page.drawString(72, 720, text)
    page.showPage()
    page.save()
    return buffer.getvalue()


def _parts(path: Path, kind: str) -> list[Part]:
    parts = list(CONTAINERS[kind](path, str(path)))
    assert all(isinstance(p, Part) for p in parts), parts
    return parts  # type: ignore[return-value]


def _write_mbox(path: Path, messages: list[EmailMessage]) -> None:
    path.unlink(missing_ok=True)
    box = mailbox.mbox(path)
    for message in messages:
        box.add(message)
    box.flush()
    box.close()


# --- loader only ------------------------------------------------------------------------------


def test_eml_message_is_keyed_by_its_path_and_attachments_below_it(tmp_path):
    path = tmp_path / "budget.eml"
    attachments = (("notes.txt", b"First notes.\n"), ("logo.png", b"\x89PNG\r\n"),
                   ("notes.txt", b"Second notes.\n"), ("box.mbox", b"From x\n"))  # fmt: skip
    path.write_bytes(bytes(_mail("Heron budget", "The budget is 48,000 euros.\n\nAda",
                                 msg_id="h1@example.org", attachments=attachments)))  # fmt: skip
    parts = _parts(path, "eml")
    assert [p.key for p in parts] == [str(path), f"{path}#notes.txt", f"{path}#notes (2).txt"]
    message = parts[0].load()
    assert message.key == str(path) and message.kind == "eml"
    assert message.text.startswith(
        "Subject: Heron budget\nFrom: Ada Lovelace <ada@example.org>\n"
        "Date: 2024-03-12 10:30:00+00:00\nTo: Charles Babbage <charles@example.org>\n\n"
        "The budget is 48,000 euros.\n\nAda"
    )
    assert {b.headings for b in message.blocks} == {("Heron budget",)}
    assert message.meta == {"subject": "Heron budget", "from": "Ada Lovelace <ada@example.org>",
                            "date": "2024-03-12 10:30:00+00:00", "message_id": "h1@example.org",
                            "to": "Charles Babbage <charles@example.org>"}  # fmt: skip
    assert message.warnings == [
        f"{path}: attachments not indexed (unsupported type, or a picture: pictures in e-mail "
        "are not OCR'd): logo.png, box.mbox"
    ]
    second = parts[2].load()
    assert (second.key, second.kind, second.text) == (f"{path}#notes (2).txt", "txt",
                                                      "Second notes.\n")  # fmt: skip
    assert second.meta == {"parent": str(path), "attachment": "notes (2).txt"}
    assert parts[1].raw == b"First notes.\n"  # hashed on its own: an unchanged one is kept


def test_html_only_mail_is_read_as_text(tmp_path):
    html = ("<html><head><style>p{color:red}</style></head><body><h1>Release</h1>"
            "<p>The <b>Osprey</b> release ships on <i>May 4</i>.</p></body></html>")  # fmt: skip
    path = tmp_path / "html.eml"
    path.write_bytes(bytes(_mail("Osprey release", None, html=html)))
    (part,) = _parts(path, "eml")
    doc = part.load()
    assert "The Osprey release ships on May 4." in doc.text
    assert "<b>" not in doc.text and "color:red" not in doc.text
    assert ("Osprey release", "Release") in {b.headings for b in doc.blocks}


def test_plain_text_is_preferred_to_the_html_alternative(tmp_path):
    path = tmp_path / "alt.eml"
    path.write_bytes(bytes(_mail("Both", "Plain words.", html="<p>HTML words.</p>")))
    doc = _parts(path, "eml")[0].load()
    assert "Plain words." in doc.text and "HTML words." not in doc.text


def test_forwarded_eml_attachment_is_read_as_a_message(tmp_path):
    inner = _mail("Original quote", "The quote was 310 francs.")
    path = tmp_path / "fwd.eml"
    path.write_bytes(bytes(_mail("Fwd: quote", "See below.", attachments=(
        ("quote.eml", bytes(inner)),))))  # fmt: skip
    parts = _parts(path, "eml")
    assert [p.key for p in parts] == [str(path), f"{path}#quote.eml"]
    doc = parts[1].load()
    assert doc.kind == "eml" and "The quote was 310 francs." in doc.text
    assert doc.meta["subject"] == "Original quote" and doc.meta["parent"] == str(path)


def test_message_without_body_or_attachments_is_refused(tmp_path):
    path = tmp_path / "blank.eml"
    path.write_bytes(bytes(_mail("Nothing here", None)))
    (part,) = _parts(path, "eml")
    with pytest.raises(LoaderError, match="no text in the message"):
        part.load()
    path.write_bytes(bytes(_mail("See attached", None, attachments=(("a.txt", b"Attached."),))))
    assert "Subject: See attached" in _parts(path, "eml")[0].load().text


@pytest.mark.parametrize(
    ("kind", "data", "problem"),
    [
        ("eml", b"", "file is empty (0 bytes); nothing to index"),
        ("mbox", b"", "file is empty (0 bytes); nothing to index"),
        ("eml", b"just some notes\nwith no headers\n", "not an e-mail message"),
        ("eml", b"%PDF-1.4\x00\x00\x01", "binary data, not an e-mail message"),
        ("mbox", b"Subject: hi\n\nbody\n", 'not an mbox mailbox (it must start with a "From "'),
    ],
)
def test_files_that_are_not_mail_are_refused(tmp_path, kind, data, problem):
    path = tmp_path / f"bad.{kind}"
    path.write_bytes(data)
    with pytest.raises(LoaderError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        list(CONTAINERS[kind](path, str(path)))


def test_mbox_messages_are_keyed_by_message_id_else_position(tmp_path):
    path = tmp_path / "inbox.mbox"
    first = _mail("One", "First.", msg_id="one@example.org",
                  attachments=(("minutes.md", b"# Minutes\n\nAgreed.\n"),))  # fmt: skip
    _write_mbox(path, [first, _mail("Two", "Second."), first, _mail("Three", "Third.")])
    with path.open("ab") as handle:  # a damaged entry: no headers at all
        handle.write(b"From nobody Mon Jan  1 00:00:00 2024\n\x00\x01\x02 garbage\n")
    parts = _parts(path, "mbox")
    assert [p.key for p in parts] == [
        f"{path}#one@example.org",
        f"{path}#one@example.org/minutes.md",
        f"{path}#message-2",
        f"{path}#message-4",
        f"{path}#message-5",
    ]  # the second copy of message one is the same message, not indexed twice
    assert parts[1].load().meta == {"parent": f"{path}#one@example.org",
                                    "attachment": "minutes.md"}  # fmt: skip
    assert "Third." in parts[3].load().text
    with pytest.raises(LoaderError, match="binary data, not an e-mail message"):
        parts[4].load()


def test_attached_eml_loads_alone_through_load_document():
    doc = load_document("x.eml", "eml", bytes(_mail("Alone", "Body.")))
    assert doc.kind == "eml" and doc.meta["subject"] == "Alone"


# --- through a real ingest --------------------------------------------------------------------


@pytest.fixture
def mail_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "mail"
    folder.mkdir()
    return folder


def test_mail_and_attachments_are_found_and_bad_files_fail_alone(tmp_path, mail_dir, embedder):
    eml = mail_dir / "heron.eml"
    eml.write_bytes(bytes(_mail(
        "Heron survey", "The heron colony on Lake Vänern counted 317 nests this spring.",
        attachments=(("report.pdf", _pdf("The Kingfisher audit found 42 burrows.")),
                     ("photo.png", b"\x89PNG\r\n")))))  # fmt: skip
    box = mail_dir / "lists.mbox"
    _write_mbox(box, [
        _mail("Pump order", "Order the Okapi gasket kit from bin Z42.", msg_id="pump@example.org"),
        _mail("Lunch", "Lunch is at noon.", msg_id="lunch@example.org"),
    ])  # fmt: skip
    (mail_dir / "zero.eml").write_bytes(b"")
    (mail_dir / "notes.eml").write_text("Just a note, not a message.\n")
    (mail_dir / "blank.eml").write_bytes(bytes(_mail("Blank", None)))
    (mail_dir / "fake.mbox").write_text("Not a mailbox.\n")
    index = Index(tmp_path / "idx", preset="tiny", embedder=embedder)
    report = index.ingest([mail_dir])
    assert sorted((Path(f.path).name, f.error.split(";")[0]) for f in report.failed) == [
        ("blank.eml", "no text in the message (no body and no attachments)"),
        ("fake.mbox", 'not an mbox mailbox (it must start with a "From " line)'),
        ("notes.eml", "not an e-mail message (no From:, To:, Subject: or Date: header)"),
        ("zero.eml", "file is empty (0 bytes)"),
    ]
    assert report.added == 4  # the .eml, its pdf, two mbox messages
    assert f"{eml}: attachments not indexed (unsupported type, or a picture: pictures in " \
        "e-mail are not OCR'd): photo.png" in report.warnings

    hit = index.search("How many heron nests were counted at Lake Vänern?", k=1)[0]
    assert (hit.path, hit.kind, hit.heading) == (str(eml), "eml", "Heron survey")
    assert hit.text.startswith("Subject: Heron survey\nFrom: Ada Lovelace")
    hit = index.search("How many burrows did the Kingfisher audit find?", k=1)[0]
    assert (hit.path, hit.kind, hit.page) == (f"{eml}#report.pdf", "pdf", 1)
    hit = index.search("Which bin holds the Okapi gasket kit?", k=1)[0]
    assert (hit.path, hit.heading) == (f"{box}#pump@example.org", "Pump order")
    info = {row.path: row.info for row in Store(index.path).documents()}
    assert info[f"{eml}#report.pdf"]["parent"] == str(eml)
    assert info[f"{box}#pump@example.org"]["subject"] == "Pump order"


def _keys(index: Index) -> set[str]:
    return set(Store(index.path).manifest())


def test_mbox_reingest_loads_only_new_messages_and_drops_deleted_ones(tmp_path, embedder):
    box = tmp_path / "inbox.mbox"
    keep = _mail("Keep", "The Wren code is 5150.", msg_id="keep@x")
    drop = _mail("Drop", "The Lark code is 7007.", msg_id="drop@x",
                 attachments=(("lark.txt", b"Lark attachment says 8118.\n"),))  # fmt: skip
    _write_mbox(box, [keep, drop])
    index = Index(tmp_path / "idx", preset="tiny", embedder=embedder)
    assert index.ingest([box]).added == 3
    assert _keys(index) == {f"{box}#keep@x", f"{box}#drop@x", f"{box}#drop@x/lark.txt"}

    new = _mail("New", "The Finch code is 2323.", msg_id="new@x")
    _write_mbox(box, [keep, drop, new])  # the mailbox grows
    report = index.ingest([box])
    assert (report.added, report.unchanged, report.updated, report.removed) == (1, 3, 0, 0)

    _write_mbox(box, [keep, new])  # a message (with its attachment) is deleted
    report = index.ingest([box])
    assert (report.added, report.unchanged, report.removed) == (0, 2, 2)
    assert _keys(index) == {f"{box}#keep@x", f"{box}#new@x"}
    assert all("7007" not in h.text and "8118" not in h.text
               for h in index.search("Lark code 7007 8118", k=5, mode="bm25"))  # fmt: skip


def test_eml_edits_update_the_message_and_prune_a_removed_attachment(tmp_path, embedder):
    eml = tmp_path / "a.eml"
    eml.write_bytes(bytes(_mail("Plan", "Plan v1.", attachments=(("x.txt", b"Extra.\n"),))))
    index = Index(tmp_path / "idx", preset="tiny", embedder=embedder)
    assert index.ingest([eml]).added == 2
    eml.write_bytes(bytes(_mail("Plan", "Plan v2.")))
    report = index.ingest([eml])
    assert (report.updated, report.removed) == (1, 1)
    assert _keys(index) == {str(eml)}
    eml.write_text("no longer mail\n")  # a failed file keeps its indexed message
    report = index.ingest([eml])
    assert [f.path for f in report.failed] == [str(eml)] and report.removed == 0
    assert _keys(index) == {str(eml)}
    eml.unlink()
    assert index.ingest([tmp_path]).removed == 1 and _keys(index) == set()


def test_non_ascii_names_and_subjects_are_decoded(tmp_path):
    message = _mail("Résumé für Zoë", "Grüße.", attachments=(("Résumé.txt", b"CV.\n"),))
    raw = bytes(message).replace(  # the encoded-word form some mail programs write
        b"filename*=utf-8''R%C3%A9sum%C3%A9.txt", b'filename="=?utf-8?q?R=C3=A9sum=C3=A9.txt?="'
    )
    assert raw != bytes(message)
    path = tmp_path / "intl.eml"
    for data in (bytes(message), raw):
        path.write_bytes(data)
        parts = _parts(path, "eml")
        assert [p.key for p in parts] == [str(path), f"{path}#Résumé.txt"]
        assert parts[0].load().meta["subject"] == "Résumé für Zoë"
