"""Batch ingest (IMAP poller, ``flask mail ingest``): one commit stores a batch, one processes it, and
each message still stands alone -- stored once, quarantined alone, its events and jobs dropped with it."""
from __future__ import annotations

import logging

from sqlalchemy import func, select, text

from app.channels.email.attachments import attachment_content
from app.channels.email.batch import RawMessage, ingest_many
from app.channels.email.models import EmailAttachment, EmailMessage, EmailThread, InboundEmail
from app.interactions.models import Interaction
from tests.email.conftest import SECRET, build_mail, set_email_config


def _many(db_session, desk, raws: list[bytes], mailbox: str = "support"):
    return ingest_many(db_session, desk, mailbox, [RawMessage(raw) for raw in raws], source="imap", secret=SECRET)


def test_one_bad_message_is_quarantined_alone_and_the_batch_flows(app, desk, db_session, outbox, events, caplog):
    # a rule sending "poison" to a queue the router does not know: routing fails after the case was written
    caplog.set_level(logging.INFO, logger="app.channels.email.batch")
    desk = set_email_config(app, rules=[{"subject_contains": ["poison"], "queue": "no-such-queue"}])
    first = build_mail(message_id="<first@customer.test>", subject="First")
    reply = build_mail(message_id="<reply@customer.test>", subject="Re: First", in_reply_to="first@customer.test")
    poison = build_mail(sender="bob@customer.test", subject="poison pill")
    garbage = b"\x00\x01 not an email \xff"
    last = build_mail(sender="carol@customer.test", subject="Last")

    results = _many(db_session, desk, [first, reply, first, poison, garbage, last])

    assert [r.status for r in results] == ["stored", "stored", "duplicate", "quarantined", "quarantined", "stored"]
    assert results[2].inbound_id == results[0].inbound_id
    assert results[1].interaction_id == results[0].interaction_id and not results[1].new_case
    assert [results[3].reason, results[4].reason] == ["processing_error", "no_headers"]
    poisoned = db_session.get(InboundEmail, results[3].inbound_id)
    assert poisoned.status == "quarantined" and "no-such-queue" in poisoned.error and poisoned.raw == poison
    # nothing of the poisoned message survived its savepoint; the others are whole
    assert db_session.scalar(select(func.count()).select_from(Interaction)) == 2
    assert db_session.scalar(select(func.count()).select_from(EmailThread)) == 2
    assert db_session.scalar(select(func.count()).where(EmailMessage.inbound_id == poisoned.id)) == 0
    statuses = db_session.execute(select(InboundEmail.status, func.count()).group_by(InboundEmail.status)).all()
    assert dict(statuses) == {"processed": 3, "quarantined": 2}
    # the events and acknowledgement jobs of the kept messages went out after the commit; none of the poison's
    created = [p["id"] for name, p in events if name == "interaction.created"]
    assert sorted(created) == sorted({results[0].interaction_id, results[5].interaction_id})
    assert sorted(m.recipients[0] for m in outbox.sent) == ["alice@customer.test", "carol@customer.test"]
    assert "one savepoint each" in caplog.text  # the batch was processed again, message by message


def test_unparseable_messages_cost_the_batch_no_second_pass(app, desk, db_session, caplog):
    caplog.set_level(logging.INFO, logger="app.channels.email.batch")
    results = _many(db_session, desk, [build_mail(), b"\x00 not mail", build_mail(sender="dan@customer.test")])
    assert [r.status for r in results] == ["stored", "quarantined", "stored"]
    assert results[1].reason == "no_headers"
    assert db_session.get(InboundEmail, results[1].inbound_id).status == "quarantined"
    assert db_session.scalar(select(func.count()).select_from(Interaction)) == 2
    assert "one savepoint each" not in caplog.text


