"""E-mail (.eml, .mbox): each message a document, each supported attachment one of its own.

A message's text starts with its Subject/From/Date/To lines, then the body (text/plain, else
the HTML part as text); the subject is its heading. Keys: a .eml file's message is the file
path itself and its attachments `<path>#<file name>`; an mbox message is `<path>#<Message-ID>`
(else `<path>#message-N`) and its attachments `<message key>/<file name>`. Attachments are
loaded by their own format's loader and carry `meta["parent"]` (the message's key).
"""

from __future__ import annotations

import mailbox
import mimetypes
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from functools import partial
from pathlib import Path, PurePosixPath
from typing import cast

from rag.errors import LoaderError
from rag.loaders.base import Block, Document, Part
from rag.loaders.html import html_to_text
from rag.loaders.text import markdown_blocks, paragraph_blocks

EMPTY_FILE = "file is empty (0 bytes); nothing to index"
# a message has at least one of these; a file with none of them is not e-mail
_MAIL_HEADERS = {"from", "to", "cc", "subject", "date", "message-id", "received", "sender",
                 "mime-version", "return-path", "delivered-to", "reply-to"}  # fmt: skip
_SHOWN = (("Subject", "subject"), ("From", "from"), ("Date", "date"), ("To", "to"))


@dataclass(frozen=True)
class Attachment:
    """A file attached to a message: its (deduplicated) name, loader kind and bytes."""

    name: str
    kind: str | None  # None: a type no loader reads; it is named in a warning instead
    data: bytes


def iter_eml_parts(path: Path, key_prefix: str) -> Iterator[Part | LoaderError]:
    """Yield a .eml file's message (keyed by the file path) and each supported attachment."""
    data = _read(path, key_prefix)
    message = parse_message(key_prefix, data, fast=True)
    yield from message_parts(message, data, key_prefix, lambda name: f"{key_prefix}#{name}")


def iter_mbox_parts(path: Path, key_prefix: str) -> Iterator[Part | LoaderError]:
    """Yield every message of an mbox file (and their attachments), one by one.

    Raises LoaderError when the file is empty or does not start with an mbox "From " line.
    """
    try:
        with path.open("rb") as handle:
            start = handle.read(1024)
    except OSError as exc:
        raise LoaderError(key_prefix, _os_problem(exc)) from None
    if not start:
        raise LoaderError(key_prefix, EMPTY_FILE)
    if not start.lstrip(b"\r\n").startswith(b"From "):
        raise LoaderError(key_prefix, 'not an mbox mailbox (it must start with a "From " line); '
                                      "is the extension right?")  # fmt: skip
    box = mailbox.mbox(path, create=False)
    try:
        copies: dict[str, list[bytes]] = {}  # Message-ID -> the bytes of each message with it
        for number, box_key in enumerate(box.iterkeys(), start=1):
            try:
                raw = box.get_bytes(box_key)
            except OSError as exc:
                raise LoaderError(key_prefix, _os_problem(exc)) from None
            key = f"{key_prefix}#message-{number}"
            try:
                message = parse_message(key, raw, fast=True)
            except LoaderError as exc:
                yield Part(key, raw, key, partial(_raise, exc))  # kept if it was indexed
                continue
            doc_id = _message_id(message)
            if doc_id:
                same_id = copies.setdefault(doc_id, [])
                if raw in same_id:
                    continue  # the same message stored twice
                same_id.append(raw)
                key = f"{key_prefix}#{doc_id}" + (f" ({len(same_id)})" if len(same_id) > 1 else "")
            yield from message_parts(message, raw, key, partial(_child_key, key))
    finally:
        box.close()


def load_eml(key: str, data: bytes) -> Document:
    """Load one message on its own (an attached .eml): headers and body, no attachments."""
    message = parse_message(key, data)
    attachments = list(iter_attachments(message))
    document = message_document(key, message, has_attachments=False)
    if attachments:
        names = ", ".join(a.name for a in attachments)
        document.warnings.append(f"{key}: attachments of an attached message not indexed: {names}")
    return document


