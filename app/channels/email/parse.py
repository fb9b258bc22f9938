"""Raw MIME bytes -> ParsedEmail (pure; standard library ``email`` with ``policy.default``).

Promises: every header is decoded (encoded-words, raw 8-bit, mislabelled charsets) and every text part
decoded through ``charsets``; a message that is hostile rather than merely odd (no headers at all,
thousands of parts, absurd nesting) raises ``UnparseableEmail`` with a reason code so the caller can
quarantine it. Nothing here touches the database.
"""
from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage as MimeMessage
from email.headerregistry import HeaderRegistry
from email.message import Message
from email.parser import BytesFeedParser, BytesParser
from email.utils import collapse_rfc2231_value, getaddresses, parsedate_to_datetime
from urllib.parse import unquote_to_bytes

from app.channels.email.charsets import (
    decode_bytes,
    decode_header_value,
    html_declared_charset,
)

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


# MIME structure fields whose values recur from message to message ("text/plain; charset=utf-8",
# "base64", "inline"): their header objects are shared by all messages (the email package's
# structured-header parser costs ~0.1-0.2 ms a value). Multipart types carry a boundary unique to
# their message: kept per message. Bounded: emptied when full.
_SHARED_FIELDS = frozenset({"content-type", "content-transfer-encoding", "content-disposition", "mime-version"})
_SHARED_MAX = 2048

# The plainest forms of those fields -- what most mailers write: 'multipart/mixed; boundary="b1"',
# 'attachment; filename="a.pdf"', "base64", "1.0" -- whose parsed header prints exactly as received
# (tests/email/test_parse.py proves it over generated values). The email package's own accessors
# (get_content_type, get_param, get_filename, get_boundary, get_content_disposition) read only that
# string, so for these the structured parse is put off until something asks for more (``_Deferred``).
# Anything else (unquoted parameters, comments, encoded words, odd spacing, non-ASCII; RFC 2231 forms
# other than ``_printed_decoded``'s) is parsed at once, as before.
_TOKEN = r"[A-Za-z0-9!#$&^_.+-]+"
_QUOTED_PARAMS = r'(?:; [A-Za-z0-9-]+="[A-Za-z0-9 ._+,/:=-]+")*'
_VERBATIM = {"content-type": re.compile(rf"{_TOKEN}/{_TOKEN}{_QUOTED_PARAMS}"),
             "content-disposition": re.compile(rf"{_TOKEN}{_QUOTED_PARAMS}"),
             "content-transfer-encoding": re.compile(_TOKEN), "mime-version": re.compile(r"[0-9]{1,3}\.[0-9]{1,3}")}
_PARAM_NAME = re.compile(r"; ([A-Za-z0-9-]+)=")
_PLAIN_PARAM = re.compile(r'; ([A-Za-z0-9-]+)="([^"]*)"')
_REGISTRY = HeaderRegistry()  # policy.default's header classes, for the parses put off


# The plainest forms but for RFC 2231 extended parameters -- name*=utf-8''%E6%8A%A5.pdf, how mailers write
# non-ASCII file names -- without language or continuations: the parsed header prints them decoded and
# quoted (filename="报.pdf"); for values that decode to printable text with no quote or backslash,
# that printed form is worked out here (tests/email/test_parse_feed.py holds it to the parse).
_FIELD_HEAD = {"content-type": re.compile(rf"{_TOKEN}/{_TOKEN}"), "content-disposition": re.compile(_TOKEN)}
_QUOTED_PARAM = re.compile(r'([A-Za-z0-9-]+)="([A-Za-z0-9 ._+,/:=-]+)"')
_EXTENDED_PARAM = re.compile(r"([A-Za-z0-9-]+)\*=(?i:utf-8)''((?:[A-Za-z0-9._-]|%[0-9A-Fa-f]{2})+)")