def test_a_bug_while_parsing_quarantines_that_message_and_the_batch_flows(app, desk, db_session, monkeypatch):
    from app.channels.email import ingest as ingest_module

    real = ingest_module.parse_email

    def fragile(raw, **kwargs):
        if b"explode" in raw:
            raise RuntimeError("parser exploded")
        return real(raw, **kwargs)

    monkeypatch.setattr(ingest_module, "parse_email", fragile)
    results = _many(db_session, desk, [build_mail(subject="explode"), build_mail(sender="erin@customer.test")])
    assert [(r.status, r.reason) for r in results] == [("quarantined", "processing_error"), ("stored", None)]
    assert "parser exploded" in db_session.get(InboundEmail, results[0].inbound_id).error


def test_a_batch_recognises_messages_stored_before(ingest, app, desk, db_session):
    earlier = ingest(build_mail(message_id="<seen@customer.test>"))
    results = _many(db_session, desk, [build_mail(message_id="<seen@customer.test>"), build_mail()])
    assert [r.status for r in results] == ["duplicate", "stored"]
    assert results[0].inbound_id == earlier.inbound_id
    assert db_session.scalar(select(func.count()).select_from(InboundEmail)) == 2


def test_a_header_only_message_in_a_batch_is_quarantined_as_too_large(app, desk, db_session):
    header = build_mail(subject="Huge").split(b"\n\n", 1)[0] + b"\n\n"
    [result] = ingest_many(db_session, desk, "support", [RawMessage(header, "7:42", headers_only_size=9_000_000)],
                           source="imap", secret=SECRET)
    row = db_session.get(InboundEmail, result.inbound_id)
    assert result.reason == "too_large" and row.headers_only and row.raw_size == 9_000_000
    assert row.source_ref == "7:42"


def test_an_empty_batch_stores_nothing(app, desk, db_session):
    assert _many(db_session, desk, []) == []
    assert db_session.scalar(select(func.count()).select_from(InboundEmail)) == 0


def test_large_values_are_compressed_with_lz4_where_the_server_has_it(app, desk, db_session):
    body = "my order has not arrived, please refund " * 500
    mail = build_mail(body=body, attachments=[("notes.txt", "text/plain", body.encode())])
    [result] = _many(db_session, desk, [mail])
    assert result.status == "stored"
    if db_session.get_bind().dialect.name != "postgresql":
        return  # SQLite stores values as they are
    has_lz4 = db_session.scalar(text(
        "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"))
    text_method = db_session.scalar(text(
        "SELECT pg_column_compression(text_body) FROM email_messages WHERE inbound_id = :id"), {"id": result.inbound_id})
    assert text_method == ("lz4" if has_lz4 else "pglz")
    # the raw bytes (mostly base64, compressed or random) are never compressed: out of line as they are,
    # and read back whole; the attachment is not stored a second time, it is read from them
    raw_method, raw = db_session.execute(text(
        "SELECT pg_column_compression(raw), raw FROM email_inbound WHERE id = :id"), {"id": result.inbound_id}).one()
    content = db_session.scalar(text(
        "SELECT a.content FROM email_attachments a "
        "JOIN email_messages m ON m.id = a.message_id WHERE m.inbound_id = :id"), {"id": result.inbound_id})
    assert raw_method is None and bytes(raw) == mail and content is None
    attachment = db_session.scalar(select(EmailAttachment))
    assert attachment_content(db_session, attachment) == body.encode()
    # attachment contents stored before that (the column stays for them) are not compressed either
    storage = dict(db_session.execute(text(
        "SELECT attrelid::regclass::text || '.' || attname, attstorage FROM pg_attribute "
        "WHERE (attrelid, attname) IN (('email_inbound'::regclass, 'raw'), ('email_attachments'::regclass, 'content'))")).all())
    assert storage == {"email_inbound.raw": "e", "email_attachments.content": "e"}