def parse_message(key: str, data: bytes, fast: bool = False) -> EmailMessage:
    """Parse RFC 5322 bytes; raise LoaderError when they are not an e-mail message.

    `fast` skips decoding the headers (about 10x quicker): enough to list the parts of every
    message of a mailbox on each ingest, though only changed ones are then loaded.
    """
    if not data:
        raise LoaderError(key, EMPTY_FILE)
    if b"\x00" in data[:8192]:
        raise LoaderError(key, "binary data, not an e-mail message; is the extension right?")
    how = policy.compat32 if fast else policy.default
    message = cast(EmailMessage, message_from_bytes(data, EmailMessage, policy=how))
    if not {name.lower() for name in message} & _MAIL_HEADERS:
        raise LoaderError(key, "not an e-mail message (no From:, To:, Subject: or Date: "
                               "header); is the extension right?")  # fmt: skip
    return message


def message_parts(
    message: EmailMessage, raw: bytes, key: str, attachment_key: Callable[[str], str]
) -> Iterator[Part]:
    """The message (`raw`, parsed) as a Part, then a Part for each attachment a loader reads."""
    from rag.loaders import CONTAINERS

    attachments = list(iter_attachments(message))
    # a mailbox or collection inside a message is not unpacked; an attached .eml is read alone;
    # pictures are not OCR'd: in mail they are mostly logos and signatures, each a failure line
    loadable = [a for a in attachments
                if a.kind == "eml" or a.kind not in (None, "image", *CONTAINERS)]  # fmt: skip
    skipped = [a.name for a in attachments if a not in loadable]
    yield Part(key, raw, key, partial(_message_and_skipped, key, raw, bool(attachments),
                                      skipped))  # fmt: skip
    for attachment in loadable:
        part_key = attachment_key(attachment.name)
        load = partial(_attachment_document, part_key, attachment, key)
        yield Part(part_key, attachment.data, part_key, load)


def message_document(key: str, message: EmailMessage, has_attachments: bool) -> Document:
    """The message's header lines and body as one document under its subject.

    Raises LoaderError when it has no body text and nothing attached.
    """
    meta = _meta(message)
    header = "\n".join(f"{label}: {meta[name]}" for label, name in _SHOWN if meta.get(name))
    body, is_html = _body(message)
    if not body.strip() and not has_attachments:
        raise LoaderError(key, "no text in the message (no body and no attachments)")
    headings = (meta["subject"],) if meta.get("subject") else ()
    text = f"{header}\n\n{body}" if header else body
    offset = len(header) + 2 if header else 0
    blocks = [Block(0, len(header), None, headings)] if header else []
    body_blocks = markdown_blocks(body) if is_html else paragraph_blocks(body, 0, len(body))
    for block in body_blocks:
        blocks.append(Block(block.start + offset, block.end + offset, None,
                            headings + block.headings))  # fmt: skip
    if not blocks:
        raise LoaderError(key, "no text in the message (no body and no attachments)")
    return Document(key=key, kind="eml", text=text, blocks=blocks, meta=meta)


def iter_attachments(message: Message) -> Iterator[Attachment]:
    """The files attached to a message, names made unique ("a (2).pdf"); forwarded mails
    as .eml files; inline parts without a file name (the body, embedded images) left out."""
    from rag.loaders import kind_of

    body = _body_part(message)
    used: set[str] = set()
    for number, part in enumerate(_leaves(message), start=1):
        if part is body:
            continue
        forwarded = part.get_content_type() == "message/rfc822"
        name = _safe_name(_decoded(part.get_filename() or ""))
        if not name and not forwarded and part.get_content_disposition() != "attachment":
            continue
        if forwarded:
            inner = part.get_payload(0)
            data = _as_bytes(inner)
            subject = _header(inner, "Subject") if isinstance(inner, Message) else ""
            name = name or _safe_name(f"{subject or 'message'}.eml")
        else:
            payload = part.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
            if not name:
                extension = mimetypes.guess_extension(part.get_content_type()) or ".bin"
                name = f"attachment-{number}{extension}"
        name = _unique(name, used)
        kind = kind_of(Path(name))
        yield Attachment(name, "eml" if forwarded else kind, data)


# --- helpers -----------------------------------------------------------------------------------


def _os_problem(exc: OSError) -> str:
    from rag.discover import describe_os_error  # rag.discover imports rag.loaders

    return describe_os_error(exc)