def _printed_decoded(field: str, value: str) -> str | None:
    """What the parsed header of ``field`` prints for ``value``, a plainest form with extended parameters
    (at least one); None: not such a form."""
    head, *params = value.split("; ")
    if field not in _FIELD_HEAD or not _FIELD_HEAD[field].fullmatch(head):
        return None
    printed, names, extended = [head], set(), False
    for param in params:
        quoted = _QUOTED_PARAM.fullmatch(param)
        if quoted:
            name, text = quoted.groups()
        else:
            encoded = _EXTENDED_PARAM.fullmatch(param)
            if encoded is None:
                return None
            name, extended = encoded.group(1), True
            try:
                text = unquote_to_bytes(encoded.group(2)).decode("utf-8")
            except UnicodeDecodeError:
                return None
            if not text.isprintable() or '"' in text or "\\" in text:
                return None
        if name.lower() in names:
            return None
        names.add(name.lower())
        printed.append(f'{name}="{text}"')
    return "; ".join(printed) if extended else None


def _prints_as_received(name: str, value: str) -> bool:
    """Whether the parsed header of ``name`` (a ``_SHARED_FIELDS`` name) prints exactly as ``value``."""
    if not _VERBATIM[name].fullmatch(value):
        return False
    names = [found.lower() for found in _PARAM_NAME.findall(value)]
    return len(names) == len(set(names))  # a repeated parameter is dropped by the parse


class _Deferred(str):
    """A MIME structure field in one of its plainest forms: the string the parsed header would be, with
    the structured parse (policy.default's, the same header class) run the first time an attribute of
    the parsed header is asked for. ``content_disposition`` -- what ``is_attachment`` asks of every part
    ``get_body`` walks -- is read from the string itself: the form is a token before any parameter."""

    def __new__(cls, value: str, name: str, received: str | None = None):
        """``value``: what the parsed header prints; ``received``: the field's value as received, when
        that is not the same (``_printed_decoded``)."""
        self = super().__new__(cls, value)
        self.__dict__["_field"] = name
        self.__dict__["_received"] = value if received is None else received
        return self

    @property
    def content_disposition(self) -> str:
        if self.__dict__["_field"].lower() != "content-disposition":
            return self._parsed().content_disposition  # the parsed header's answer (an AttributeError)
        return self.partition(";")[0].lower()

    def plain_params(self) -> dict[str, str]:
        """The parameters by lower-cased name, as the email package's ``get_param`` reads them from this
        form (quoted values with no quote or backslash within: unquoted as they stand; no name twice)."""
        params = self.__dict__.get("_params")
        if params is None:
            params = self.__dict__["_params"] = {name.lower(): value for name, value in _PLAIN_PARAM.findall(self)}
        return params

    def _parsed(self):
        header = self.__dict__.get("_header")
        if header is None:
            header = self.__dict__["_header"] = _REGISTRY(self.__dict__["_field"], self.__dict__["_received"])
        return header

    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return getattr(self._parsed(), attr)


class _ParsedHeaders(HeaderRegistry):
    """``policy.default``'s header factory, remembering what it parsed for one message (and, for the
    MIME structure fields, for every message: ``_SHARED_FIELDS``; for their plainest forms the parse is
    put off: ``_Deferred``).

    The email package parses a header afresh on every read -- ``get_content_type`` alone reads
    Content-Type several times per part, the parser and ``get_body`` many more -- and builds a new class
    for each read. Same classes, same parse, same header objects (immutable); only the repeats go."""

    _classes: dict[str, type] = {}  # by lower-cased name; shared: the default registry never changes
    _shared: dict[tuple[str, str], object] = {}  # (name, value) -> header object, for all messages

    def __init__(self) -> None:
        super().__init__()
        self._parsed: dict[tuple[str, str], object] = {}
        self.fetched: dict[tuple[str, str], object] = {}  # by the field as stored (``_Policy``)

    def __getitem__(self, name: str) -> type:
        key = name.lower()
        cls = self._classes.get(key)
        if cls is None:
            cls = self._classes[key] = super().__getitem__(name)
        return cls

    def __call__(self, name: str, value: str):
        key = (name, value)
        header = self._parsed.get(key)
        if header is None:
            header = self._parsed[key] = self._shared_or_parsed(name, value)
        return header

    def _shared_or_parsed(self, name: str, value: str):
        field = name.lower()
        if field not in _SHARED_FIELDS:
            return super().__call__(name, value)
        if "boundary" in value.lower():
            return self._deferred_or_parsed(name, field, value)
        key = (name, value)
        header = self._shared.get(key)
        if header is None:
            if len(self._shared) >= _SHARED_MAX:
                self._shared.clear()
            header = self._shared[key] = self._deferred_or_parsed(name, field, value)
        return header

    def _deferred_or_parsed(self, name: str, field: str, value: str):
        if _prints_as_received(field, value):
            return _Deferred(value, name)
        printed = _printed_decoded(field, value)
        if printed is not None:
            return _Deferred(printed, name, value)
        return super().__call__(name, value)