def test_messages_left_pending_by_an_outage_are_processed_by_the_periodic_sweep(app, desk, db_session):
    from datetime import timedelta

    from app.channels.email.jobs import STALE_PENDING_S, process_stale_pending
    from app.db import utcnow

    # stored, then the database failed before processing: the next poll sees duplicates only
    def stored(raw: bytes, age_s: int) -> int:
        row = InboundEmail(mailbox="support", message_key=f"mid:{age_s}@x", source="imap", raw=raw,
                           raw_size=len(raw), raw_sha256="0" * 64, headers_only=False, status="pending",
                           attempts=0, received_at=utcnow() - timedelta(seconds=age_s))
        db_session.add(row)
        db_session.commit()
        return row.id

    old = stored(build_mail(subject="Stranded"), STALE_PENDING_S + 60)
    fresh = stored(build_mail(sender="frank@customer.test"), 5)  # maybe being processed right now
    results = process_stale_pending(db_session, desk, secret=SECRET)
    assert [(r.inbound_id, r.status, r.new_case) for r in results] == [(old, "stored", True)]
    assert db_session.get(InboundEmail, old).status == "processed"
    assert db_session.get(InboundEmail, fresh).status == "pending"
    assert process_stale_pending(db_session, desk, secret=SECRET) == []


def test_a_batch_identifies_its_known_senders_in_one_query_and_new_ones_once(app, desk, db_session):
    from sqlalchemy import event

    from app.crm.models import Customer, CustomerEmail
    from tests.factories import make_customer

    known = make_customer(db_session, email="known@customer.test", language="zh", tier="vip")
    make_customer(db_session, email="twice@customer.test")
    make_customer(db_session, email="twice@customer.test")
    db_session.commit()
    raws = [build_mail(sender="Known@customer.test", subject="One"), build_mail(sender="new@customer.test"),
            build_mail(sender="twice@customer.test"), build_mail(sender="new@customer.test", subject="Again"),
            build_mail(sender="known@customer.test", subject="Two")]
    matching: list[str] = []

    def record(conn, cursor, statement, *rest):
        if "customer_emails" in statement and statement.lstrip().startswith("SELECT"):
            matching.append(statement)

    event.listen(db_session.get_bind(), "before_cursor_execute", record)
    try:
        results = _many(db_session, desk, raws)
    finally:
        event.remove(db_session.get_bind(), "before_cursor_execute", record)
    assert [r.status for r in results] == ["stored"] * 5 and all(r.new_case for r in results)
    cases = [db_session.get(Interaction, r.interaction_id) for r in results]
    assert [cases[0].customer_id, cases[4].customer_id] == [known.id, known.id]
    assert cases[0].language == "zh" and cases[0].priority == 300  # the CRM's language and tier, read in the batch
    assert cases[2].customer_id is None, "two customers share the address: nobody is guessed"
    prospects = db_session.scalars(select(Customer).join(CustomerEmail).where(
        CustomerEmail.email == "new@customer.test")).all()
    assert len(prospects) == 1 and prospects[0].is_prospect
    assert cases[1].customer_id == cases[3].customer_id == prospects[0].id
    # one query for the whole batch; then one each for the senders it could not settle (new twice, twice)
    assert len(matching) == 1 + 3


def _statements(db_session, run):
    """(result of ``run()``, the SQL statements it sent)."""
    from sqlalchemy import event

    sent: list[str] = []

    def record(conn, cursor, statement, *rest):
        sent.append(statement)

    event.listen(db_session.get_bind(), "before_cursor_execute", record)
    try:
        return run(), sent
    finally:
        event.remove(db_session.get_bind(), "before_cursor_execute", record)


def test_a_batch_writes_its_new_cases_together_with_ids_reserved_in_order(app, desk, db_session):
    raws = [build_mail(sender=f"p{n}@customer.test", subject=f"Case {n}") for n in range(4)]
    results, sent = _statements(db_session, lambda: _many(db_session, desk, raws))
    assert all(r.status == "stored" and r.new_case and r.acknowledged for r in results)
    ids = [r.interaction_id for r in results]
    assert ids == sorted(ids) and ids[-1] - ids[0] == 3  # in arrival order, no gaps
    inserts = [s for s in sent if s.lstrip().startswith("INSERT INTO interactions")]
    if db_session.get_bind().dialect.name == "postgresql":
        assert len(inserts) == 1, "one multi-row INSERT for the batch's cases"
    messages = db_session.scalars(select(EmailMessage).order_by(EmailMessage.id)).all()
    assert [(m.interaction_id, m.kind) for m in messages] == [(i, k) for i in ids for k in ("customer", "ack")]
    for interaction_id in ids:
        case = db_session.get(Interaction, interaction_id)
        assert case.state == "queued" and case.queue == "general"
        kinds = [e.kind for e in case.events]
        assert kinds[:3] == ["created", "transition", "email_acknowledgement"]  # then the sending job's


