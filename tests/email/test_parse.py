"""Parsing: every charset customers use, encoded-words, hostile structure."""
from __future__ import annotations

import base64
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.channels.email.charsets import codec_for, decode_bytes, decode_header_value, html_declared_charset
from app.channels.email.parse import UnparseableEmail, message_key, parse_email, parse_message_ids
from tests.email.conftest import build_mail

TEXTS = {
    "utf-8": "您好，我的订单 #123 还没到。Ça va? Grüße",
    "gb2312": "您好，我的订单还没有送到，请尽快处理。",
    "gbk": "您好，镕铖的订单还没有送到。",  # characters outside GB2312
    "gb18030": "您好，订单𠀀已取消。",  # a character only GB18030 (not GBK) encodes
    "big5": "您好，我的訂單還沒有送到。",
    "iso-8859-1": "Café crème, déjà vu",
    "iso-8859-2": "Zażółć gęślą jaźń",
    "iso-8859-5": "Здравствуйте",
    "iso-8859-7": "Καλημέρα",
}


def _raw_with_charset(charset: str, text: str, subject: str | None = None, cte: str = "base64") -> bytes:
    body = text.encode(charset)
    encoded = base64.b64encode(body).decode() if cte == "base64" else body.decode("latin-1")
    subject_header = Header(subject or text[:10], charset).encode() if charset != "gb18030" else \
        f"=?gb18030?b?{base64.b64encode((subject or text[:10]).encode('gb18030')).decode()}?="
    return (f"From: =?utf-8?b?{base64.b64encode('王小明'.encode()).decode()}?= <wang@example.cn>\r\n"
            f"To: support@desk.test\r\nSubject: {subject_header}\r\nMessage-ID: <{charset}@example.cn>\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=\"{charset}\"\r\n"
            f"Content-Transfer-Encoding: {cte}\r\n\r\n{encoded}\r\n").encode("latin-1")


@pytest.mark.parametrize("charset", sorted(TEXTS))
def test_bodies_and_encoded_word_subjects_decode_in_every_charset(charset):
    parsed = parse_email(_raw_with_charset(charset, TEXTS[charset]))
    assert parsed.text.strip() == TEXTS[charset]
    assert parsed.subject == TEXTS[charset][:10]
    assert parsed.from_name == "王小明" and parsed.from_address == "wang@example.cn"


def test_gb2312_label_on_gbk_text_is_decoded_with_the_superset():
    raw = _raw_with_charset("gbk", TEXTS["gbk"]).replace(b'charset="gbk"', b'charset="gb2312"')
    assert parse_email(raw).text.strip() == TEXTS["gbk"]


def test_unlabelled_8bit_headers_and_body_are_guessed():
    raw = ("From: 李娜 <li@example.cn>\r\nTo: support@desk.test\r\nSubject: 退款申请\r\n"
           "Message-ID: <raw8@example.cn>\r\n\r\n我要退款。\r\n").encode("gb18030")
    parsed = parse_email(raw)
    assert parsed.subject == "退款申请" and parsed.from_name == "李娜" and parsed.text.strip() == "我要退款。"


def test_wrong_label_falls_back_instead_of_failing():
    raw = (b"From: a@b.test\r\nSubject: x\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
           + "中文内容".encode("gb18030"))
    assert parse_email(raw).text.strip() == "中文内容"


def test_unknown_charset_label_uses_the_fallbacks():
    raw = (b"From: a@b.test\r\nSubject: x\r\nContent-Type: text/plain; charset=x-made-up\r\n\r\n"
           + "naïve".encode())
    assert parse_email(raw).text.strip() == "naïve"


def test_html_meta_charset_is_honoured():
    html = '<html><head><meta charset="big5"></head><body>訂單</body></html>'.encode("big5")
    raw = b"From: a@b.test\r\nSubject: x\r\nContent-Type: text/html\r\n\r\n" + html
    assert "訂單" in parse_email(raw).html


@pytest.mark.parametrize(("label", "codec"), [
    ("GB2312", "gb18030"), ("gbk", "gb18030"), ("big5", "big5hkscs"), ("ISO-8859-1", "cp1252"),
    ("utf8", "utf-8"), ("x-unknown", None), ("", None), (None, None), ("koi8-r", "koi8-r"), ("nonsense", None)])