class _Policy(policy.EmailPolicy):
    """``policy.default`` (the same settings), whose header reads are remembered by the field as stored:
    the header object ``header_fetch_parse`` gives -- the same object, ``_ParsedHeaders`` remembering
    the parse -- without its line-break split and join on every read (~100 reads an attachment-heavy
    message)."""

    def header_fetch_parse(self, name, value):
        if type(value) is not str:  # a header object set by a caller: given back as it is
            return super().header_fetch_parse(name, value)
        fetched = self.header_factory.fetched
        header = fetched.get((name, value))
        if header is None:
            header = fetched[(name, value)] = super().header_fetch_parse(name, value)
        return header


class _Part(MimeMessage):
    """``policy.default``'s message class (EmailMessage) whose header lookup by name (``get``, under
    ``get_content_type``, ``get_param``, ``get_body`` ...: ~100 lookups an attachment-heavy message, each
    a loop over the fields) goes through an index of the field names: name -> the first field of that
    name, as ``Message.get`` finds it. The index holds while the field list is the same list of the same
    length (the email package adds fields by appending, removes them by building a new list, and
    replaces a value in place under the same name); otherwise it is built again. The header object
    fetched for a field (by the message's policy, its own for its life) is kept with the index while the
    field's stored value is the same object, and ``get_content_type`` (~14 calls a part while parsing)
    for the header object it was worked out from."""

    _names = None  # (field list, its length, lower-cased name -> position, position -> (stored value, header))
    _content_type = None  # (header object, content type)

    def get(self, name, failobj=None):
        headers = self._headers
        index = self._names
        if index is None or index[0] is not headers or index[1] != len(headers):
            names: dict[str, int] = {}
            for position, (field_name, _value) in enumerate(headers):
                names.setdefault(field_name.lower(), position)
            index = self._names = (headers, len(headers), names, [None] * len(headers))
        position = index[2].get(name.lower())
        if position is None:
            return failobj
        field_name, value = headers[position]
        fetched = index[3][position]
        if fetched is None or fetched[0] is not value:
            fetched = index[3][position] = (value, self.policy.header_fetch_parse(field_name, value))
        return fetched[1]

    def get_content_type(self) -> str:
        value = self.get("content-type")  # a header object (the policy's, remembered), None: no such field
        known = self._content_type
        if value is None or known is None or known[0] is not value:
            known = self._content_type = (value, super().get_content_type())
        return known[1]


_POLICY = _Policy(message_factory=_Part)


def _policy() -> policy.EmailPolicy:
    """``policy.default`` with a fresh header memo (one per message, so it goes with the message)."""
    return _POLICY.clone(header_factory=_ParsedHeaders())


def _header_block(raw: bytes, limit: int = 256 * 1024) -> bytes:
    """The header section of ``raw`` (up to and including the first blank line, CRLF or bare LF: where
    the parser ends the header), else its first ``limit`` bytes. One search from the start: an
    attachment-heavy message is not scanned end to end for a line ending style it does not use."""
    end = _HEADER_END.search(raw, 0, limit)
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


