"""Raw MIME bytes -> ParsedEmail (pure; standard library ``email`` with ``policy.default``).

Promises: every header is decoded (encoded-words, raw 8-bit, mislabelled charsets) and every text part
decoded through ``charsets``; a message that is hostile rather than merely odd (no headers at all,
thousands of parts, absurd nesting) raises ``UnparseableEmail`` with a reason code so the caller can
quarantine it. Nothing here touches the database.

This module holds the public API and assembles a ParsedEmail from the parsed message; the
parser's header machinery is ``mime_headers``, what the parser is fed (and what is put back
after) is ``mime_feed``: each one mechanism with its own contract.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage as MimeMessage
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime

from app.channels.email.charsets import (
    decode_bytes,
    decode_header_value,
    html_declared_charset,
)
from app.channels.email.mime_feed import (
    HEADER_END,
    RunSizes,
    is_base64_leaf,
    is_multipart,
    parse_mime,
    well_formed_base64_size,
)
from app.channels.email.mime_headers import get_filename, get_param

MAX_DEPTH = 20
_MSGID = re.compile(r"<([^<>\s]+)>")
MAX_KEY_LEN = 200


class UnparseableEmail(Exception):
    """The bytes cannot be understood as an email; ``reason`` is a short code for the quarantine."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass
class ParsedAttachment:
    """An attachment as the message holds it: its metadata, its decoded size and where it lives in the
    raw message (``part``: the MIME section number, IMAP style -- "1" the body of a message that is not
    multipart, "2", "2.1" within multiparts; "" the whole message). Its bytes are stored once, in the
    raw message: decoded only when read (``data``, ``attachment_bytes``), never at ingest."""

    filename: str
    content_type: str
    size: int
    part: str
    content_id: str | None = None
    inline: bool = False
    source: Message | bytes | None = field(default=None, compare=False, repr=False)  # the part, or the bytes

    @property
    def data(self) -> bytes:
        """The decoded bytes (decoded now, on every read)."""
        return self.source if isinstance(self.source, bytes) else _payload_bytes(self.source)


@dataclass
class ParsedEmail:
    message_id: str | None
    in_reply_to: list[str]
    references: list[str]
    from_address: str
    from_name: str
    to: list[str]
    cc: list[str]
    reply_to: str | None
    delivered_to: list[str]
    subject: str
    date: datetime | None
    text: str
    html: str | None
    attachments: list[ParsedAttachment]
    headers: dict[str, list[str]]  # lower-cased name -> decoded values
    return_path: str | None  # None: absent; "": the null sender <>
    content_type: str
    report_type: str | None
    delivery_status: str | None  # text of a message/delivery-status part
    embedded_message_ids: list[str] = field(default_factory=list)  # of messages returned inside a report
    defects: list[str] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None

    @property
    def recipients(self) -> list[str]:
        return self.to + self.cc + self.delivered_to


def _header_block(raw: bytes, limit: int = 256 * 1024) -> bytes:
    """The header section of ``raw`` (up to and including the first blank line, CRLF or bare LF: where
    the parser ends the header), else its first ``limit`` bytes. One search from the start: an
    attachment-heavy message is not scanned end to end for a line ending style it does not use."""
    end = HEADER_END.search(raw, 0, limit)
    return raw[:end.end()] if end else raw[:limit]


def parse_message_ids(value: str | None) -> list[str]:
    """Message-IDs in a header value, in order, without angle brackets (bare ids accepted)."""
    if not value:
        return []
    found = _MSGID.findall(value)
    if found:
        return found
    bare = value.strip().split()
    return [bare[0]] if bare and "@" in bare[0] else []


def message_key(raw: bytes) -> tuple[str, str | None]:
    """(dedupe key, Message-ID) from the headers alone, for storing before a full parse.

    The key is ``mid:<Message-ID>``; without one (or with an absurd one), ``sha:<hash of sender and
    raw bytes>`` -- the same bytes from the same sender are the same message."""
    headers = BytesParser(policy=policy.compat32).parsebytes(_header_block(raw), headersonly=True)
    ids = parse_message_ids(str(headers.get("Message-ID", "") or ""))
    message_id = ids[0] if ids else None
    if message_id and len(message_id) <= MAX_KEY_LEN:
        return f"mid:{message_id}", message_id
    sender = str(headers.get("From", "") or "").encode("utf-8", "surrogateescape")
    digest = hashlib.sha256(sender + b"\0" + raw).hexdigest()
    return f"sha:{digest}", message_id[:MAX_KEY_LEN] if message_id else None