def test_a_reply_threads_onto_a_case_opened_earlier_in_the_same_batch(app, desk, db_session):
    first = build_mail(message_id="<opening@customer.test>", subject="Broken kettle")
    by_reference = build_mail(sender="bob@customer.test", message_id="<ref@customer.test>", subject="Re: kettle",
                              references=["unknown@elsewhere.test", "opening@customer.test"])
    second = build_mail(sender="carol@customer.test", subject="Another matter")
    results = _many(db_session, desk, [first, by_reference, second])
    assert [r.new_case for r in results] == [True, False, True]
    assert results[1].interaction_id == results[0].interaction_id
    message = db_session.scalar(select(EmailMessage).where(EmailMessage.message_id == "ref@customer.test"))
    assert message.details["threaded_via"] == "references"
    # a later batch's reply by the case tag of a case the same batch opened, from its customer
    tag_case = build_mail(sender="dave@customer.test", message_id="<dave1@customer.test>", subject="Lost parcel")
    results = _many(db_session, desk, [tag_case])
    tagged = build_mail(sender="dave@customer.test", subject=f"Re: Lost parcel [#C-{results[0].interaction_id}]")
    again = _many(db_session, desk, [build_mail(sender="erin@customer.test"), tagged])
    assert again[1].interaction_id == results[0].interaction_id and not again[1].new_case


def test_a_tag_naming_a_case_opened_in_the_same_batch_finds_it(app, desk, db_session):
    [earlier] = _many(db_session, desk, [build_mail(sender="gina@customer.test", subject="Where is my order")])
    nxt = earlier.interaction_id + 1  # the case the next batch opens first (ids are reserved in order)
    opening = build_mail(sender="hank@customer.test", subject="Missing item")
    tagged = build_mail(sender="hank@customer.test", subject=f"Re: Missing item [#C-{nxt}]", message_id="<t@x.test>")
    results = _many(db_session, desk, [opening, tagged])
    assert results[0].interaction_id == nxt and results[1].interaction_id == nxt and not results[1].new_case
    via = db_session.scalar(select(EmailMessage.details).where(EmailMessage.message_id == "t@x.test"))
    assert via["threaded_via"] == "subject_tag"


def test_acknowledgements_in_one_batch_respect_the_sender_limit(app, desk, db_session, outbox):
    # max_per_sender is 3 in the test config: a burst of five new cases from one address gets three answers
    raws = [build_mail(sender="loop@customer.test", subject=f"Auto {n}") for n in range(5)]
    results = _many(db_session, desk, raws)
    assert [r.acknowledged for r in results] == [True, True, True, False, False]
    # the next batch counts them as sent (read from the database)
    [later] = _many(db_session, desk, [build_mail(sender="loop@customer.test", subject="Auto 6")])
    assert not later.acknowledged
    [other] = _many(db_session, desk, [build_mail(sender="fresh@customer.test")])
    assert other.acknowledged


def test_no_acknowledgement_to_an_address_marked_undeliverable(app, desk, db_session):
    from app.channels.email.models import UndeliverableAddress

    db_session.add(UndeliverableAddress(address="gone@customer.test", status_code="5.1.1", diagnostic="no such user"))
    db_session.commit()
    results = _many(db_session, desk, [build_mail(sender="Gone@customer.test"), build_mail(sender="ok@customer.test")])
    assert [r.acknowledged for r in results] == [False, True]