# What the parser is fed. The email package reads a message line by line in Python (~2 us a line) and
# compiles a regular expression for each multipart boundary it meets (~0.25 ms: boundaries are unique
# per message, so re's cache never hits). Two rewrites before parsing, each leaving the parse the same:
#
# 1. Long base64 bodies set aside (``_set_aside_base64``): a run of base64 lines that is a part's body
#    is replaced by a short placeholder line, and put back in the parsed parts' text (``_put_back``),
#    which then holds exactly what the parser would have put there. A non-empty line of base64
#    characters alone is never structure to the parser (not a header, a boundary or a blank line), so
#    setting any run of them aside is safe. The runs are found from the structure -- a body starts after
#    a blank line and a base64 body ends at the next line holding a "-" (a boundary line; base64 has
#    none) -- and each is checked with one C-speed pass over its bytes (bytes.translate).
# 2. Multipart boundaries made canonical (``_canonical_boundaries``): each quoted boundary="B" parameter
#    and each line starting "--B" (boundary lines: "--B", "--B--", blanks allowed after) is rewritten with
#    a fixed string ("_desk00.", "_desk01." ...), whose regular expressions the parser then compiles once
#    per process. The parse of the rewritten message is the original's with the boundary strings
#    swapped: both spellings are made of characters every line test of the parser treats alike
#    (printable; no colon, quote or blank), no boundary is the start of another, and the canonical
#    strings are not in the message. They are put back after parsing (``_restore_boundaries``), which
#    also checks that each multipart was split by the boundary its original header gives and that no
#    other boundary could have met a rewritten line; if not (a header spelt otherwise, say), the message
#    is parsed again without this rewrite.
_BASE64_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_MIN_RUN_CHARS = 1024  # shorter bodies are left in place: too little parsing saved to be worth it
_PART_HEADER_MAX = 8192  # how far after a line holding "-" a blank line (a body's start) is looked for
_PLACEHOLDER = re.compile(r"desk-set-aside-[0-9a-f]{12}-\d+")
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_BOUNDARY_PARAM = b'boundary="'
_BOUNDARY_TEXT = re.compile(rb"[A-Za-z0-9'+_,./=?-]{1,200}")  # no colon, quote, blank or line break
_CANONICAL_MARK = "_desk"
# One width, and no end of one the start of another (only the whole string starts with "_"): a
# canonical string found in the parsed text is one the rewrite put there.
_CANONICAL = tuple(f"{_CANONICAL_MARK}{n:02d}." for n in range(20))


@dataclass(frozen=True)
class _Run:
    """A set-aside run: its text, and how many base64 characters it holds (its line endings excepted)."""

    text: str
    chars: int


@dataclass
class _Feed:
    """What the parser is fed for one raw message, and what to put back in the parsed message."""

    data: bytes  # runs set aside, boundaries canonical
    set_aside: bytes  # runs set aside only: parsed when the canonical boundaries cannot be trusted
    runs: dict[str, _Run] = field(default_factory=dict)  # by placeholder
    prefix: str = ""  # the placeholders' common prefix
    boundaries: dict[str, str] = field(default_factory=dict)  # canonical -> original


def _parse_mime(raw: bytes, rewrite: bool = True) -> tuple[Message, _RunSizes]:
    """(``raw`` parsed by the email package, the sizes of the parts that held set-aside runs).
    ``rewrite`` False: the reference -- ``raw`` fed as it is to the parser with ``policy.default`` itself."""
    if not rewrite:
        return _feed_parser(raw, policy.default), _RunSizes({})
    feed = _prepare(raw)
    msg = _feed_parser(feed.data)
    if feed.boundaries and not _restore_boundaries(msg, feed.boundaries):
        msg = _feed_parser(feed.set_aside)
    return msg, _put_back(msg, feed.runs, feed.prefix)


def _feed_parser(data: bytes, parse_policy: policy.EmailPolicy | None = None) -> Message:
    feeder = BytesFeedParser(policy=parse_policy or _policy())  # fed at once: BytesParser would feed 8 KB pieces
    feeder.feed(data)
    return feeder.close()


def _prepare(raw: bytes) -> _Feed:
    end = _HEADER_END.search(raw)
    if end is None:  # a header alone: no body to set aside, no part to split
        return _Feed(raw, raw)
    set_aside, runs, prefix = _set_aside_base64(raw, end.end())
    data, boundaries = _canonical_boundaries(set_aside)
    return _Feed(data, set_aside, runs, prefix, boundaries)