def test_codec_for_labels(label, codec):
    assert codec_for(label) == codec


def test_decode_bytes_with_an_impossible_label_keeps_the_label_with_replacements():
    text, codec = decode_bytes(b"\xff\xfe\xfa abc", "utf-8")
    assert codec in ("gb18030", "big5hkscs", "cp1252", "utf-8")
    assert "abc" in text


@pytest.mark.parametrize(("header", "expected"), [
    ("=?utf-8?q?caf=C3=A9?= =?utf-8?q?_bar?=", "café bar"),
    ("Re: =?gb2312?B?xOO6ww==?= [#C-12]", "Re: 你好 [#C-12]"),
    ("=?big5?B?rXE=?=", "訂"),
    ("=?iso-8859-1?q?d=E9j=E0?=", "déjà"),
    ("plain\r\n folded", "plain folded"),
    ("=?utf-8?b?broken", "=?utf-8?b?broken"),
    ("", ""),
])
def test_header_decoding(header, expected):
    assert decode_header_value(header) == expected


def test_html_declared_charset():
    assert html_declared_charset(b'<meta http-equiv="Content-Type" content="text/html; charset=gb2312">') == "gb2312"
    assert html_declared_charset(b"<p>none</p>") is None


@given(st.text(min_size=1, max_size=200))
@settings(max_examples=60, deadline=None)
def test_any_text_round_trips_through_a_utf8_message(text):
    text = "".join(ch for ch in text if ch.isprintable() or ch == "\n").strip() or "x"
    parsed = parse_email(build_mail(body=text, subject="s"))
    assert parsed.text.replace("\r\n", "\n").strip() == text


@given(st.binary(max_size=400))
@settings(max_examples=100, deadline=None)
def test_arbitrary_bytes_either_parse_or_raise_unparseable(data):
    try:
        parse_email(data)
    except UnparseableEmail as exc:
        assert exc.reason in {"no_headers", "too_many_parts", "too_deep", "broken_mime"}


def test_message_ids_and_keys():
    assert parse_message_ids("<a@b> <c@d>") == ["a@b", "c@d"]
    assert parse_message_ids("bare@id") == ["bare@id"]
    assert parse_message_ids("no id here") == []
    assert message_key(b"Message-ID: <x@y>\r\n\r\n") == ("mid:x@y", "x@y")
    long_id = "a" * 300 + "@y"
    key, mid = message_key(f"Message-ID: <{long_id}>\r\nFrom: a@b\r\n\r\n".encode())
    assert key.startswith("sha:") and mid == long_id[:200]


def test_nesting_too_deep_is_refused():
    inner = MIMEText("deep")
    for _ in range(25):
        outer = MIMEMultipart()
        outer.attach(inner)
        inner = outer
    inner["From"], inner["Subject"] = "a@b.test", "deep"
    with pytest.raises(UnparseableEmail) as info:
        parse_email(inner.as_bytes(), max_parts=1000)
    assert info.value.reason == "too_deep"


def test_attachments_inline_images_and_odd_filenames():
    raw = build_mail(html='<img src="cid:logo@x">', attachments=[
        ("报价单.pdf", "application/pdf", b"%PDF-1.4"), ("../../etc/passwd", "text/plain", b"root")])
    parsed = parse_email(raw)
    names = [a.filename for a in parsed.attachments]
    assert "报价单.pdf" in names and "passwd" in names


def test_forwarded_message_is_an_attachment_and_its_id_is_known():
    from email.message import EmailMessage

    original = EmailMessage()
    original["Message-ID"], original["Subject"], original["From"] = "<orig@x>", "orig", "x@y"
    original.set_content("original")
    outer = EmailMessage()
    outer["From"], outer["Subject"] = "a@b.test", "Fwd"
    outer.set_content("see attached")
    outer.add_attachment(original)
    parsed = parse_email(outer.as_bytes())
    assert parsed.embedded_message_ids == ["orig@x"]
    assert parsed.attachments[0].content_type == "message/rfc822"
    assert parsed.text.strip() == "see attached"


