"""The ingest path: store first, then parse, thread, route and acknowledge; quarantine instead of loss."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.channels.email.attachments import AttachmentUnavailable, attachment_content
from app.channels.email.ingest import process_inbound
from app.channels.email.models import EmailAttachment, EmailMessage, EmailThread, InboundEmail
from app.channels.email.threads import case_tag
from app.interactions.models import Interaction, InteractionEvent
from app.interactions.service import transition
from tests.email.conftest import SECRET, build_mail
from tests.factories import make_customer


def _acks(db_session) -> list[EmailMessage]:
    return list(db_session.scalars(select(EmailMessage).where(EmailMessage.kind == "ack").order_by(EmailMessage.id)))


def test_new_mail_becomes_a_queued_email_case_with_one_acknowledgement(ingest, db_session, outbox):
    customer = make_customer(db_session, email="alice@customer.test", name="Alice Wong")
    db_session.commit()

    result = ingest(build_mail())

    assert result.status == "stored" and result.new_case and result.acknowledged
    interaction = db_session.get(Interaction, result.interaction_id)
    assert (interaction.channel, interaction.state, interaction.queue) == ("email", "queued", "general")
    assert interaction.customer_id == customer.id
    assert interaction.routing_age_origin is not None
    [ack] = _acks(db_session)
    assert ack.status == "sent" and ack.recipient == "alice@customer.test"
    assert case_tag(interaction.id) in ack.subject
    [sent] = outbox.sent
    assert sent.recipients == ["alice@customer.test"]
    assert sent.message["Auto-Submitted"] == "auto-replied"
    assert sent.message["Precedence"] == "auto_reply"
    assert sent.message["X-Auto-Response-Suppress"] == "All"
    body = sent.message.get_content()
    assert "Alice Wong" in body and f"C-{interaction.id}" in body


def test_raw_bytes_are_stored_exactly(ingest, db_session):
    raw = build_mail(subject="Exact bytes")
    result = ingest(raw)
    row = db_session.get(InboundEmail, result.inbound_id)
    assert row.raw == raw and row.raw_size == len(raw) and row.status == "processed"


def test_a_duplicate_message_id_is_stored_once(ingest, db_session):
    raw = build_mail(message_id="<same@customer.test>")
    first, second = ingest(raw), ingest(raw)
    assert (first.status, second.status) == ("stored", "duplicate")
    assert second.inbound_id == first.inbound_id
    assert db_session.scalar(select(func.count()).select_from(InboundEmail)) == 1
    assert db_session.scalar(select(func.count()).select_from(Interaction)) == 1


def test_the_same_message_id_in_another_mailbox_is_a_different_message(ingest, db_session):
    raw = build_mail(message_id="<same@customer.test>")
    assert ingest(raw, "support").status == "stored"
    assert ingest(raw, "billing").status == "stored"


def test_mail_without_message_id_is_keyed_by_sender_and_bytes(ingest, db_session):
    raw = build_mail(message_id=None)
    first, second = ingest(raw), ingest(raw)
    assert second.status == "duplicate"
    key = db_session.get(InboundEmail, first.inbound_id).message_key
    assert key.startswith("sha:")
    assert ingest(build_mail(message_id=None, body="different")).status == "stored"


def test_the_database_refuses_a_second_row_for_the_same_key(ingest, db_session):
    import pytest
    from sqlalchemy.exc import IntegrityError

    ingest(build_mail(message_id="<race@customer.test>"))
    db_session.add(InboundEmail(mailbox="support", message_key="mid:race@customer.test", source="imap",
                                raw=b"x", raw_size=1, raw_sha256="0" * 64))
    with pytest.raises(IntegrityError):
        db_session.commit()
    db_session.rollback()


def test_a_racing_duplicate_insert_reports_duplicate(ingest, db_session, desk):
    """Two pollers store the same message: the insert itself decides (ON CONFLICT DO NOTHING), so the
    loser learns it holds a duplicate without an error and without a second row."""
    from app.channels.email.ingest import _insert_raw

    values = {"mailbox": "support", "message_key": "mid:racer@customer.test", "source": "imap", "raw": b"x",
              "raw_size": 1, "raw_sha256": "0" * 64, "status": "pending", "attempts": 0}
    first = _insert_raw(db_session, values)
    second = _insert_raw(db_session, values)
    db_session.commit()
    assert first is not None and second is None
    assert ingest(build_mail(message_id="<racer@customer.test>")).status == "duplicate"
    assert db_session.scalar(select(func.count()).select_from(InboundEmail)) == 1


def test_reply_to_the_acknowledgement_threads_into_the_same_case(ingest, db_session):
    first = ingest(build_mail())
    [ack] = _acks(db_session)
    reply = ingest(build_mail(subject="Re: Help please", in_reply_to=ack.message_id, body="More details"))
    assert reply.interaction_id == first.interaction_id and not reply.new_case
    messages = db_session.scalars(select(EmailMessage).where(EmailMessage.interaction_id == first.interaction_id,
                                                             EmailMessage.direction == "in")).all()
    assert [m.details.get("threaded_via") for m in messages] == [None, "our_message_id"]
    assert len(_acks(db_session)) == 1  # no acknowledgement for a follow-up


def test_in_reply_to_a_customer_message_threads(ingest, db_session):
    first = ingest(build_mail(message_id="<one@customer.test>"))
    second = ingest(build_mail(message_id="<two@customer.test>", in_reply_to="one@customer.test"))
    assert second.interaction_id == first.interaction_id


def test_references_are_searched_newest_first(ingest, db_session):
    a = ingest(build_mail(message_id="<a@customer.test>"))
    b = ingest(build_mail(message_id="<b@customer.test>", sender="bob@other.test"))
    assert a.interaction_id != b.interaction_id
    threaded = ingest(build_mail(references=["a@customer.test", "b@customer.test", "unknown@x.test"]))
    assert threaded.interaction_id == b.interaction_id


def test_subject_tag_is_accepted_from_the_customer(ingest, db_session):
    first = ingest(build_mail())
    again = ingest(build_mail(subject=f"About my case {case_tag(first.interaction_id)}"))
    assert again.interaction_id == first.interaction_id


def test_subject_tag_from_a_stranger_opens_a_new_case(ingest, db_session):
    first = ingest(build_mail())
    intruder = ingest(build_mail(sender="mallory@evil.test", subject=f"Re: {case_tag(first.interaction_id)}"))
    assert intruder.new_case and intruder.interaction_id != first.interaction_id


def test_subject_tag_is_accepted_from_someone_on_the_cc(ingest, db_session):
    first = ingest(build_mail(cc="carol@customer.test"))
    colleague = ingest(build_mail(sender="carol@customer.test", subject=f"Re: x {case_tag(first.interaction_id)}"))
    assert colleague.interaction_id == first.interaction_id


def test_reply_token_address_threads(ingest, db_session, outbox):
    from app.channels.email.threads import reply_address

    first = ingest(build_mail())
    to = reply_address(SECRET, first.interaction_id, "desk.test")
    assert outbox.sent[0].message["Reply-To"] == to
    again = ingest(build_mail(to=to, subject="new subject without tag", sender="other@customer.test"))
    assert again.interaction_id == first.interaction_id


def test_a_forged_reply_token_does_not_thread(ingest, db_session):
    first = ingest(build_mail())
    forged = f"reply+c{first.interaction_id}-000000000000@desk.test"
    again = ingest(build_mail(to=forged, sender="mallory@evil.test"))
    assert again.new_case


def test_a_customer_reply_reopens_a_closed_case(ingest, db_session):
    first = ingest(build_mail())
    interaction = db_session.get(Interaction, first.interaction_id)
    transition(db_session, interaction, "closed", actor="test")
    db_session.commit()
    ingest(build_mail(subject=f"Still broken {case_tag(interaction.id)}"))
    db_session.refresh(interaction)
    assert interaction.state == "queued"


def test_an_automatic_reply_does_not_reopen_a_closed_case(ingest, db_session):
    first = ingest(build_mail())
    interaction = db_session.get(Interaction, first.interaction_id)
    transition(db_session, interaction, "closed", actor="test")
    db_session.commit()
    ingest(build_mail(subject=f"Out of office {case_tag(interaction.id)}", headers={"Auto-Submitted": "auto-replied"}))
    db_session.refresh(interaction)
    assert interaction.state == "closed"


def test_rules_route_by_subject_and_mailbox_decides_otherwise(ingest, db_session):
    billing = ingest(build_mail(subject="Invoice 42 is wrong"))
    plain = ingest(build_mail(subject="Hello"), mailbox="billing")
    assert db_session.get(Interaction, billing.interaction_id).queue == "billing"
    assert db_session.get(Interaction, plain.interaction_id).queue == "billing"


def test_unknown_sender_becomes_a_prospect_and_chinese_mail_gets_a_chinese_case(ingest, db_session, outbox):
    result = ingest(build_mail(sender="wang@example.cn", subject="订单没有收到", body="你好，我的订单还没有送到。"))
    interaction = db_session.get(Interaction, result.interaction_id)
    assert interaction.language == "zh"
    assert interaction.customer_id is not None
    assert "我们已收到您的来信" in str(outbox.sent[0].message["Subject"])


def test_html_and_attachments_are_stored_with_limits(ingest, db_session):
    raw = build_mail(html="<p>Hello <b>there</b></p>", attachments=[
        ("photo.png", "image/png", b"\x89PNG" + b"0" * 100),
        ("big.pdf", "application/pdf", b"%PDF" + b"0" * 60_000),
        ("run.exe", "application/octet-stream", b"MZ" + b"0" * 10)])
    result = ingest(raw)
    message = db_session.scalar(select(EmailMessage).where(EmailMessage.inbound_id == result.inbound_id))
    assert "<b>there</b>" in message.html_body and "My order" in message.text_body
    rows = {a.filename: a for a in db_session.scalars(select(EmailAttachment))}
    assert rows["photo.png"].withheld is None and rows["photo.png"].size_bytes == 104
    assert attachment_content(db_session, rows["photo.png"]) == b"\x89PNG" + b"0" * 100
    assert rows["big.pdf"].withheld == "too_large" and rows["big.pdf"].size_bytes == 60_004
    assert rows["run.exe"].withheld == "blocked_type"
    # stored once: in the raw message, where each row says
    assert all(row.content is None and row.mime_part for row in rows.values())
    for row in (rows["big.pdf"], rows["run.exe"]):
        with pytest.raises(AttachmentUnavailable) as refused:
            attachment_content(db_session, row)
        assert refused.value.reason == row.withheld


def test_an_attachment_no_longer_where_its_row_says_is_unavailable(ingest, db_session):
    result = ingest(build_mail(attachments=[("a.pdf", "application/pdf", b"%PDF-a")]))
    row = db_session.scalar(select(EmailAttachment))
    row.mime_part = "9"
    with pytest.raises(AttachmentUnavailable) as missing:
        attachment_content(db_session, row)
    assert missing.value.reason == "missing"
    row.mime_part = "2"
    db_session.get(EmailMessage, row.message_id).inbound_id = None  # the raw message was deleted
    db_session.flush()
    with pytest.raises(AttachmentUnavailable) as gone:
        attachment_content(db_session, row)
    assert gone.value.reason == "missing"
    row.mime_part = None  # erased with the customer's data
    with pytest.raises(AttachmentUnavailable) as erased:
        attachment_content(db_session, row)
    assert erased.value.reason == "erased"
    assert result.status == "stored"


def test_unparseable_bytes_are_quarantined_not_dropped(ingest, db_session):
    result = ingest(b"\x00\x01 this is not an email at all \xff\xfe")
    assert result.status == "quarantined" and result.reason == "no_headers"
    row = db_session.get(InboundEmail, result.inbound_id)
    assert row.status == "quarantined" and row.raw.startswith(b"\x00\x01")
    assert db_session.scalar(select(func.count()).select_from(Interaction)) == 0


def test_poisonous_messages_are_quarantined_and_the_next_one_flows(ingest, db_session):
    many = build_mail(attachments=[(f"f{i}.txt", "text/plain", b"x") for i in range(8)])
    huge = build_mail(body="x" * 300_000)
    deep = build_mail(attachments=[(f"f{i}.bin", "application/octet-stream", b"x") for i in range(45)])
    results = [ingest(raw) for raw in (many, huge, deep, build_mail(subject="fine"))]
    assert [r.status for r in results] == ["quarantined", "quarantined", "quarantined", "stored"]
    assert [r.reason for r in results[:3]] == ["too_many_attachments", "too_large", "too_many_parts"]


def test_a_message_too_big_to_store_keeps_its_headers(ingest, db_session):
    result = ingest(build_mail(body="y" * 500_000))
    row = db_session.get(InboundEmail, result.inbound_id)
    assert row.headers_only and row.raw_size > 500_000 and b"Subject: Help please" in row.raw
    assert result.reason == "too_large"


def test_a_bug_while_processing_quarantines_the_message(ingest, db_session, desk, monkeypatch):
    from app.channels.email import ingest as ingest_module

    def boom(*args, **kwargs):
        raise RuntimeError("threading exploded")

    monkeypatch.setattr(ingest_module.threads, "find_case", boom)
    result = ingest(build_mail())
    assert result.status == "quarantined" and result.reason == "processing_error"
    assert "threading exploded" in db_session.get(InboundEmail, result.inbound_id).error
    monkeypatch.undo()
    retried = process_inbound(db_session, desk, result.inbound_id, secret=SECRET)
    assert retried.status == "stored" and retried.new_case


def test_release_puts_an_unparseable_message_on_a_case(ingest, db_session, desk):
    result = ingest(b"garbage without headers\r\n\r\nbody")
    released = process_inbound(db_session, desk, result.inbound_id, secret=SECRET, lenient=True)
    assert released.status == "stored" and released.new_case
    message = db_session.scalar(select(EmailMessage).where(EmailMessage.inbound_id == result.inbound_id))
    assert message.subject == "(unreadable message)" and "garbage" in message.text_body
    assert message.attachments[0].filename == "original.eml"
    assert attachment_content(db_session, message.attachments[0]) == b"garbage without headers\r\n\r\nbody"
    assert db_session.get(InboundEmail, result.inbound_id).status == "processed"


def test_processing_twice_is_a_no_op(ingest, db_session, desk):
    result = ingest(build_mail())
    again = process_inbound(db_session, desk, result.inbound_id, secret=SECRET)
    assert again.interaction_id == result.interaction_id
    assert db_session.scalar(select(func.count()).select_from(EmailThread)) == 1


def test_every_step_is_in_the_event_log(ingest, db_session):
    result = ingest(build_mail())
    kinds = db_session.scalars(select(InteractionEvent.kind).where(
        InteractionEvent.interaction_id == result.interaction_id).order_by(InteractionEvent.id)).all()
    assert kinds[:3] == ["created", "transition", "email_acknowledgement"]
    assert "email_sent" in kinds


def test_erasing_the_customer_stops_their_attachments_being_served(ingest, db_session):
    from app.privacy import erase_customer

    result = ingest(build_mail(attachments=[("id-card.jpg", "image/jpeg", b"\xff\xd8 a face")]))
    customer_id = db_session.get(Interaction, result.interaction_id).customer_id
    erase_customer(db_session, customer_id, actor="admin:1", reason="request")
    db_session.commit()
    row = db_session.scalar(select(EmailAttachment))
    assert row.mime_part is None
    with pytest.raises(AttachmentUnavailable) as erased:
        attachment_content(db_session, row)
    assert erased.value.reason == "erased"
    raw = db_session.execute(select(InboundEmail.raw, InboundEmail.status, InboundEmail.raw_size)
                             .where(InboundEmail.id == result.inbound_id)).one()
    assert not raw.raw and raw.status == "processed" and raw.raw_size > 0  # the bytes went, the counts stay


def test_an_export_holds_the_raw_messages_the_customer_sent(ingest, db_session):
    from app.privacy import export_customer

    result = ingest(build_mail(body="please find my order 10023"))
    customer_id = db_session.get(Interaction, result.interaction_id).customer_id
    exported = export_customer(db_session, customer_id, actor="admin:1")
    assert [row["id"] for row in exported["email_inbound"]] == [result.inbound_id]