def parse_email(raw: bytes, *, max_parts: int = 500, set_aside_base64: bool = True) -> ParsedEmail:
    """Parse ``raw`` into a ParsedEmail. Raises UnparseableEmail (reason codes: ``no_headers``,
    ``too_many_parts``, ``too_deep``, ``broken_mime``). ``set_aside_base64``: False parses every line
    with the email package and ``policy.default`` as they stand, nothing rewritten or remembered (the
    same result, slower: the reference, for tests)."""
    msg, sizes = parse_mime(raw, set_aside_base64)
    fields = _header_fields(msg)
    headers = {name: [decode_header_value(value) for value in values] for name, values in fields.items()}
    if not headers or not ({"from", "message-id", "subject", "date", "to"} & headers.keys()):
        raise UnparseableEmail("no_headers", "no recognisable email header fields")
    leaves = _leaves(msg, max_parts)
    try:
        return _assemble(msg, fields, headers, leaves, sizes)
    except (LookupError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise UnparseableEmail("broken_mime", f"{type(exc).__name__}: {exc}") from exc


def _header_fields(msg: Message) -> dict[str, list[str]]:
    """The message's header fields as received: lower-cased name -> values, in order."""
    fields: dict[str, list[str]] = {}
    for name, value in msg.raw_items():
        fields.setdefault(name.lower(), []).append(str(value))
    return fields


def _first(fields: dict[str, list[str]], name: str) -> str:
    return fields[name][0] if name in fields else ""


def _addresses(fields: dict[str, list[str]], name: str) -> list[tuple[str, str]]:
    raw = fields.get(name)
    if not raw:
        return []
    pairs = []
    for display, address in _address_list(raw):
        address = decode_header_value(address).strip().lower()
        if "@" in address:
            pairs.append((decode_header_value(display), address))
    return pairs


# An address list in its simplest forms -- "Name <local@domain>" or "local@domain", the name of atoms
# (dots allowed, encoded words included), no quotes or comments, one address between commas -- for
# which ``getaddresses`` gives (the words joined by one space, the address as written) or ("", the
# address): read with one pattern instead of the email package's character by character parser.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_ADDR_SPEC = rf"{_ATEXT}+(?:\.{_ATEXT}+)*@{_ATEXT}+(?:\.{_ATEXT}+)*"
_WORD = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+"
_SIMPLE_ADDRESS = re.compile(rf"[ \t\r\n]*(?:(?P<name>{_WORD}(?:[ \t\r\n]+{_WORD})*)[ \t\r\n]*<(?P<route>{_ADDR_SPEC})>"
                             rf"|(?P<bare>{_ADDR_SPEC}))[ \t\r\n]*")


def _address_list(values: list[str]) -> list[tuple[str, str]]:
    """``getaddresses(values)``: (display name, address) pairs."""
    pairs = []
    for value in values:
        for piece in value.split(","):
            match = _SIMPLE_ADDRESS.fullmatch(piece)
            if match is None:
                return getaddresses(values)
            name, route, bare = match.group("name", "route", "bare")
            pairs.append((" ".join(name.split()), route) if route else ("", bare))
    return pairs


def _leaves(msg: Message, max_parts: int) -> list[tuple[Message, str]]:
    """The leaf parts in order, each with its section number (see ``ParsedAttachment.part``)."""
    leaves: list[tuple[Message, str]] = []
    count = 0
    stack: list[tuple[Message, int, str]] = [(msg, 0, "")]
    while stack:
        part, depth, section = stack.pop()
        count += 1
        if count > max_parts:
            raise UnparseableEmail("too_many_parts", f"more than {max_parts} MIME parts")
        if depth > MAX_DEPTH:
            raise UnparseableEmail("too_deep", f"MIME nesting deeper than {MAX_DEPTH}")
        if is_multipart(part):
            prefix = f"{section}." if section else ""
            stack.extend((sub, depth + 1, f"{prefix}{n}")
                         for n, sub in reversed(list(enumerate(part.get_payload(), 1))))
        else:
            leaves.append((part, section or "1"))
    return leaves


def _section(msg: Message, section: str) -> Message:
    """The leaf part numbered ``section`` (as ``_leaves`` numbers them). Raises LookupError."""
    numbers = section.split(".")
    if not is_multipart(msg):
        if numbers != ["1"]:
            raise LookupError(f"no MIME part {section!r} in a message that is not multipart")
        return msg
    part = msg
    for number in numbers:
        children = part.get_payload() if is_multipart(part) else None
        if not children or not number.isdigit() or not 1 <= int(number) <= len(children):
            raise LookupError(f"no MIME part {section!r}")
        part = children[int(number) - 1]
    if is_multipart(part):
        raise LookupError(f"MIME part {section!r} is a multipart, not an attachment")
    return part


def attachment_bytes(raw: bytes, part: str) -> bytes:
    """The decoded bytes of the attachment at section ``part`` of ``raw`` (as ``parse_email`` numbered
    it; "" the whole message): what ``ParsedAttachment.data`` gave when ``raw`` was parsed.
    Raises LookupError when ``raw`` has no such leaf part."""
    if part == "":
        return raw
    return _payload_bytes(_section(parse_mime(raw)[0], part))


def _assemble(msg: Message, fields: dict[str, list[str]], headers: dict[str, list[str]],
              leaves: list[tuple[Message, str]], sizes: RunSizes) -> ParsedEmail:
    """``fields``: the header fields as received (``_header_fields``), ``headers`` the same decoded;
    ``sizes``: the sizes of parts that held set-aside runs (``_put_back``)."""
    sender = (_addresses(fields, "from") or [("", "")])[0]
    reply_to = _addresses(fields, "reply-to")
    text_part, html_part = _body_parts(msg)
    texts, attachments = [], []
    delivery_status, embedded = None, []
    for part, section in leaves:
        ctype = part.get_content_type()
        if part is text_part or part is html_part:
            continue
        if ctype == "message/delivery-status":
            delivery_status = _delivery_status_text(part)
            continue
        if ctype in ("message/rfc822", "text/rfc822-headers"):
            embedded.extend(_embedded_ids(part))
        if ctype == "text/plain" and not get_filename(part) and part.get_content_disposition() != "attachment":
            texts.append(_text_of(part))
            continue
        attachments.append(_attachment(part, section, len(attachments) + 1, sizes.of(part)))
    text = "\n\n".join(t for t in [_text_of(text_part) if text_part is not None else "", *texts] if t)
    html = _text_of(html_part) if html_part is not None else None
    return ParsedEmail(
        message_id=(parse_message_ids(headers.get("message-id", [""])[0]) or [None])[0],
        in_reply_to=parse_message_ids(_first(fields, "in-reply-to")),
        references=parse_message_ids(_first(fields, "references")),
        from_address=sender[1], from_name=sender[0],
        to=[a for _, a in _addresses(fields, "to")], cc=[a for _, a in _addresses(fields, "cc")],
        reply_to=reply_to[0][1] if reply_to else None,
        delivered_to=[a for _, a in _addresses(fields, "delivered-to") + _addresses(fields, "x-original-to")],
        subject=(headers.get("subject") or [""])[0], date=_date(_first(fields, "date")),
        text=text, html=html, attachments=attachments, headers=headers,
        return_path=_return_path(fields), content_type=msg.get_content_type(),
        report_type=(msg.get_param("report-type") or None) if msg.get_content_type() == "multipart/report" else None,
        delivery_status=delivery_status, embedded_message_ids=embedded,
        defects=[type(d).__name__ for d in msg.defects])


def _body_parts(msg: Message) -> tuple[Message | None, Message | None]:
    if not isinstance(msg, MimeMessage):  # pragma: no cover - policy.default always builds EmailMessage
        return None, None
    if msg.get_content_maintype() not in ("text", "multipart"):
        return None, None
    found: dict[str, Message] = {}
    _find_bodies(msg, msg, found)
    return found.get("plain"), found.get("html")


def _find_bodies(root: Message, part: Message, found: dict[str, Message]) -> None:
    """``root.get_body(("plain",))`` and ``root.get_body(("html",))`` in one walk: the email package's
    ``_find_body`` (the same steps, in the same order), keeping the first text/plain and the first
    text/html part met, as far as the later of the two searches would go."""
    if part.is_attachment():
        return
    maintype, subtype = part.get_content_type().split("/")
    if maintype == "text":
        if subtype in ("plain", "html"):
            found.setdefault(subtype, part)
        return
    if maintype != "multipart" or not root.is_multipart():
        return
    if subtype != "related":
        for subpart in part.iter_parts():
            _find_bodies(root, subpart, found)
            if len(found) == 2:
                return
        return
    candidate = None
    start = part.get_param("start")
    if start:
        for subpart in part.iter_parts():
            if subpart["content-id"] == start:
                candidate = subpart
                break
    if candidate is None:
        subparts = part.get_payload()
        candidate = subparts[0] if subparts else None
    if candidate is not None:
        _find_bodies(root, candidate, found)


def _payload_bytes(part: Message) -> bytes:
    data = part.get_payload(decode=True)
    if data is None:
        payload = part.get_payload()
        if isinstance(payload, list):
            return b"".join(sub.as_bytes() for sub in payload)
        return str(payload or "").encode("utf-8", "surrogateescape")
    return data


def _text_of(part: Message) -> str:
    data = _payload_bytes(part)
    label = get_param(part, "charset")
    if isinstance(label, tuple):  # RFC 2231 form
        label = label[2]
    if not label and part.get_content_subtype() == "html":
        label = html_declared_charset(data)
    return decode_bytes(data, label)[0]


def _delivery_status_text(part: Message) -> str:
    payload = part.get_payload()
    if isinstance(payload, list):
        blocks = ["\n".join(f"{k}: {decode_header_value(str(v))}" for k, v in block.raw_items()) for block in payload]
        return "\n\n".join(blocks)
    return decode_bytes(_payload_bytes(part))[0]


def _embedded_ids(part: Message) -> list[str]:
    payload = part.get_payload()
    if isinstance(payload, list) and payload:
        return parse_message_ids(str(payload[0].get("Message-ID", "") or ""))
    text = decode_bytes(_payload_bytes(part))[0]
    match = re.search(r"^Message-ID:\s*(.+)$", text, re.IGNORECASE | re.MULTILINE)
    return parse_message_ids(match.group(1)) if match else []


def _attachment(part: Message, section: str, index: int, size: int | None = None) -> ParsedAttachment:
    ctype = part.get_content_type()
    filename = decode_header_value(_filename(part))
    if ctype == "message/rfc822":
        filename = filename or f"message-{index}.eml"
    if not filename:
        filename = f"part-{index}{_extension_for(ctype)}"
    content_ids = parse_message_ids(str(part.get("Content-ID", "") or ""))
    return ParsedAttachment(filename=_safe_filename(filename), content_type=ctype[:127],
                            size=_decoded_size(part) if size is None else size, part=section,
                            content_id=content_ids[0] if content_ids else None,
                            inline=part.get_content_disposition() == "inline", source=part)


def _decoded_size(part: Message) -> int:
    """``len(_payload_bytes(part))`` without decoding a well-formed base64 payload (most of an
    attachment-heavy message's bytes): its size follows from the count of its base64 characters.
    Anything else -- other transfer encodings, base64 with stray characters or odd padding -- is decoded
    and measured, so the size is always the decoded size."""
    payload = part.get_payload()
    size = None
    if isinstance(payload, str) and payload.isascii() and is_base64_leaf(part):
        size = well_formed_base64_size(payload.encode("ascii"))
    return len(_payload_bytes(part)) if size is None else size


def _filename(part: Message) -> str:
    """The part's filename as the email package gives it, "" when it has none or cannot give it."""
    try:
        return get_filename(part) or ""
    except (LookupError, ValueError):
        return ""


def _extension_for(ctype: str) -> str:
    import mimetypes

    return mimetypes.guess_extension(ctype) or ".bin"


def _safe_filename(name: str) -> str:
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip().lstrip(".") or "attachment"
    return name[:255]


def _date(value: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _return_path(fields: dict[str, list[str]]) -> str | None:
    if "return-path" not in fields:
        return None
    raw = fields["return-path"][0]
    match = re.search(r"<([^>]*)>", raw)
    return (match.group(1) if match else raw).strip().lower()