def test_dates_are_aware_utc_and_broken_dates_are_none():
    parsed = parse_email(b"From: a@b\r\nSubject: s\r\nDate: Tue, 1 Sep 2026 10:00:00 +0800\r\n\r\nx")
    assert parsed.date.isoformat() == "2026-09-01T02:00:00+00:00"
    assert parse_email(b"From: a@b\r\nSubject: s\r\nDate: yesterday\r\n\r\nx").date is None
    assert parse_email(b"From: a@b\r\nSubject: s\r\nDate: Tue, 1 Sep 2026 10:00:00 -0000\r\n\r\nx").date.tzinfo


def test_return_path_absent_empty_and_present():
    assert parse_email(b"From: a@b\r\nSubject: s\r\n\r\nx").return_path is None
    assert parse_email(b"Return-Path: <>\r\nFrom: a@b\r\nSubject: s\r\n\r\nx").return_path == ""
    assert parse_email(b"Return-Path: <A@B>\r\nFrom: a@b\r\nSubject: s\r\n\r\nx").return_path == "a@b"


def _equivalence_samples() -> list[bytes]:
    import random
    from email.message import EmailMessage as Mime

    rng = random.Random(5)
    samples = []
    for newline in ("\r\n", "\n"):
        msg = Mime()
        msg["From"], msg["To"], msg["Subject"] = "A <a@x.test>", "support@desk.test", "Files 文件"
        msg["Message-ID"] = "<files@x.test>"
        msg.set_content("see attached " * 40)
        msg.add_alternative("<p>see attached</p>", subtype="html")
        msg.add_attachment(rng.randbytes(40_000), maintype="application", subtype="pdf", filename="a.pdf")
        msg.add_attachment(rng.randbytes(3_000), maintype="image", subtype="png", filename="small.png")
        msg.add_attachment(base64.b64encode(rng.randbytes(9_000)).decode() * 2, subtype="plain",
                           filename="looks-like-base64.txt")  # base64-looking text, quoted-printable or not
        inner = Mime()
        inner["From"], inner["Subject"], inner["Message-ID"] = "b@y.test", "inner", "<inner@y.test>"
        inner.set_content("inner")
        inner.add_attachment(rng.randbytes(20_000), maintype="application", subtype="zip", filename="i.zip")
        msg.attach(inner)
        raw = msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", newline.encode())
        samples.append(raw)
        # a preamble and an epilogue of base64-looking lines; a part without a trailing newline
        line = base64.b64encode(rng.randbytes(57)).decode() + newline
        samples.append(raw.replace(b"This is a multi-part message in MIME format.", (line * 40).encode())
                       + (line * 40).encode().rstrip())
    # one base64 body with odd line lengths and padding, not multipart
    body = base64.encodebytes(rng.randbytes(30_000)).decode().replace("\n", "\r\n")
    samples.append(("From: c@z.test\r\nTo: support@desk.test\r\nSubject: bin\r\nMessage-ID: <bin@z.test>\r\n"
                    "Content-Type: application/octet-stream; name=x.bin\r\nContent-Transfer-Encoding: base64\r\n"
                    f"\r\n{body}").encode())
    # broken base64 (defects recorded while decoding) and a run straight after a boundary, with no part header
    broken = "QUJD" * 19 + "\r\n"
    samples.append(("From: d@z.test\r\nTo: support@desk.test\r\nSubject: odd\r\nMessage-ID: <odd@z.test>\r\n"
                    "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
                    f"{broken * 40}--B\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
                    f"\r\n{broken * 35}QUJ\r\n--B--\r\n").encode())
    # short lines of letters only (a list in a text part, an embedded message's body): set aside as well
    words = "".join(f"item{n}\n" for n in range(200))
    samples.append(("From: e@z.test\nTo: support@desk.test\nSubject: list\nMessage-ID: <list@z.test>\n"
                    "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=C\n\n--C\nContent-Type: text/plain\n"
                    f"\nMy list:\n{words}end\n--C\nContent-Type: message/rfc822\n\nFrom: f@z.test\nSubject: in\n"
                    f"\n{words}--C--\n").encode())
    return samples