def _set_aside_base64(raw: bytes, body_start: int) -> tuple[bytes, dict[str, _Run], str]:
    """(``raw`` with each long base64 body after ``body_start`` replaced by a placeholder line, the runs
    by placeholder, the placeholders' common prefix). Nothing set aside: ``raw`` itself and no runs."""
    found = _base64_bodies(raw, body_start)
    if not found:
        return raw, {}, ""
    prefix = f"desk-set-aside-{secrets.token_hex(6)}-"
    runs: dict[str, _Run] = {}
    pieces, done = [], 0
    for start, stop, run in found:
        token = f"{prefix}{len(runs)}"
        runs[token] = run
        pieces += (raw[done:start], token.encode())
        done = stop
    pieces.append(raw[done:])
    fed = b"".join(pieces)
    if fed.count(prefix.encode()) != len(runs):  # pragma: no cover - 48 random bits
        return raw, {}, ""
    return fed, runs, prefix


def _base64_bodies(raw: bytes, pos: int) -> list[tuple[int, int, _Run]]:
    """The long runs of base64 lines in ``raw`` that make a part's body (its last line excepted when
    padded), from ``pos`` (the first body's start): (start, stop, run). A body is looked for after each
    line holding a "-", from the blank line that follows (within ``_PART_HEADER_MAX`` bytes), up to the
    next line holding a "-"."""
    found = []
    size = len(raw)
    while pos < size:
        dash = raw.find(b"-", pos)
        stop = size if dash < 0 else raw.rfind(b"\n", pos, dash) + 1
        if stop - pos > _MIN_RUN_CHARS:
            run = _base64_run(raw, pos, stop)
            if run is not None:
                found.append(run)
        if dash < 0:
            break
        blank = _HEADER_END.search(raw, dash, dash + _PART_HEADER_MAX)
        pos = blank.end() if blank else dash + _PART_HEADER_MAX
    return found


def _base64_run(raw: bytes, start: int, stop: int) -> tuple[int, int, _Run] | None:
    """The lines of ``raw`` from ``start`` (a line's start) up to ``stop`` as a run to set aside, when
    they are all non-empty lines of base64 characters: (start, where the run ends -- its last line's
    ending stays, after the placeholder --, the run). A last line with padding ("=") is left out, and
    so are blank lines at the end."""
    cut = _last_line_end(raw, start, stop)
    while cut > start and raw[cut - 1] in b"\r\n":
        cut -= 1
    if cut > start and raw[cut - 1] == ord("="):
        cut = _last_line_end(raw, start, cut)
    if cut - start < _MIN_RUN_CHARS:
        return None
    text = raw[start:cut]
    rest = text.translate(None, _BASE64_CHARS)
    if rest and not _separates_lines(text, rest):
        return None
    return start, cut, _Run(text.decode("ascii"), len(text) - len(rest))


def _last_line_end(raw: bytes, start: int, stop: int) -> int:
    """Where the text of the last line ending (CRLF or LF) in ``raw[start:stop]`` starts; ``start``: none."""
    newline = raw.rfind(b"\n", start, stop)
    if newline < 0:
        return start
    return newline - 1 if newline > start and raw[newline - 1] == ord("\r") else newline


def _separates_lines(text: bytes, rest: bytes) -> bool:
    """Whether ``rest``, the bytes of ``text`` that are not base64 characters, are line endings of one
    kind (CRLF or LF) between non-empty lines: then ``text`` is lines of base64 characters alone."""
    eol = b"\r\n" if rest[0] == ord("\r") else b"\n"
    count = len(rest) // len(eol)
    if rest != eol * count:
        return False
    width = text.find(eol)
    step = width + len(eol)
    if width > 0 and len(text) > count * step and text[width::step][:count] == eol[:1] * count \
            and text[step - 1::step][:count] == b"\n" * count:
        return True  # lines of one length (as encoders write them), the last one not empty: every ending placed
    return text.count(eol) == count and eol * 2 not in text and not text.startswith(eol) \
        and not text.endswith(eol)


