"""What the email package's parser is fed, and putting back what was set aside (pure).

Exists apart from ``parse`` because it is one mechanism with one contract -- two rewrites of the raw
bytes before parsing (long base64 bodies set aside, multipart boundaries made canonical), each undone
after it, so the parsed message is the one the raw bytes themselves give -- and ``parse`` only asks for
the parsed message (``parse_mime``) and the sizes of the parts whose runs it set aside (``RunSizes``).
The reads of structure both need (``HEADER_END``, ``is_multipart``, ``is_base64_leaf``,
``well_formed_base64_size``) live here, below ``parse``.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from email import policy
from email.message import Message
from email.parser import BytesFeedParser

from app.channels.email.mime_headers import get_boundary, message_policy

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
HEADER_END = re.compile(rb"\r?\n\r?\n")
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


def parse_mime(raw: bytes, rewrite: bool = True) -> tuple[Message, RunSizes]:
    """(``raw`` parsed by the email package, the sizes of the parts that held set-aside runs).
    ``rewrite`` False: the reference -- ``raw`` fed as it is to the parser with ``policy.default`` itself."""
    if not rewrite:
        return _feed_parser(raw, policy.default), RunSizes({})
    feed = _prepare(raw)
    msg = _feed_parser(feed.data)
    if feed.boundaries and not _restore_boundaries(msg, feed.boundaries):
        msg = _feed_parser(feed.set_aside)
    return msg, _put_back(msg, feed.runs, feed.prefix)


def _feed_parser(data: bytes, parse_policy: policy.EmailPolicy | None = None) -> Message:
    feeder = BytesFeedParser(policy=parse_policy or message_policy())  # fed at once: BytesParser would feed 8 KB pieces
    feeder.feed(data)
    return feeder.close()


def _prepare(raw: bytes) -> _Feed:
    end = HEADER_END.search(raw)
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
        blank = HEADER_END.search(raw, dash, dash + _PART_HEADER_MAX)
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
        return part.get_content_maintype() != "multipart" or not _near_boundaries(get_boundary(part), originals)
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
    return content_type, get_boundary(part) if content_type.partition("/")[0] == "multipart" else None


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


class RunSizes:
    """The decoded sizes of the base64 leaf parts that held set-aside runs, worked out when asked (for
    attachments) from the runs' lengths -- the runs are base64 characters only -- without another pass
    over their text."""

    def __init__(self, runs: dict[str, _Run]) -> None:
        self.runs = runs
        self.held: dict[int, str] = {}  # id of the part -> its text as parsed, with placeholders

    def of(self, part: Message) -> int | None:
        """The part's decoded size; None: work it out from its text."""
        text = self.held.get(id(part))
        return _size_with_runs(text, self.runs) if text is not None and is_base64_leaf(part) else None


def _put_back(msg: Message, runs: dict[str, _Run], prefix: str) -> RunSizes:
    """Put the set-aside runs back wherever the parser placed their placeholders."""
    sizes = RunSizes(runs)
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


def is_base64_leaf(part: Message) -> bool:
    return not is_multipart(part) and str(part.get("content-transfer-encoding", "")).lower() == "base64"


def _size_with_runs(text: str, runs: dict[str, _Run]) -> int | None:
    """The decoded size of a base64 payload ``text`` holding placeholders of ``runs`` (None: work it out
    from the text with the runs put back). Each run stands in as 4 to 7 base64 characters, as many
    modulo 4 as it holds: the rest of the text is checked as it is, and the padding comes out the same."""
    tokens = _PLACEHOLDER.findall(text)
    if not text.isascii() or any(token not in runs for token in tokens):
        return None
    standing_in = {token: 4 + runs[token].chars % 4 for token in tokens}
    size = well_formed_base64_size(_PLACEHOLDER.sub(lambda m: "A" * standing_in[m.group(0)], text).encode("ascii"))
    if size is None:
        return None
    return size + sum((runs[token].chars - standing_in[token]) * 3 // 4 for token in tokens)


def is_multipart(part: Message) -> bool:
    """Whether ``part`` is walked into (a multipart with parts); anything else is a leaf, a forwarded
    message/rfc822 included."""
    return part.get_content_maintype() == "multipart" and isinstance(part.get_payload(), list)


def well_formed_base64_size(payload: bytes) -> int | None:
    """The decoded size of a base64 payload (None: not well-formed, decode it to know).

    get_payload(decode=True) joins the lines (bytes.splitlines: CR, LF, CRLF), pads to a multiple of
    four and decodes; a string of base64 characters with at most two "=" at its end (padding included)
    decodes to 3 bytes per 4 characters, the padding's characters excepted."""
    joined = payload.translate(None, b"\r\n")
    rest = joined.translate(None, _BASE64_CHARS)
    if rest.strip(b"=") or not joined.endswith(rest) or len(rest) + -len(joined) % 4 > 2:
        return None
    return (len(joined) - len(rest)) * 3 // 4