def _read(path: Path, key: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoaderError(key, _os_problem(exc)) from None
    if not data:
        raise LoaderError(key, EMPTY_FILE)
    return data


def _child_key(message_key: str, name: str) -> str:
    return f"{message_key}/{name}"


def _as_bytes(message: object) -> bytes:
    if not isinstance(message, Message):
        return b""
    try:
        return message.as_bytes()
    except Exception:  # a forwarded message too damaged to serialise again
        return b""


def _raise(error: LoaderError) -> Document:
    raise error


def _message_and_skipped(
    key: str, raw: bytes, has_attachments: bool, skipped: list[str]
) -> Document:
    document = message_document(key, parse_message(key, raw), has_attachments)
    if skipped:
        names = ", ".join(skipped)
        document.warnings.append(
            f"{key}: attachments not indexed (unsupported type, or a picture: pictures in "
            f"e-mail are not OCR'd): {names}"
        )
    return document


def _attachment_document(key: str, attachment: Attachment, parent: str) -> Document:
    from rag.loaders import load_document

    if not attachment.data:
        raise LoaderError(key, "attachment is empty (0 bytes); nothing to index")
    document = load_document(key, attachment.kind or "", attachment.data)
    document.meta.update(parent=parent, attachment=attachment.name)
    return document


def _meta(message: EmailMessage) -> dict[str, str]:
    meta = {
        "subject": _header(message, "Subject"),
        "from": _header(message, "From"),
        "date": _date(message),
        "to": _header(message, "To"),
        "message_id": _message_id(message),
    }
    return {name: value for name, value in meta.items() if value}


def _header(message: Message, name: str) -> str:
    """A header's decoded value on one line; the raw value when it does not parse."""
    try:
        value = message.get(name)
    except Exception:  # malformed headers can trip the parser of policy.default
        value = next((v for n, v in message.raw_items() if n.lower() == name.lower()), None)
    if value is None:
        return ""
    return " ".join(_decoded(str(value)).split())


def _decoded(value: str) -> str:
    """Decode RFC 2047 encoded words ("=?utf-8?q?R=C3=A9sum=C3=A9?="), as compat32 leaves them."""
    if "=?" not in value:
        return value
    from email.header import decode_header, make_header

    try:
        return str(make_header(decode_header(value)))
    except Exception:  # a malformed encoded word: keep it as written
        return value


def _date(message: Message) -> str:
    try:
        when = getattr(message.get("Date"), "datetime", None)
    except Exception:
        when = None
    return when.isoformat(sep=" ") if when is not None else _header(message, "Date")


def _message_id(message: Message) -> str:
    return _header(message, "Message-ID").strip().strip("<>").strip()


def _body_part(message: Message) -> Message | None:
    if not isinstance(message, EmailMessage):
        return None
    try:
        return message.get_body(preferencelist=("plain", "html"))
    except Exception:
        return None


def _body(message: EmailMessage) -> tuple[str, bool]:
    """The body text (text/plain preferred, else HTML as text), and whether it was HTML."""
    for subtype in ("plain", "html"):
        try:
            part = message.get_body(preferencelist=(subtype,))
        except Exception:
            part = None
        if part is None:
            continue
        text = _part_text(part)
        if subtype == "html":
            text = html_to_text(text)
        if text.strip():
            return text.strip() + "\n", subtype == "html"
    return "", False


def _part_text(part: Message) -> str:
    try:
        content = part.get_content()  # type: ignore[attr-defined]
    except (LookupError, ValueError, AttributeError):  # unknown charset, broken encoding
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""
    text = content if isinstance(content, str) else ""
    return text.replace("\r\n", "\n").replace("\x00", "")


def _leaves(message: Message) -> Iterator[Message]:
    """The non-multipart parts; a forwarded message (message/rfc822) is one leaf."""
    if message.is_multipart() and message.get_content_maintype() == "multipart":
        for part in message.get_payload():
            if isinstance(part, Message):
                yield from _leaves(part)
    else:
        yield message


def _safe_name(name: str) -> str:
    """A file name without folders, so keys stay `<message>#<name>`."""
    return PurePosixPath(name.replace("\\", "/")).name.strip()


def _unique(name: str, used: set[str]) -> str:
    candidate, n = name, 1
    while candidate in used:
        n += 1
        stem, dot, suffix = name.rpartition(".")
        candidate = f"{stem} ({n}).{suffix}" if dot and stem else f"{name} ({n})"
    used.add(candidate)
    return candidate
