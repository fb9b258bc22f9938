"""Pure rules: loop protection, threading order, bounces, sanitising, templates, queue choice."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.channels.email import threads
from app.channels.email.autoreply import address_reason, automatic_reasons, decide_acknowledgement
from app.channels.email.bounces import analyse_bounce
from app.channels.email.parse import parse_email
from app.channels.email.routing import choose_queue
from app.channels.email.sanitize import sanitise_html
from app.channels.email.templates import TemplateProblem, render_strings, sample_context
from tests.email.conftest import build_mail, email_config


# --- loop protection ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("headers", "automatic"), [
    ({}, False),
    ({"auto-submitted": ["no"]}, False),
    ({"auto-submitted": ["No; comment"]}, False),
    ({"auto-submitted": ["auto-replied"]}, True),
    ({"auto-submitted": ["auto-generated"]}, True),
    ({"x-autoreply": ["yes"]}, True),
    ({"x-autorespond": ["anything"]}, True),
    ({"x-auto-response-suppress": ["All"]}, True),
    ({"x-loop": ["desk"]}, True),
    ({"precedence": ["bulk"]}, True),
    ({"precedence": ["LIST"]}, True),
    ({"precedence": ["junk"]}, True),
    ({"precedence": ["auto_reply"]}, True),
    ({"precedence": ["first-class"]}, False),
])
def test_automatic_mail_is_recognised_exactly_as_listed(headers, automatic):
    assert bool(automatic_reasons(headers)) is automatic


@pytest.mark.parametrize(("address", "reason"), [
    ("alice@customer.test", None),
    ("MAILER-DAEMON@mx.test", "mailer_daemon"),
    ("postmaster@mx.test", "postmaster"),
    ("no-reply@shop.test", "no_reply"),
    ("noreply@shop.test", "no_reply"),
    ("do-not-reply@shop.test", "no_reply"),
    ("donotreply@shop.test", "no_reply"),
    ("no_reply+123@shop.test", "no_reply"),
    ("bounces+abc@list.test", "bounce_address"),
    ("support@desk.test", "own_address"),
    ("HELP@desk.test", "own_address"),
    ("reply+c1-abc@desk.test", "own_address"),
    ("reply+c1-abc@elsewhere.test", None),
    ("", "no_address"),
    (None, "no_address"),
    ("not-an-address", "no_address"),
    ("noreplyish.person@x.test", "no_reply"),
    ("reply@x.test", None),
])
def test_addresses_that_never_get_automatic_mail(address, reason):
    assert address_reason(address, ["support@desk.test", "help@desk.test"], ["desk.test"]) == reason


def _decide(**overrides):
    args = {"enabled": True, "headers": {}, "is_bounce": False, "addresses": ["alice@customer.test"],
            "own_addresses": ["support@desk.test"], "reply_domains": ["desk.test"], "sent_in_window": 0,
            "max_per_window": 10, "new_case": True}
    args.update(overrides)
    return decide_acknowledgement(**args)


@pytest.mark.parametrize(("overrides", "send", "reason"), [
    ({}, True, "ok"),
    ({"enabled": False}, False, "disabled"),
    ({"new_case": False}, False, "existing_case"),
    ({"is_bounce": True}, False, "bounce"),
    ({"headers": {"precedence": ["bulk"]}}, False, "automatic:precedence"),
    ({"addresses": ["alice@customer.test", "noreply@x.test"]}, False, "no_reply"),
    ({"addresses": ["support@desk.test"]}, False, "own_address"),
    ({"sent_in_window": 9}, True, "ok"),
    ({"sent_in_window": 10}, False, "rate_limited"),
])
def test_acknowledgement_decision(overrides, send, reason):
    decision = _decide(**overrides)
    assert (decision.send, decision.reason) == (send, reason)


def test_acknowledgements_stop_at_the_per_sender_limit(ingest, db_session, outbox):
    results = [ingest(build_mail(subject=f"message {n}")) for n in range(5)]  # limit is 3 per window
    assert [r.acknowledged for r in results] == [True, True, True, False, False]
    assert len(outbox.sent) == 3


@pytest.mark.parametrize("headers", [
    {"Auto-Submitted": "auto-replied"}, {"X-Autoreply": "yes"}, {"X-Autorespond": "1"},
    {"X-Auto-Response-Suppress": "OOF"}, {"X-Loop": "other-desk"}, {"Precedence": "bulk"},
])
def test_automatic_mail_gets_no_acknowledgement_but_is_kept(ingest, db_session, outbox, headers):
    result = ingest(build_mail(headers=headers))
    assert result.status == "stored" and result.new_case and not result.acknowledged
    assert outbox.sent == []


@pytest.mark.parametrize("sender", ["noreply@shop.test", "mailer-daemon@mx.test", "support@desk.test"])
def test_no_acknowledgement_to_robots_or_ourselves(ingest, db_session, outbox, sender):
    result = ingest(build_mail(sender=sender))
    assert not result.acknowledged and outbox.sent == []


def test_two_desks_do_not_loop(ingest, db_session, outbox):
    """Another helpdesk acknowledges our acknowledgement: its reply carries Auto-Submitted, so it is
    recorded on the case without a second acknowledgement."""
    ingest(build_mail(sender="helpdesk@other.test"))
    ack = outbox.sent[0].message
    their_ack = build_mail(sender="helpdesk@other.test", subject="Re: " + ack["Subject"],
                           headers={"Auto-Submitted": "auto-replied"}, in_reply_to=ack["Message-ID"].strip("<>"))
    result = ingest(their_ack)
    assert not result.new_case and len(outbox.sent) == 1


# --- threading ----------------------------------------------------------------------------------------

class FakeLookup:
    def __init__(self, cases: dict[int, threads.CaseRef], ids: dict[str, int]):
        self.cases, self.ids = cases, ids

    def case_for_message_id(self, message_id):
        return self.ids.get(message_id)

    def case(self, interaction_id):
        return self.cases.get(interaction_id)


SECRET = "s3cret"


def _lookup():
    return FakeLookup({1: threads.CaseRef(1, frozenset({"alice@x.test"}), frozenset({"carol@x.test"})),
                       2: threads.CaseRef(2, frozenset({"bob@y.test"}), frozenset())},
                      {"m1@x": 1, "m2@y": 2})


def _find(**kwargs):
    args = {"secret": SECRET, "lookup": _lookup(), "sender": "alice@x.test", "recipients": [], "in_reply_to": [],
            "references": [], "subject": ""}
    args.update(kwargs)
    return threads.find_case(**args)


def test_order_tokens_before_in_reply_to_before_references_before_tag():
    token_to_2 = threads.reply_address(SECRET, 2, "desk.test")
    our_id_to_2 = threads.mint_message_id(SECRET, 2, "desk.test", "abc")
    assert _find(recipients=[token_to_2], in_reply_to=["m1@x"]) == threads.ThreadMatch(2, "reply_token")
    assert _find(in_reply_to=["m1@x"], references=[our_id_to_2]) == threads.ThreadMatch(2, "our_message_id")
    assert _find(in_reply_to=["m1@x"], references=["m2@y"]) == threads.ThreadMatch(1, "in_reply_to")
    assert _find(references=["m2@y", "m1@x"]) == threads.ThreadMatch(1, "references")
    assert _find(references=["m2@y", "unknown@z"], subject="[#C-1]") == threads.ThreadMatch(2, "references")
    assert _find(subject="Re: [#C-1]") == threads.ThreadMatch(1, "subject_tag")


def test_subject_tag_only_from_customer_or_cc():
    assert _find(sender="carol@x.test", subject="[#C-1]") == threads.ThreadMatch(1, "subject_tag")
    assert _find(sender="mallory@evil.test", subject="[#C-1]") is None
    assert _find(sender="bob@y.test", subject="[#C-1] [#C-2]") == threads.ThreadMatch(2, "subject_tag")
    assert _find(sender="alice@x.test", subject="[#C-99]") is None


def test_tokens_for_unknown_cases_are_ignored():
    assert _find(recipients=[threads.reply_address(SECRET, 77, "desk.test")]) is None


@given(st.integers(min_value=1, max_value=10**12 - 1), st.text(alphabet="0123456789abcdef", min_size=12,
                                                                 max_size=12))
@settings(max_examples=200, deadline=None)
def test_tokens_verify_only_when_signed_by_us(interaction_id, forged_mac):
    token = threads.mint_token(SECRET, interaction_id)
    assert threads.read_token(SECRET, token) == interaction_id
    assert threads.read_token("other-secret", token) is None
    forged = f"c{interaction_id}-{forged_mac}"
    assert threads.read_token(SECRET, forged) == (interaction_id if forged == token else None)


@given(st.text(max_size=80), st.integers(min_value=1, max_value=99999))
@settings(max_examples=100, deadline=None)
def test_with_tag_adds_the_tag_exactly_once(subject, interaction_id):
    tagged = threads.with_tag(subject, interaction_id)
    assert tagged.count(threads.case_tag(interaction_id)) == max(1, subject.count(threads.case_tag(interaction_id)))
    assert threads.with_tag(tagged, interaction_id) == tagged


# --- bounces ------------------------------------------------------------------------------------------

def _dsn(original_id: str = "desk.c1-x.y@desk.test", status: str = "5.1.1", rfc822_headers: bool = True) -> bytes:
    returned = (f"Content-Type: text/rfc822-headers\r\n\r\nMessage-ID: <{original_id}>\r\nSubject: hi\r\n"
                if rfc822_headers else "Content-Type: text/plain\r\n\r\nno headers\r\n")
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.test>\r\nTo: support@desk.test\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn1@mx.test>\r\nReturn-Path: <>\r\n"
        "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.test\r\n\r\n"
        f"Final-Recipient: rfc822; gone@customer.test\r\nAction: failed\r\nStatus: {status}\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n"
        f"--B\r\n{returned}--B--\r\n").encode()


def test_a_delivery_status_report_is_read():
    report = analyse_bounce(parse_email(_dsn()))
    assert report.original_message_ids == ["desk.c1-x.y@desk.test"]
    assert (report.status, report.recipient, report.permanent, report.definite) == \
        ("5.1.1", "gone@customer.test", True, True)
    assert "User unknown" in report.diagnostic


def test_a_temporary_status_is_not_permanent():
    assert not analyse_bounce(parse_email(_dsn(status="4.2.2"))).permanent


def test_a_plain_text_bounce_is_read_from_its_text():
    raw = (b"From: postmaster@mx.test\r\nSubject: failure\r\n\r\n"
           b"550 5.7.1 rejected\r\n\r\n--- original ---\r\nMessage-ID: <orig@desk.test>\r\n")
    report = analyse_bounce(parse_email(raw))
    assert report.original_message_ids == ["orig@desk.test"] and report.status == "5.7.1" and report.definite


def test_an_smtp_code_alone_gives_a_class():
    report = analyse_bounce(parse_email(b"From: mailer-daemon@mx.test\r\nSubject: f\r\n\r\n550 no\r\n"))
    assert report.status == "5.0.0"


def test_a_null_return_path_is_a_possible_bounce_but_not_definite():
    report = analyse_bounce(parse_email(b"Return-Path: <>\r\nFrom: a@b.test\r\nSubject: away\r\n\r\nI am away"))
    assert report is not None and not report.definite and report.status is None


def test_ordinary_mail_is_not_a_bounce():
    assert analyse_bounce(parse_email(build_mail())) is None


# --- sanitising -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("html", "forbidden"), [
    ("<script>alert(1)</script>", "alert"),
    ('<img src=x onerror="alert(1)">', "onerror"),
    ('<a href="javascript:alert(1)">x</a>', "javascript"),
    ("<style>body{background:url(http://t/)}</style>", "http://t/"),
    ('<p style="background:url(http://t/)">x</p>', "http://t/"),
    ("<iframe src=http://evil/></iframe>", "iframe"),
    ("<form action=http://evil><input name=p></form>", "form"),
    ('<img src="data:image/svg+xml;base64,PHN2Zz4=">', "data:"),
    ("<svg><script>alert(1)</script></svg>", "script"),
])
def test_dangerous_html_is_removed(html, forbidden):
    assert forbidden not in sanitise_html(html).html


def test_remote_images_are_blocked_until_allowed():
    html = '<p>Hi</p><img src="https://tracker.test/p.gif"><img src="//cdn.test/a.png">'
    blocked = sanitise_html(html)
    assert blocked.blocked_images == 2 and "tracker" not in blocked.html
    allowed = sanitise_html(html, allow_remote_images=True)
    assert allowed.blocked_images == 0 and "https://tracker.test/p.gif" in allowed.html


def test_cid_images_point_at_our_attachment_urls():
    safe = sanitise_html('<img src="cid:logo@x"><img src="cid:missing@x">', cid_urls={"logo@x": "/email/attachments/3"})
    assert 'src="/email/attachments/3"' in safe.html and "missing" not in safe.html


# --- templates -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("source", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ customer.__class__ }}",
    "{% for x in range(10**9) %}{% endfor %}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ 'x' * 10**8 }}",
    "{{ 'x' * 100000000 }}",
    "{{ 1 / 0 }}",
])
def test_the_sandbox_refuses_escapes(source):
    with pytest.raises(TemplateProblem):
        render_strings("s", source, sample_context("en"))


def test_undefined_variables_and_syntax_errors_are_reported_by_field():
    with pytest.raises(TemplateProblem) as info:
        render_strings("{{ nope }}", "fine", sample_context("en"))
    assert info.value.field == "subject"
    with pytest.raises(TemplateProblem) as info:
        render_strings("ok", "{% if %}", sample_context("en"))
    assert info.value.field == "body"
    with pytest.raises(TemplateProblem):
        render_strings("ok", "x" * 30_000, sample_context("en"))


def test_rendering_collapses_whitespace_in_subjects():
    assert render_strings("  a \n b ", "body", {}).subject == "a b"


# --- queue choice ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("rules", "mailbox", "sender", "subject", "queue"), [
    ([], "support", "a@x.test", "hi", "general"),
    ([{"subject_contains": ["Invoice"], "queue": "billing"}], "support", "a@x.test", "my invoice", "billing"),
    ([{"from_domain": "vip.test", "queue": "vip"}], "support", "boss@VIP.test", "hi", "vip"),
    ([{"from_domain": "vip.test", "queue": "vip"}], "support", "a@x.test", "hi", "general"),
    ([{"mailbox": "billing", "queue": "vip"}], "support", "a@x.test", "hi", "general"),
    ([{"mailbox": "billing", "queue": "vip"}], "billing", "a@x.test", "hi", "vip"),
])
def test_choose_queue(rules, mailbox, sender, subject, queue):
    config = email_config(rules=rules)
    assert choose_queue(config, config.mailbox(mailbox), sender, subject) == queue
