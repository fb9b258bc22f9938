"""What the parser is fed (base64 bodies set aside, canonical boundaries) and the cheaper header reads:
every result the same as the email package's own parse with ``policy.default``."""
from __future__ import annotations

import base64
import random
import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.channels.email import mime_feed, mime_headers, parse
from app.channels.email.parse import UnparseableEmail, attachment_bytes, parse_email


def _same_as_the_reference(raw: bytes) -> None:
    """parse_email(raw) equals the reference parse, and every attachment reads back from ``raw``."""
    try:
        slow = parse_email(raw, set_aside_base64=False)
    except UnparseableEmail as exc:
        with pytest.raises(UnparseableEmail) as info:
            parse_email(raw)
        assert (info.value.reason, info.value.detail) == (exc.reason, exc.detail)
        return
    fast = parse_email(raw)
    assert fast == slow
    for got, expected in zip(fast.attachments, slow.attachments, strict=True):
        assert got.data == expected.data
        assert got.size == len(expected.data)
        assert attachment_bytes(raw, got.part) == expected.data


def _lines(text: str, eol: str) -> bytes:
    return text.replace("\n", eol).encode("utf-8", "surrogateescape")


def _b64(data: bytes, width: int = 76, eol: str = "\n") -> str:
    encoded = base64.b64encode(data).decode()
    return eol.join(encoded[i:i + width] for i in range(0, len(encoded), width))


HEAD = "From: a@x.test\nTo: support@desk.test\nSubject: s\nMessage-ID: <m@x.test>\nMIME-Version: 1.0\n"
PDF = _b64(random.Random(1).randbytes(6000))


def _mixed(boundary: str, declared: str | None = None, *, body_text: str = "hello", close: bool = True,
           epilogue: str = "") -> str:
    declared = declared if declared is not None else f'boundary="{boundary}"'
    return (f"{HEAD}Content-Type: multipart/mixed; {declared}\n\npreamble\n--{boundary}\n"
            f"Content-Type: text/plain\n\n{body_text}\n--{boundary}\nContent-Type: application/pdf\n"
            f"Content-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=\"a.pdf\"\n\n{PDF}\n"
            + (f"--{boundary}--\n" if close else "") + epilogue)


# --- hand-written cases: every odd thing a boundary can do ------------------------------------------------

