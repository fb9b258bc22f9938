"""MIME header machinery for the parser (pure): ``policy.default`` with its header reads remembered.

Exists apart from ``parse`` because it is one mechanism with one contract -- the same header objects
the email package's ``policy.default`` would give, parsed once per message (the MIME structure fields
once for all messages, their plainest forms not until something asks) -- which ``mime_feed`` (the
parser's policy, boundary reads) and ``parse`` (parameter and file name reads) both build on.
"""
from __future__ import annotations

import re
from email import policy
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage as MimeMessage
from email.message import Message
from email.utils import collapse_rfc2231_value
from urllib.parse import unquote_to_bytes

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


def message_policy() -> policy.EmailPolicy:
    """``policy.default`` with a fresh header memo (one per message, so it goes with the message)."""
    return _POLICY.clone(header_factory=_ParsedHeaders())


_MISSING = object()


def get_param(part: Message, name: str, header: str = "content-type", failobj=None):
    """``part.get_param(name, failobj, header)`` (``name`` lower-cased); read from the field's string
    when the field is in its plainest form (``_Deferred.plain_params``), not parsed again."""
    value = part.get(header)
    if isinstance(value, _Deferred):
        return value.plain_params().get(name, failobj)
    return part.get_param(name, failobj, header)


def get_boundary(part: Message) -> str | None:
    """``part.get_boundary()``, by way of ``get_param``."""
    boundary = get_param(part, "boundary", failobj=_MISSING)
    return None if boundary is _MISSING else collapse_rfc2231_value(boundary).rstrip()


def get_filename(part: Message) -> str | None:
    """``part.get_filename()``, by way of ``get_param``."""
    filename = get_param(part, "filename", "content-disposition", _MISSING)
    if filename is _MISSING:
        filename = get_param(part, "name", "content-type", _MISSING)
    return None if filename is _MISSING else collapse_rfc2231_value(filename).strip()