def test_a_failure_after_ids_were_reserved_redoes_the_batch_with_the_same_ids(app, desk, db_session, outbox):
    desk = set_email_config(app, rules=[{"subject_contains": ["poison"], "queue": "no-such-queue"}])
    raws = [build_mail(sender="ann@customer.test", subject="One"),
            build_mail(sender="ann@customer.test", subject="poison"),
            build_mail(sender="ann@customer.test", subject="Three", message_id="<three@customer.test>"),
            build_mail(sender="bea@customer.test", subject="Re: Three", in_reply_to="three@customer.test")]
    results = _many(db_session, desk, raws)
    assert [r.status for r in results] == ["stored", "quarantined", "stored", "stored"]
    assert results[3].interaction_id == results[2].interaction_id and not results[3].new_case
    first, third = results[0].interaction_id, results[2].interaction_id
    assert first < third
    # the poisoned message's acknowledgement went with it: ann got two, one per kept case
    assert sorted(m.recipients[0] for m in outbox.sent) == ["ann@customer.test", "ann@customer.test"]
    assert db_session.scalar(select(func.count()).select_from(Interaction)) == 2
    assert db_session.scalar(select(func.count()).where(EmailMessage.kind == "ack")) == 2


def test_a_bounce_in_a_batch_marks_the_address_before_the_next_acknowledgement(ingest, app, desk, db_session):
    from app.channels.email.models import UndeliverableAddress

    opened = ingest(build_mail(sender="ivy@customer.test", subject="Hello"))
    ack = db_session.scalar(select(EmailMessage).where(EmailMessage.interaction_id == opened.interaction_id,
                                                       EmailMessage.kind == "ack"))
    bounce = build_bounce(ack.message_id, "ivy@customer.test")
    results = _many(db_session, desk, [bounce, build_mail(sender="ivy@customer.test", subject="Another")])
    assert results[0].interaction_id == opened.interaction_id
    assert db_session.scalar(select(UndeliverableAddress.address)) == "ivy@customer.test"
    assert results[1].new_case and not results[1].acknowledged


def build_bounce(original_message_id: str, recipient: str) -> bytes:
    return (
        "From: MAILER-DAEMON@mx.customer.test\r\nTo: support@desk.test\r\nSubject: Undelivered Mail\r\n"
        "Message-ID: <bounce-1@mx.customer.test>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n"
        "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.customer.test\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: <{original_message_id}>\r\nSubject: x\r\n\r\n--B--\r\n").encode()


def test_known_senders_are_routed_on_their_history_read_once_for_the_batch(app, desk, db_session):
    from app.complaints import service as complaints
    from app.db import utcnow
    from queues.models import AgentState, QueueEntry
    from tests.factories import make_customer, make_interaction, make_staff

    served = make_customer(db_session, email="served@customer.test")
    plain = make_customer(db_session, email="plain@customer.test")
    staff = make_staff(db_session)
    db_session.add(AgentState(agent_id=staff.id, presence="available", since=utcnow(), missed_offers=0))
    earlier = make_interaction(db_session, channel="email", customer=served)
    earlier.agent_id, earlier.state, earlier.state_changed_at = staff.id, "closed", utcnow()
    complaints.raise_complaint(db_session, desk, channel="email", customer_id=served.id, category="billing",
                               description="Charged twice", scores={"financial_loss": 1})
    db_session.commit()
    raws = [build_mail(sender="served@customer.test", subject="Another thing"),
            build_mail(sender="plain@customer.test", subject="Question"),
            build_mail(sender="served@customer.test", subject="And one more")]
    results, sent = _statements(db_session, lambda: _many(db_session, desk, raws))
    assert [r.new_case for r in results] == [True, True, True]
    for result, customer in zip(results, (served, plain, served), strict=True):
        case = db_session.get(Interaction, result.interaction_id)
        entry = db_session.get(QueueEntry, case.id)
        codes = [r["code"] for r in case.priority_reasons]
        if customer is served:
            assert entry.preferred_agent_id == staff.id and "open_complaint" in codes
        else:
            assert entry.preferred_agent_id is None and "open_complaint" not in codes
    # one read of the batch's routing histories, no lookup per message
    assert len([s for s in sent if "FROM complaints" in s]) == 1
    assert len([s for s in sent if "interactions.agent_id IS NOT NULL" in s]) == 1