CASES = {
    "plain": _mixed("B1"),
    "boundary text in the body": _mixed("B1", body_text='see boundary="B1" and --B1x and x--B1\n --B1\nboundary="B1"'),
    "a boundary line inside a text part ends it": _mixed("B1", body_text="before\n--B1\nafter"),
    "no closing boundary": _mixed("B1", close=False),
    "epilogue with a boundary line": _mixed("B1", epilogue="tail\n--B1\nmore\n"),
    "canonical string as the boundary": _mixed("_desk00."),
    "canonical string in the text": _mixed("B1", body_text="_desk00. and _desk01."),
    "canonical string in a header": _mixed("B1").replace("Subject: s", "Subject: _desk00."),
    "boundary the start of another": _mixed("B1", body_text="--B1-x\n").replace(
        "Content-Type: text/plain\n", 'Content-Type: multipart/alternative; boundary="B1-x"\n'),
    "boundary with dashes after another": _mixed("B1").replace("preamble", "--B1--x\n"),
    "unquoted boundary": _mixed("B1", "boundary=B1"),
    "folded boundary parameter": _mixed("B1", '\n boundary="B1"'),
    "upper-case parameter name": _mixed("B1", 'BOUNDARY="B1"'),
    "RFC 2231 boundary": _mixed("B1", "boundary*=''B1"),
    "boundary with a colon": _mixed("a:b"),
    "boundary with a space": _mixed("a b", 'boundary="a b"'),
    "boundary of dashes only": _mixed("--", 'boundary="--"'),
    "boundary with trailing blanks": _mixed("B1", 'boundary="B1  "'),
    "boundary named twice": _mixed("B1", 'boundary="B1"; boundary="B2"'),
    "two Content-Type fields": _mixed("B1").replace("MIME-Version: 1.0\n",
                                                    'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="B2"\n'),
    "boundary parameter in another field": _mixed("B1").replace("Subject: s", 'Subject: s\nX-Note: boundary="B1"'),
    "boundary parameter in a field name": _mixed("B1").replace("Subject: s", 'boundary="B1": s'),
    "boundary declared but never used": _mixed("B1").replace('boundary="B1"', 'boundary="B9"'),
    "not multipart but a boundary": _mixed("B1").replace("multipart/mixed", "text/plain"),
    "a multipart with no boundary": _mixed("B1", "charset=utf-8"),
    "boundary lines with blanks and bare CR": _mixed("B1").replace("\n--B1\n", "\n--B1 \t\r"),
    "nested multipart reusing the boundary": _mixed("B1", body_text="x").replace(
        "Content-Type: text/plain\n", 'Content-Type: multipart/alternative; boundary="B1"\n'),
    "nested multipart reusing it unquoted": _mixed("B1", body_text="x").replace(
        "Content-Type: text/plain\n", "Content-Type: multipart/alternative; boundary=B1\n"),
    "boundary a substring of another": _mixed("xB1y", body_text="--B1\n").replace(
        "Content-Type: text/plain\n", 'Content-Type: multipart/alternative; boundary="B1"\n'),
    "many boundaries": "".join(
        [f'{HEAD}Content-Type: multipart/mixed; boundary="L0"\n\n']
        + [f'--L{n}\nContent-Type: multipart/mixed; boundary="L{n + 1}"\n\n' for n in range(24)]
        + ["--L24\nContent-Type: text/plain\n\ndeep\n"] + [f"--L{n}--\n" for n in range(24, -1, -1)]),
    "forwarded message with its own multipart": _mixed("B1", body_text="x").replace(
        "Content-Type: text/plain\n\nx", 'Content-Type: message/rfc822\n\nFrom: b@y.test\nSubject: in\n'
        'Content-Type: multipart/mixed; boundary="IN"\n\n--IN\nContent-Type: text/plain\n\ninner\n--IN--'),
    "unterminated boundary quote": f'{HEAD}Content-Type: multipart/mixed; boundary="B1\n\n--B1\n\nx\n--B1--\n',
    "a unix From line naming the boundary": 'From boundary="B1" Mon Jan  1 00:00:00 2026\n' + _mixed("B1"),
    "delivery status": (f'{HEAD}Content-Type: multipart/report; report-type=delivery-status; boundary="R"\n\n'
                        "--R\nContent-Type: text/plain\n\nfailed\n--R\nContent-Type: message/delivery-status\n\n"
                        "Reporting-MTA: dns; mx\n\nFinal-Recipient: rfc822; x@y\nStatus: 5.1.1\n\n--R--\n"),
    "digest": (f'{HEAD}Content-Type: multipart/digest; boundary="D"\n\n--D\n\nFrom: c@z\nSubject: one\n\n'
               f"{PDF}\n--D\n\nFrom: d@z\n\ntwo\n--D--\n"),
}