@pytest.mark.parametrize("index", range(7))
def test_setting_base64_runs_aside_changes_nothing_parsed(index):
    from app.channels.email.mime_feed import _prepare

    raw = _equivalence_samples()[index]
    if index < 6:  # the last: short lines in a text part and an embedded message, not a base64 body
        assert _prepare(raw).runs, "the sample has a run to set aside"
    fast, slow = parse_email(raw), parse_email(raw, set_aside_base64=False)
    assert fast == slow
    assert fast.attachments and all(a.data for a in fast.attachments)


def test_the_bench_mail_parses_the_same_with_runs_set_aside():
    import random

    from bench.email import build_message

    rng = random.Random(3)
    for kind in ("plain", "html", "attachments"):
        raw = build_message(kind, 1, rng, 10, None)
        assert parse_email(raw) == parse_email(raw, set_aside_base64=False)


# --- attachments: located in the raw message, measured without decoding ------------------------------------

@pytest.mark.parametrize("index", range(7))
def test_each_attachment_reads_back_from_the_raw_message_at_its_part(index):
    from app.channels.email.parse import attachment_bytes

    raw = _equivalence_samples()[index]
    parsed = parse_email(raw)
    assert parsed.attachments
    for attachment in parsed.attachments:
        assert attachment.size == len(attachment.data)
        assert attachment_bytes(raw, attachment.part) == attachment.data


def test_parts_are_numbered_as_imap_numbers_them():
    from email.message import EmailMessage

    from app.channels.email.parse import attachment_bytes

    raw = build_mail(html="<p>hi</p>", attachments=[("a.pdf", "application/pdf", b"%PDF-a"),
                                                    ("b.bin", "application/octet-stream", b"\x00b")])
    # multipart/mixed: 1 the alternative (1.1 text, 1.2 html), then the attachments
    assert [(a.part, a.filename) for a in parse_email(raw).attachments] == [("2", "a.pdf"), ("3", "b.bin")]
    single = EmailMessage()
    single["From"], single["Subject"] = "a@b.test", "only a file"
    single.set_content(b"\x89PNG data", maintype="image", subtype="png", filename="p.png")
    [only] = parse_email(single.as_bytes()).attachments
    assert only.part == "1" and attachment_bytes(single.as_bytes(), "1") == b"\x89PNG data"
    assert attachment_bytes(raw, "") == raw  # the whole message (a released unreadable one's original)


@pytest.mark.parametrize("section", ["4", "0", "1", "1.3", "2.1", "x", "1..2"])
def test_a_part_the_message_does_not_have_is_a_lookup_error(section):
    from app.channels.email.parse import attachment_bytes

    raw = build_mail(html="<p>hi</p>", attachments=[("a.pdf", "application/pdf", b"%PDF-a"),
                                                    ("b.bin", "application/octet-stream", b"\x00b")])
    with pytest.raises(LookupError):
        attachment_bytes(raw, section)  # "1" is the alternative: a multipart, not an attachment
    with pytest.raises(LookupError):
        attachment_bytes(b"From: a@b.test\r\nSubject: s\r\n\r\nbody", "2")


def _one_part(cte: str, body: str) -> bytes:
    return ("From: a@b.test\r\nSubject: s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=Z\r\n\r\n"
            "--Z\r\nContent-Type: text/plain\r\n\r\nsee file\r\n--Z\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Disposition: attachment; filename=f.bin\r\nContent-Transfer-Encoding: {cte}\r\n\r\n"
            f"{body}\r\n--Z--\r\n").encode("utf-8", "surrogateescape")


@pytest.mark.parametrize(("cte", "body"), [
    ("base64", "QUJDRA=="), ("base64", "QUJDREU="), ("base64", "QUJDREVG"), ("base64", "QUJDRA"), ("base64", "QUJDREU"),
    ("base64", "QUJD\r\nREVG\r\nRw=="), ("base64", ""), ("base64", "Q"), ("base64", "QUJDR"), ("base64", "QUJDRA=Q"),
    ("base64", "QU JD"), ("base64", "QUJD!!"), ("base64", "QUJDRA==="), ("base64", "QUJDREU=\r\n="),
    ("base64", "QUJD\u00e9REVG"), ("quoted-printable", "caf=C3=A9 =\r\nmore"), ("7bit", "plain words"),
    ("x-uuencode", "begin 644 f\r\n#86)C\r\n`\r\nend"),
])
def test_the_decoded_size_is_the_size_decoding_gives(cte, body):
    [attachment] = parse_email(_one_part(cte, body)).attachments
    assert attachment.size == len(attachment.data)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\r\n -_.!é", max_size=90))