def _canonical_boundaries(data: bytes) -> tuple[bytes, dict[str, str]]:
    """(``data`` with its quoted boundary parameters and boundary lines rewritten with canonical
    boundaries, canonical -> original boundary). Nothing rewritten: ``data`` itself and {}."""
    edits, canonical = _boundary_params(data)
    if not canonical or _CANONICAL_MARK.encode() in data \
            or any(one != other and other.startswith(one) for one in canonical for other in canonical):
        return data, {}
    for boundary, replacement in canonical.items():
        edits += _boundary_lines(data, boundary, replacement)
    edits.sort()
    pieces, done = [], 0
    for start, stop, replacement in edits:
        pieces += (data[done:start], replacement)
        done = stop
    pieces.append(data[done:])
    return b"".join(pieces), {new.decode(): old.decode() for old, new in canonical.items()}


def _boundary_params(data: bytes) -> tuple[list[tuple[int, int, bytes]], dict[bytes, bytes]]:
    """(the spans of the boundaries in quoted boundary="B" parameters of ``data``, each with its
    canonical replacement; boundary -> canonical). Too many boundaries: nothing."""
    edits: list[tuple[int, int, bytes]] = []
    canonical: dict[bytes, bytes] = {}
    pos = data.find(_BOUNDARY_PARAM)
    while pos >= 0:
        start = pos + len(_BOUNDARY_PARAM)
        stop = data.find(b'"', start)
        if stop < 0:
            break
        boundary = data[start:stop]
        if _BOUNDARY_TEXT.fullmatch(boundary) and boundary.strip(b"-"):
            if boundary not in canonical:
                if len(canonical) == len(_CANONICAL):
                    return [], {}
                canonical[boundary] = _CANONICAL[len(canonical)].encode()
            edits.append((start, stop, canonical[boundary]))
        pos = data.find(_BOUNDARY_PARAM, stop + 1)
    return edits, canonical


def _boundary_lines(data: bytes, boundary: bytes, replacement: bytes) -> list[tuple[int, int, bytes]]:
    """The spans of ``boundary`` in the lines of ``data`` that start with "--" and ``boundary`` (every
    line the parser's pattern for ``boundary`` matches, and others, which no pattern can match: no
    boundary starts another), each with ``replacement``."""
    edits = []
    line = b"--" + boundary
    pos = data.find(line)
    while pos >= 0:
        if pos == 0 or data[pos - 1] in b"\r\n":
            edits.append((pos + 2, pos + len(line), replacement))
        pos = data.find(line, pos + len(line))
    return edits


def _restore_boundaries(msg: Message, originals: dict[str, str]) -> bool:
    """Put the original boundaries back in every header and text of ``msg``, parsed with canonical
    ones (``originals``: canonical -> original). False when that parse cannot be trusted to be the
    original's (then ``msg`` is half restored: parse again)."""
    for part in msg.walk():
        if not _restore_headers(part, originals):
            return False
        if isinstance(part._payload, str):
            part._payload = _with_originals(part._payload, originals)
        part.preamble, part.epilogue = _with_originals(part.preamble, originals), \
            _with_originals(part.epilogue, originals)
        if part.get_unixfrom():
            part.set_unixfrom(_with_originals(part.get_unixfrom(), originals))
    return True


def _restore_headers(part: Message, originals: dict[str, str]) -> bool:
    """Restore the part's headers holding a canonical boundary; False unless the parser split the part
    (if at all) as it would have split the original: headers rewritten are Content-Type fields only,
    the content type is the same, the boundary is the original's canonical one, and a boundary that was
    not rewritten is not one that could match a rewritten line."""
    rewritten = [n for n, (name, value) in enumerate(part._headers)
                 if _CANONICAL_MARK in name or _CANONICAL_MARK in value]
    if not rewritten:
        return part.get_content_maintype() != "multipart" or not _near_boundaries(_boundary(part), originals)
    parsed_as = _split_by(part)
    for n in rewritten:
        name, value = part._headers[n]
        if name.lower() != "content-type":
            return False
        part._headers[n] = (name, _with_originals(value, originals))
    content_type, boundary = _split_by(part)
    if parsed_as[1] in originals:
        return (parsed_as[0], originals[parsed_as[1]]) == (content_type, boundary)
    return parsed_as == (content_type, boundary) and not _near_boundaries(boundary, originals)