@pytest.mark.parametrize("eol", ["\n", "\r\n"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_odd_boundaries_parse_the_same(name, eol):
    _same_as_the_reference(_lines(CASES[name], eol))


# --- base64 bodies ------------------------------------------------------------------------------------------

def _single(body: str, cte: str = "base64", ctype: str = "application/octet-stream") -> str:
    return f"{HEAD}Content-Type: {ctype}\nContent-Transfer-Encoding: {cte}\n\n{body}"


BODIES = {
    "uniform lines": PDF + "\n",
    "no newline at the end": PDF,
    "blank lines after": PDF + "\n\n\n",
    "uneven line lengths": _b64(bytes(3000), 76).replace("\n", "\n\n", 0) + "\n" + _b64(bytes(3000), 60) + "\n",
    "a blank line within": PDF[:2000] + "\n\n" + PDF[2000:] + "\n",
    "a first line that is blank": "\n" + PDF + "\n",
    "padding in the middle": _b64(bytes(1000)) + "\n" + _b64(bytes(2000)) + "\n",
    "a stray character": PDF[:3000] + "!" + PDF[3000:] + "\n",
    "a colon (header-like)": "Subject: x\n" + PDF + "\n",
    "bare CR endings": PDF.replace("\n", "\r") + "\n",
    "mixed endings": PDF.replace("\n", "\r\n", 3) + "\n",
    "one long line": _b64(bytes(3000), 10_000) + "\n",
    "one line and no line ending": _b64(bytes(3000), 10_000),
    "too short without its padded last line": _b64(bytes(775)) + "\n",
    "short lines": _b64(bytes(3000), 4) + "\n",
    "dash lines": PDF + "\n-- \nsignature\n",
    "quoted-printable": "caf=C3=A9 " * 300 + "\n",
}


@pytest.mark.parametrize("name", sorted(BODIES))
@pytest.mark.parametrize("eol", ["\n", "\r\n"])
def test_odd_bodies_parse_the_same(name, eol):
    cte = "quoted-printable" if name == "quoted-printable" else "base64"
    _same_as_the_reference(_lines(_single(BODIES[name], cte), eol))
    _same_as_the_reference(_lines(_mixed("B1").replace(PDF, BODIES[name].rstrip("\n")), eol))


@pytest.mark.parametrize(("text", "separated"), [
    (b"QUJD\nREVG\nR0g", True), (b"QUJD\r\nREVG\r\nR0g", True), (b"QUJD\nREVG", True),
    (b"QUJD\nRE\nR0dIS0w", True),  # lines of unequal lengths
    (b"QUJD\n\nREVG", False), (b"\nQUJD", False), (b"QUJD\n", False), (b"QUJD\rREVG", False),
    (b"QUJD\r\nREVG\nR0g", False), (b"QUJD\r\r\nREVG", False), (b"QU\r\n\r\nJD", False),
    (b"QUJD\r\n", False), (b"\r\nQUJD", False), (b"QUJD.REVG", False),
])
def test_only_line_endings_between_non_empty_lines_make_a_run(text, separated):
    from app.channels.email.mime_feed import _BASE64_CHARS, _separates_lines

    assert _separates_lines(text, text.translate(None, _BASE64_CHARS)) == separated


def test_the_bench_mail_takes_the_fast_path_parsing_once(monkeypatch):
    from bench.email import build_message

    feeds = []
    real = mime_feed._feed_parser
    monkeypatch.setattr(mime_feed, "_feed_parser", lambda data, *a: feeds.append(data) or real(data, *a))
    rng = random.Random(3)
    for kind in ("html", "attachments"):
        raw = build_message(kind, 1, rng, 10, None)
        feeds.clear()
        assert parse_email(raw) == parse_email(raw, set_aside_base64=False)
        assert len(feeds) == 2 and b"_desk00." in feeds[0] and b"desk-set-aside-" in feeds[0]
        assert len(feeds[0]) < len(raw) // 2


def test_a_boundary_the_rewrite_cannot_trust_is_parsed_again(monkeypatch):
    calls = []
    real = mime_feed._feed_parser
    monkeypatch.setattr(mime_feed, "_feed_parser", lambda data, *a: calls.append(data) or real(data, *a))
    raw = _lines(CASES["nested multipart reusing it unquoted"], "\n")
    assert parse_email(raw) == parse_email(raw, set_aside_base64=False)
    assert len(calls) == 3 and b"_desk00." in calls[0] and b"_desk00." not in calls[1]


def test_boundary_patterns_come_from_res_cache():
    from bench.email import build_message

    rng = random.Random(4)
    raws = [build_message("attachments", n, rng, 10, None) for n in range(3)]
    for raw in raws:
        parse_email(raw)
    boundaries = {b for raw in raws for b in re.findall(rb'boundary="([^"]+)"', raw)}
    compiled = [key[1] for key in re._cache if isinstance(key, tuple) and isinstance(key[1], str)]
    assert not [pattern for pattern in compiled for b in boundaries if b.decode() in pattern]
    assert any("_desk00" in pattern for pattern in compiled)


# --- generated MIME trees -----------------------------------------------------------------------------------

_BOUNDARIES = st.sampled_from(["B", "B-", "B--", "B-1", "xBy", "_desk00.", "_desk01.", "==1==", "----=_P",
                               "a:b", "q r", "'+_,./=?-"])
_TEXT_LINES = st.lists(st.sampled_from(["hello", "--B", "--B--", "--B-1", "--==1==", "boundary=\"B\"", "",
                                        "Subject: x", " folded", "From here", "_desk00.", "QUJD", "=?utf-8?q?x?="]),
                       max_size=5)


@st.composite
def _trees(draw, depth: int = 0):
    kind = draw(st.sampled_from(["text", "base64", "multipart", "message"] if depth < 3 else ["text", "base64"]))
    if kind == "text":
        return "Content-Type: text/plain\n\n" + "\n".join(draw(_TEXT_LINES))
    if kind == "base64":
        width = draw(st.sampled_from([76, 64, 8, 1000]))
        body = _b64(draw(st.binary(min_size=0, max_size=3000)), width)
        return f"Content-Type: application/pdf\nContent-Transfer-Encoding: base64\n\n{body}"
    if kind == "message":
        return "Content-Type: message/rfc822\n\nFrom: i@x\nSubject: in\n" + draw(_trees(depth + 1))
    boundary = draw(_BOUNDARIES)
    declared = draw(st.sampled_from([f'boundary="{boundary}"', f"boundary={boundary}", f'\n boundary="{boundary}"']))
    children = draw(st.lists(_trees(depth + 1), min_size=0, max_size=3))
    body = "".join(f"--{boundary}\n{child}\n" for child in children)
    close = draw(st.sampled_from([f"--{boundary}--\n", "", f"--{boundary}--"]))
    return f"Content-Type: multipart/mixed; {declared}\n\n{draw(_TEXT_LINES.map(chr(10).join))}\n{body}{close}"


@given(_trees(), st.sampled_from(["\n", "\r\n"]))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_generated_messages_parse_the_same(tree, eol):
    _same_as_the_reference(_lines("From: a@x.test\nSubject: s\n" + tree, eol))


# --- header reads ---------------------------------------------------------------------------------------------

def _both(*fields: tuple[str, str]) -> tuple[EmailMessage, EmailMessage]:
    raw = "".join(f"{name}: {value}\n" for name, value in fields).encode() + b"\nbody\n"
    fast = mime_feed._feed_parser(raw)
    plain = BytesParser(policy=policy.default).parsebytes(raw)
    return fast, plain


_NAMES = ["Content-Type", "content-type", "Subject", "X-A", "Content-Disposition", "Missing"]


def _reads(msg: EmailMessage) -> list:
    return [[str(msg.get(name)) for name in _NAMES], msg.get_content_type(), msg.get_content_maintype(),
            msg.get_boundary(), msg.get_filename(), msg.get_param("charset"), list(msg.keys()), msg.get_all("X-A")]


@pytest.mark.parametrize("change", [
    lambda m: None,
    lambda m: m.set_raw("X-A", "added"),
    lambda m: m.__setitem__("X-A", "three"),
    lambda m: m.__delitem__("Content-Type"),
    lambda m: m.__delitem__("X-A"),
    lambda m: m.replace_header("Content-Type", 'multipart/mixed; boundary="Z"'),
    lambda m: m.set_param("charset", "gbk"),
    lambda m: m.del_param("charset"),
    lambda m: m.set_type("text/html"),
    lambda m: m.set_boundary("NEW"),
    lambda m: m.add_header("Content-Disposition", "attachment", filename="x.txt"),
    lambda m: m.set_default_type("message/rfc822"),
    lambda m: m._headers.clear(),
    lambda m: m.clear(),
    lambda m: m.__delitem__("Content-Type") or m.make_mixed(),
])
def test_indexed_header_reads_answer_as_the_email_package_after_any_change(change):
    fast, plain = _both(("X-A", "one"), ("Subject", "s"), ("Content-Type", 'multipart/mixed; boundary="B"'),
                        ("X-A", "two"), ("content-type", "text/plain"))
    assert isinstance(fast, mime_headers._Part)
    assert _reads(fast) == _reads(plain)
    for msg in (fast, plain):
        change(msg)
    assert _reads(fast) == _reads(plain)
    generated = re.compile(rb"=+\d+==")  # a boundary the generator makes up
    assert generated.sub(b"", fast.as_bytes()) == generated.sub(b"", plain.as_bytes())


def test_the_policy_has_policy_defaults_settings():
    parse_policy = mime_headers.message_policy()
    assert {k: v for k, v in vars(parse_policy).items() if k not in ("header_factory", "message_factory")} == {}
    assert parse_policy.message_factory is mime_headers._Part and issubclass(mime_headers._Part, EmailMessage)
    for name in ("linesep", "max_line_length", "utf8", "refold_source", "raise_on_defect", "cte_type"):
        assert getattr(parse_policy, name) == getattr(policy.default, name)


_PARAM_FORMS = {
    "Content-Type": r'(text|multipart)/[a-z]{1,5}(; (charset|boundary|name|NAME|format)="[A-Za-z0-9 ._+,/:=-]{1,9}")*',
    "Content-Disposition": r'(attachment|inline)(; (filename|name|size)="[A-Za-z0-9 ._+,/:=-]{1,9}")*',
}


@given(st.from_regex(_PARAM_FORMS["Content-Type"], fullmatch=True),
       st.from_regex(_PARAM_FORMS["Content-Disposition"], fullmatch=True))
@settings(max_examples=300, deadline=None)
def test_params_read_from_plain_fields_are_the_email_packages(content_type, disposition):
    fast, plain = _both(("Content-Type", content_type), ("Content-Disposition", disposition))
    for name in ("charset", "boundary", "name", "format", "missing"):
        assert mime_headers.get_param(fast, name) == plain.get_param(name)
    for name in ("filename", "name", "size"):
        assert mime_headers.get_param(fast, name, "content-disposition") == plain.get_param(name, header="content-disposition")
    assert mime_headers.get_boundary(fast) == plain.get_boundary()
    assert mime_headers.get_filename(fast) == plain.get_filename()


_ADDRESS_PIECES = st.sampled_from(["a@b.c", "A B <a@b.c>", "x.y+z@d-e.f", "=?utf-8?q?x?= <q@r.s>", "J. R<j@r.s>",
                                   '"Q, R" <q@r.s>', "a..b@c", "(c) a@b", "<a@b.c>", "a @ b.c", "a@b.c>",
                                   "", " ", "undisclosed:;", "a@b@c", "x <a@b.c> y", "\r\n\t", "a,b"])


@given(st.lists(st.lists(_ADDRESS_PIECES, max_size=4).map(", ".join), max_size=3))
@settings(max_examples=300, deadline=None)
def test_address_lists_read_as_getaddresses_reads_them(values):
    assert parse._address_list(values) == getaddresses(values)


def _decode_header_value_before(value: str) -> str:
    """decode_header_value as it was before its shortcut for values with nothing to decode."""
    from email.header import decode_header

    from app.channels.email.charsets import decode_bytes

    fold = lambda text: re.sub(r"\s*\r?\n\s*", " ", text).strip()  # noqa: E731
    if not value:
        return ""
    raw = value.encode("ascii", "surrogateescape")
    if any(b >= 0x80 for b in raw) and b"=?" not in raw:
        return fold(decode_bytes(raw)[0])
    chunks = decode_header(raw.decode("latin-1"))
    return fold("".join(c if isinstance(c, str) else decode_bytes(c, label)[0] for c, label in chunks))


@given(st.text(alphabet=st.sampled_from("ab =?:\r\n\t\u00e9"), max_size=30))
@settings(max_examples=300, deadline=None)
def test_header_values_with_nothing_to_decode_come_out_as_before(value):
    from app.channels.email.charsets import decode_header_value

    if value.isascii() and "=?" not in value:
        assert decode_header_value(value) == _decode_header_value_before(value)


# --- the text and html bodies, found in one walk ---------------------------------------------------------------

@st.composite
def _body_trees(draw, depth: int = 0):
    disposition = draw(st.sampled_from(["", "Content-Disposition: attachment\n", "Content-Disposition: inline\n"]))
    kind = draw(st.sampled_from(["text/plain", "text/html", "text/csv", "image/png", "message/rfc822"]
                                + (["multipart/mixed", "multipart/alternative", "multipart/related"] * 2
                                   if depth < 3 else [])))
    cid = draw(st.sampled_from(["", "Content-ID: <c1>\n", "Content-ID: <c2>\n"]))
    if not kind.startswith("multipart/"):
        body = "From: i@x\nSubject: in\n\ninner" if kind == "message/rfc822" else f"{kind} body"
        return f"Content-Type: {kind}\n{disposition}{cid}\n{body}"
    start = draw(st.sampled_from(["", '; start="<c2>"', '; start="<c9>"']))
    children = draw(st.lists(_body_trees(depth + 1), max_size=3))
    boundary = f"b{depth}x{draw(st.integers(0, 9))}"
    parts = "".join(f"--{boundary}\n{child}\n" for child in children)
    broken = draw(st.sampled_from(["", "no start"]))
    if broken:
        parts = parts.replace(f"--{boundary}\n", "", 1)
    return f'Content-Type: {kind}; boundary="{boundary}"{start}\n{disposition}{cid}\n{parts}--{boundary}--'


@given(_body_trees())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_bodies_found_in_one_walk_are_get_bodys(tree):
    msg = BytesParser(policy=policy.default).parsebytes(f"From: a@x\nSubject: s\n{tree}".encode())
    try:
        expected = (msg.get_body(("plain",)), msg.get_body(("html",)))
    except AttributeError as exc:
        with pytest.raises(AttributeError, match=re.escape(str(exc))):
            parse._body_parts(msg)
        return
    if msg.get_content_maintype() in ("text", "multipart"):
        assert parse._body_parts(msg) == expected
        assert all(a is b for a, b in zip(parse._body_parts(msg), expected, strict=True))


# --- RFC 2231 parameters: the parsed header's printed form worked out without the parse ------------------

_PCT = st.one_of(st.text(alphabet=st.sampled_from("ab.-_ 报告;\"\\\n\u00e9"), min_size=1, max_size=6).map(quote),
                st.text(alphabet=st.sampled_from("a.-_%E6%8A%FF"), max_size=9))
_EXTENDED = st.tuples(
    st.sampled_from(["attachment", "Inline", "application/pdf", "Text/Plain"]),
    st.lists(st.one_of(
        st.tuples(st.sampled_from(["filename", "name", "FileName", "size"]),
                  st.sampled_from(["*=utf-8''", "*=UTF-8''", "*=utf-8''", "*=iso-8859-1''", "*=utf-8'en'", "*0*=utf-8''"]),
                  _PCT),
        st.tuples(st.sampled_from(["filename", "name", "x"]), st.just('="'), st.sampled_from(["1\"", "a b\"", "\""]))),
        max_size=3))


@given(_EXTENDED)
@settings(max_examples=400, deadline=None)
def test_extended_parameters_print_as_the_parsed_header_prints_them(form):
    from email.headerregistry import HeaderRegistry

    head, params = form
    value = "; ".join([head, *("".join(param) for param in params)])
    field = "content-type" if "/" in head else "content-disposition"
    printed = mime_headers._printed_decoded(field, value)
    if printed is None:
        return
    parsed = HeaderRegistry()(field, value)
    assert printed == str(parsed) and not parsed.defects
    header = mime_headers._ParsedHeaders()(field, value)
    assert isinstance(header, mime_headers._Deferred) and str(header) == printed
    assert header.params == parsed.params and [type(d) for d in header.defects] == []
    fast, plain = _both((field, value))
    assert mime_headers.get_filename(fast) == plain.get_filename()
    assert mime_headers.get_param(fast, "name", field) == plain.get_param("name", header=field)