def test_the_decoded_size_matches_decoding_for_any_base64_ish_body(body):
    [attachment] = parse_email(_one_part("base64", body)).attachments
    assert attachment.size == len(attachment.data)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="QUJDRA=\r\n -é", max_size=24), st.sampled_from(["\r\n", "\n"]), st.integers(0, 3))
def test_sizes_worked_out_from_set_aside_runs_match_decoding(tail, newline, cut):
    body = newline.join(base64.encodebytes(bytes(range(256)) * 20).decode().splitlines())
    body = body[:len(body) - cut]  # a last line 0-3 characters short: every padding case
    raw = _one_part("base64", body + newline + tail).replace(b"\r\n", newline.encode())
    fast, slow = parse_email(raw), parse_email(raw, set_aside_base64=False)
    assert fast == slow
    for attachment in fast.attachments:
        assert attachment.size == len(attachment.data)


@pytest.mark.parametrize("newline", ["\r\n", "\n"])
def test_the_key_reads_only_the_header_whatever_the_line_endings(newline):
    head = newline.join(["From: a@b.test", "Message-ID: <head@b.test>", "Subject: s"]) + newline * 2
    body = newline.join(["Message-ID: <body@b.test>"] * 3) + newline
    assert message_key((head + body).encode()) == ("mid:head@b.test", "head@b.test")
    # no blank line within the first 256 KB: the header is read from those alone
    endless = ("Message-ID: <late@b.test>" + newline + "X-Pad: " + "p" * 300_000 + newline).encode()
    assert message_key(endless)[1] == "late@b.test"
    # a LF ending followed by a CRLF blank line ends the header, as the parser ends it
    assert message_key(b"Message-ID: <mixed@b.test>\n\r\nMessage-ID: <no@b.test>\r\n") == (
        "mid:mixed@b.test", "mixed@b.test")


def test_mime_field_values_are_parsed_once_for_all_messages_but_boundaries_are_not_kept():
    from app.channels.email.mime_headers import _ParsedHeaders

    shared = _ParsedHeaders._shared
    shared.clear()
    first = parse_email(build_mail(html="<p>a</p>", attachments=[("a.pdf", "application/pdf", b"%PDF-1")]))
    kept = dict(shared)
    second = parse_email(build_mail(html="<p>b</p>", attachments=[("a.pdf", "application/pdf", b"%PDF-22")]))
    assert shared == kept and kept  # the same values: the same header objects, nothing parsed again
    assert not any("boundary" in value.lower() for _name, value in shared)
    assert [(a.filename, a.content_type, a.size) for a in first.attachments] == [("a.pdf", "application/pdf", 6)]
    assert [(a.filename, a.content_type, a.size) for a in second.attachments] == [("a.pdf", "application/pdf", 7)]
    assert second.html == "<p>b</p>\n"


def test_the_shared_header_objects_are_bounded(monkeypatch):
    from app.channels.email import mime_headers

    monkeypatch.setattr(mime_headers, "_SHARED_MAX", 4)
    for n in range(6):
        parse_email(build_mail(attachments=[(f"file-{n}.pdf", "application/pdf", b"%PDF")]))
        assert len(mime_headers._ParsedHeaders._shared) <= 4


# --- MIME structure fields in their plainest form: the structured parse put off ------------------------------

_PLAIN_FORMS = {
    "Content-Type": r'[a-z0-9+.-]{1,8}/[A-Za-z0-9!#$&^_.+-]{1,8}(?:; [A-Za-z0-9-]{1,6}="[A-Za-z0-9 ._+,/:=-]{1,12}")*',
    "Content-Disposition": r'[a-zA-Z0-9!#$&^_.+-]{1,10}(?:; [A-Za-z0-9-]{1,6}="[A-Za-z0-9 ._+,/:=-]{1,12}")*',
    "Content-Transfer-Encoding": r"[A-Za-z0-9!#$&^_.+-]{1,16}",
    "MIME-Version": r"[0-9]{1,3}\.[0-9]{1,3}",
}