def _split_by(part: Message) -> tuple[str, str | None]:
    """(the part's content type, the boundary the parser splits it by, if a multipart)."""
    content_type = part.get_content_type()
    return content_type, _boundary(part) if content_type.partition("/")[0] == "multipart" else None


def _near_boundaries(boundary: str | None, originals: dict[str, str]) -> bool:
    """Whether a boundary line of ``boundary`` could be a rewritten line or the rewrite of one: the
    boundary holds one of the boundaries rewritten (or canonical ones), or starts one."""
    if boundary is None:
        return False
    return any(known in boundary or known.startswith(boundary) for pair in originals.items() for known in pair)


def _with_originals(text: str | None, originals: dict[str, str]) -> str | None:
    if not text or _CANONICAL_MARK not in text:
        return text
    for canonical, original in originals.items():
        text = text.replace(canonical, original)
    return text


class _RunSizes:
    """The decoded sizes of the base64 leaf parts that held set-aside runs, worked out when asked (for
    attachments) from the runs' lengths -- the runs are base64 characters only -- without another pass
    over their text."""

    def __init__(self, runs: dict[str, _Run]) -> None:
        self.runs = runs
        self.held: dict[int, str] = {}  # id of the part -> its text as parsed, with placeholders

    def of(self, part: Message) -> int | None:
        """The part's decoded size; None: work it out from its text."""
        text = self.held.get(id(part))
        return _size_with_runs(text, self.runs) if text is not None and _is_base64_leaf(part) else None


def _put_back(msg: Message, runs: dict[str, _Run], prefix: str) -> _RunSizes:
    """Put the set-aside runs back wherever the parser placed their placeholders."""
    sizes = _RunSizes(runs)
    if not runs:
        return sizes

    def restore(text: str | None) -> str | None:
        return _PLACEHOLDER.sub(lambda m: runs[m.group(0)].text if m.group(0) in runs else m.group(0), text) \
            if text and prefix in text else text

    for part in msg.walk():
        if isinstance(part._payload, str) and prefix in part._payload:
            sizes.held[id(part)] = part._payload
            part._payload = restore(part._payload)
        part.preamble, part.epilogue = restore(part.preamble), restore(part.epilogue)
    return sizes


def _is_base64_leaf(part: Message) -> bool:
    return not _is_multipart(part) and str(part.get("content-transfer-encoding", "")).lower() == "base64"