def test_a_reply_reopening_a_case_makes_the_batch_look_the_customers_history_up_again(ingest, app, desk, db_session):
    from app.db import utcnow
    from queues.models import AgentState, QueueEntry
    from tests.factories import make_customer, make_staff

    make_customer(db_session, email="back@customer.test")
    staff = make_staff(db_session)
    db_session.add(AgentState(agent_id=staff.id, presence="available", since=utcnow(), missed_offers=0))
    db_session.commit()
    opened = ingest(build_mail(sender="back@customer.test", message_id="<start@customer.test>"))
    case = db_session.get(Interaction, opened.interaction_id)
    case.agent_id, case.state, case.state_changed_at = staff.id, "closed", utcnow()  # served, then closed
    db_session.commit()
    reply = build_mail(sender="back@customer.test", subject="Re: Help", in_reply_to="start@customer.test")
    results = _many(db_session, desk, [reply, build_mail(sender="back@customer.test", subject="New matter")])
    assert results[0].interaction_id == opened.interaction_id and results[1].new_case
    # the reopened case is waiting again without its agent: it no longer names one for the new case
    assert db_session.get(Interaction, opened.interaction_id).agent_id is None
    assert db_session.get(QueueEntry, results[1].interaction_id).preferred_agent_id is None


def test_a_row_the_database_refuses_only_when_the_batch_is_written_quarantines_that_message(app, desk, db_session,
                                                                                           monkeypatch, outbox):
    import pytest

    from app.channels.email import ingest as ingest_module

    if db_session.get_bind().dialect.name != "postgresql":
        pytest.skip("SQLite does not enforce the column's length")
    real = ingest_module._attachment_values

    def too_long(attachment, limits):
        row = real(attachment, limits)
        if attachment.filename == "refused.txt":
            row["filename"] = "x" * 300  # longer than the column: refused when the rows are written
        return row

    monkeypatch.setattr(ingest_module, "_attachment_values", too_long)
    raws = [build_mail(sender="kim@customer.test", subject="Fine"),
            build_mail(sender="lee@customer.test", subject="With file", attachments=[("refused.txt", "text/csv", b"a")]),
            build_mail(sender="mo@customer.test", subject="Also fine")]
    results = _many(db_session, desk, raws)
    assert [r.status for r in results] == ["stored", "quarantined", "stored"]
    assert results[1].reason == "processing_error"
    assert db_session.scalar(select(func.count()).select_from(Interaction)) == 2
    assert sorted(m.recipients[0] for m in outbox.sent) == ["kim@customer.test", "mo@customer.test"]


def test_a_batch_writes_each_message_attachments_linked_to_it_and_readable(app, desk, db_session):
    raws = [build_mail(sender="kim@customer.test", subject="Two files",
                       attachments=[("a.pdf", "application/pdf", b"%PDF-kim"), ("b.png", "image/png", b"\x89PNG-kim")]),
            build_mail(sender="lee@customer.test", subject="No file"),
            build_mail(sender="mo@customer.test", subject="One file", attachments=[("c.csv", "text/csv", b"mo,1\n")])]
    results = _many(db_session, desk, raws)
    assert [r.status for r in results] == ["stored"] * 3
    by_sender = {}
    for row in db_session.scalars(select(EmailAttachment).order_by(EmailAttachment.id)):
        message = db_session.get(EmailMessage, row.message_id)
        by_sender.setdefault(message.from_address, []).append(
            (row.filename, row.size_bytes, attachment_content(db_session, row)))
    assert by_sender == {"kim@customer.test": [("a.pdf", 8, b"%PDF-kim"), ("b.png", 8, b"\x89PNG-kim")],
                         "mo@customer.test": [("c.csv", 5, b"mo,1\n")]}