@given(st.sampled_from(sorted(_PLAIN_FORMS)).flatmap(
    lambda name: st.tuples(st.just(name), st.from_regex(_PLAIN_FORMS[name], fullmatch=True))))
@settings(max_examples=400, deadline=None)
def test_a_field_deferred_prints_exactly_as_its_parsed_header(field):
    from email.headerregistry import HeaderRegistry

    from app.channels.email.mime_headers import _prints_as_received

    name, value = field
    if _prints_as_received(name.lower(), value):
        assert str(HeaderRegistry()(name, value)) == value


@pytest.mark.parametrize(("name", "value", "deferred"), [
    ("Content-Type", 'multipart/mixed; boundary="===============5537521953636521542=="', True),
    ("Content-Type", 'text/plain; charset="utf-8"; format="flowed"', True),
    ("Content-Type", "text/plain; charset=utf-8", False),  # unquoted: printed quoted once parsed
    ("Content-Type", 'text/plain; charset="a"; CHARSET="b"', False),  # a repeated parameter is dropped
    ("Content-Type", 'multipart/mixed;  boundary="b"', False),  # spacing is normalised
    ("Content-Type", 'text/plain; name="=?utf-8?B?5oql5ZGK?="', False),  # an encoded word is decoded
    ("Content-Disposition", 'attachment; filename="invoice 1.pdf"', True),
    ("Content-Disposition", "inline", True),
    ("Content-Disposition", "attachment; filename*=utf-8''%E6%8A%A5.docx", True),  # RFC 2231: printed decoded
    ("Content-Disposition", "attachment; filename*=utf-8''%E6%8A", False),  # not UTF-8
    ("Content-Disposition", "attachment; filename*=utf-8'en'a.txt", False),  # a language
    ("Content-Disposition", "attachment; filename*0*=utf-8''a; filename*1*=b", False),  # continuations
    ("Content-Type", "application/pdf; name*=UTF-8''%E6%8A%A5.pdf; x=\"1\"", True),
    ("Content-Disposition", 'attachment; filename="a.pdf" (scanned)', False),
    ("Content-Transfer-Encoding", "base64", True),
    ("Content-Transfer-Encoding", "base64 (comment)", False),
    ("MIME-Version", "1.0", True),
    ("MIME-Version", "1.0 (produced by X)", False),
])
def test_a_deferred_field_answers_as_the_parsed_header_would(name, value, deferred):
    from email import policy
    from email.headerregistry import HeaderRegistry

    from app.channels.email.mime_headers import _Deferred, _ParsedHeaders

    header, parsed = _ParsedHeaders()(name, value), HeaderRegistry()(name, value)
    assert isinstance(header, _Deferred) == deferred
    assert str(header) == str(parsed) and header.name == parsed.name
    assert header.fold(policy=policy.default) == parsed.fold(policy=policy.default)
    assert [type(d) for d in header.defects] == [type(d) for d in parsed.defects]
    for attribute in ("params", "content_type", "maintype", "subtype", "content_disposition", "cte", "version"):
        if hasattr(parsed, attribute):
            assert getattr(header, attribute) == getattr(parsed, attribute), attribute
        else:
            assert not hasattr(header, attribute), attribute
    assert not hasattr(header, "__html__")


def test_parsing_with_every_field_parsed_at_once_gives_the_same_result(monkeypatch):
    import random

    from app.channels.email import mime_headers
    from bench.email import build_message

    rng = random.Random(11)
    raws = [*_equivalence_samples(), *(build_message(kind, 1, rng, 10, None) for kind in ("html", "attachments")),
            _raw_with_charset("gbk", TEXTS["gbk"]),
            build_mail(attachments=[("报告 final.pdf", "application/pdf", b"%PDF"), ("a.txt", "text/plain", b"x")])]
    deferred = [parse_email(raw) for raw in raws]
    mime_headers._ParsedHeaders._shared.clear()
    monkeypatch.setattr(mime_headers, "_prints_as_received", lambda name, value: False)
    assert [parse_email(raw) for raw in raws] == deferred
    mime_headers._ParsedHeaders._shared.clear()