def _size_with_runs(text: str, runs: dict[str, _Run]) -> int | None:
    """The decoded size of a base64 payload ``text`` holding placeholders of ``runs`` (None: work it out
    from the text with the runs put back). Each run stands in as 4 to 7 base64 characters, as many
    modulo 4 as it holds: the rest of the text is checked as it is, and the padding comes out the same."""
    tokens = _PLACEHOLDER.findall(text)
    if not text.isascii() or any(token not in runs for token in tokens):
        return None
    standing_in = {token: 4 + runs[token].chars % 4 for token in tokens}
    size = _well_formed_base64_size(_PLACEHOLDER.sub(lambda m: "A" * standing_in[m.group(0)], text).encode("ascii"))
    if size is None:
        return None
    return size + sum((runs[token].chars - standing_in[token]) * 3 // 4 for token in tokens)


def parse_email(raw: bytes, *, max_parts: int = 500, set_aside_base64: bool = True) -> ParsedEmail:
    """Parse ``raw`` into a ParsedEmail. Raises UnparseableEmail (reason codes: ``no_headers``,
    ``too_many_parts``, ``too_deep``, ``broken_mime``). ``set_aside_base64``: False parses every line
    with the email package and ``policy.default`` as they stand, nothing rewritten or remembered (the
    same result, slower: the reference, for tests)."""
    msg, sizes = _parse_mime(raw, set_aside_base64)
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


def _is_multipart(part: Message) -> bool:
    """Whether ``part`` is walked into (a multipart with parts); anything else is a leaf, a forwarded
    message/rfc822 included."""
    return part.get_content_maintype() == "multipart" and isinstance(part.get_payload(), list)


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
        if _is_multipart(part):
            prefix = f"{section}." if section else ""
            stack.extend((sub, depth + 1, f"{prefix}{n}")
                         for n, sub in reversed(list(enumerate(part.get_payload(), 1))))
        else:
            leaves.append((part, section or "1"))
    return leaves


def _section(msg: Message, section: str) -> Message:
    """The leaf part numbered ``section`` (as ``_leaves`` numbers them). Raises LookupError."""
    numbers = section.split(".")
    if not _is_multipart(msg):
        if numbers != ["1"]:
            raise LookupError(f"no MIME part {section!r} in a message that is not multipart")
        return msg
    part = msg
    for number in numbers:
        children = part.get_payload() if _is_multipart(part) else None
        if not children or not number.isdigit() or not 1 <= int(number) <= len(children):
            raise LookupError(f"no MIME part {section!r}")
        part = children[int(number) - 1]
    if _is_multipart(part):
        raise LookupError(f"MIME part {section!r} is a multipart, not an attachment")
    return part


def attachment_bytes(raw: bytes, part: str) -> bytes:
    """The decoded bytes of the attachment at section ``part`` of ``raw`` (as ``parse_email`` numbered
    it; "" the whole message): what ``ParsedAttachment.data`` gave when ``raw`` was parsed.
    Raises LookupError when ``raw`` has no such leaf part."""
    if part == "":
        return raw
    return _payload_bytes(_section(_parse_mime(raw)[0], part))


def _assemble(msg: Message, fields: dict[str, list[str]], headers: dict[str, list[str]],
              leaves: list[tuple[Message, str]], sizes: _RunSizes) -> ParsedEmail:
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
        if ctype == "text/plain" and not _get_filename(part) and part.get_content_disposition() != "attachment":
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
    label = _param(part, "charset")
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
    if isinstance(payload, str) and payload.isascii() and _is_base64_leaf(part):
        size = _well_formed_base64_size(payload.encode("ascii"))
    return len(_payload_bytes(part)) if size is None else size


def _well_formed_base64_size(payload: bytes) -> int | None:
    """The decoded size of a base64 payload (None: not well-formed, decode it to know).

    get_payload(decode=True) joins the lines (bytes.splitlines: CR, LF, CRLF), pads to a multiple of
    four and decodes; a string of base64 characters with at most two "=" at its end (padding included)
    decodes to 3 bytes per 4 characters, the padding's characters excepted."""
    joined = payload.translate(None, b"\r\n")
    rest = joined.translate(None, _BASE64_CHARS)
    if rest.strip(b"=") or not joined.endswith(rest) or len(rest) + -len(joined) % 4 > 2:
        return None
    return (len(joined) - len(rest)) * 3 // 4


_MISSING = object()


def _param(part: Message, name: str, header: str = "content-type", failobj=None):
    """``part.get_param(name, failobj, header)`` (``name`` lower-cased); read from the field's string
    when the field is in its plainest form (``_Deferred.plain_params``), not parsed again."""
    value = part.get(header)
    if isinstance(value, _Deferred):
        return value.plain_params().get(name, failobj)
    return part.get_param(name, failobj, header)


def _boundary(part: Message) -> str | None:
    """``part.get_boundary()``, by way of ``_param``."""
    boundary = _param(part, "boundary", failobj=_MISSING)
    return None if boundary is _MISSING else collapse_rfc2231_value(boundary).rstrip()


def _get_filename(part: Message) -> str | None:
    """``part.get_filename()``, by way of ``_param``."""
    filename = _param(part, "filename", "content-disposition", _MISSING)
    if filename is _MISSING:
        filename = _param(part, "name", "content-type", _MISSING)
    return None if filename is _MISSING else collapse_rfc2231_value(filename).strip()


def _filename(part: Message) -> str:
    """The part's filename as the email package gives it, "" when it has none or cannot give it."""
    try:
        return _get_filename(part) or ""
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
