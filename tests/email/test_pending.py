"""The rows an ingest batch holds as values (``pending``): threads, messages, attachments and the cases'
event log are written one statement per table, and are the very rows the one-message door writes."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.channels.email.batch import RawMessage, ingest_many
from app.channels.email.models import EmailAttachment, EmailMessage, EmailThread
from app.interactions.models import Interaction, InteractionEvent
from app.interactions.service import EVENT_ROWS_KEY, create_interaction, record_fact, transition
from tests.email.conftest import SECRET, build_mail
from tests.statements import sent_statements


def _many(db_session, desk, raws: list[bytes]):
    return ingest_many(db_session, desk, "support", [RawMessage(raw) for raw in raws], source="imap", secret=SECRET)


def _columns(row, leave_out: set[str]) -> dict:
    return {c.key: getattr(row, c.key) for c in row.__table__.columns if c.key not in leave_out}


def _case_rows(db_session, interaction_id: int) -> dict:
    """The rows of one case, without what names the case or its inbound message (ids, Message-IDs, times)."""
    thread = db_session.scalar(select(EmailThread).where(EmailThread.interaction_id == interaction_id))
    inbound, ack = db_session.scalars(select(EmailMessage).where(EmailMessage.interaction_id == interaction_id)
                                      .order_by(EmailMessage.id)).all()
    events = db_session.scalars(select(InteractionEvent).where(InteractionEvent.interaction_id == interaction_id)
                                .order_by(InteractionEvent.id)).all()
    tag = f"[#C-{interaction_id}]"
    assert ack.subject.endswith(tag) and ack.in_reply_to == inbound.message_id
    assert ack.references == [inbound.message_id] and inbound.thread_id == ack.thread_id == thread.id
    assert [e.occurred_at for e in events] == sorted(e.occurred_at for e in events)
    ids = {"id", "thread_id", "interaction_id", "inbound_id", "message_id", "created_at"}
    return {
        "thread": _columns(thread, {"id", "interaction_id", "created_at"}),
        "inbound": _columns(inbound, ids),
        "attachments": [_columns(a, {"id", "message_id"}) for a in inbound.attachments],
        "ack": dict(_columns(ack, ids | {"in_reply_to", "references", "send_after", "sent_at"}),
                    subject=ack.subject.removesuffix(tag), text_body=ack.text_body.replace(f"C-{interaction_id}", "C-n")),
        "events": [(e.kind, e.from_state, e.to_state, e.actor, e.reason,
                    {k: v for k, v in e.data.items() if k not in ("inbound_id", "email_message_id")})
                   for e in events],
    }


def test_a_batch_writes_the_rows_the_one_message_door_writes(ingest, app, desk, db_session, outbox):
    raw = build_mail(sender="Ann Lee <ann@customer.test>", cc="bo@customer.test, help@desk.test", subject="Kettle",
                     body="It leaks.", html="<p>It <b>leaks</b>.</p>", message_id="<one@customer.test>",
                     attachments=[("photo.png", "image/png", b"\x89PNG-1"), ("run.exe", "application/x-msdos-program",
                                                                               b"MZ")])
    alone = ingest(raw)  # the one-message door: ORM objects
    [batched] = _many(db_session, desk, [raw.replace(b"<one@customer.test>", b"<two@customer.test>")])
    assert alone.status == batched.status == "stored" and alone.new_case and batched.new_case
    assert batched.interaction_id != alone.interaction_id
    db_session.expire_all()
    first, second = _case_rows(db_session, alone.interaction_id), _case_rows(db_session, batched.interaction_id)
    assert second == first
    assert first["thread"]["cc"] == ["bo@customer.test"] and first["inbound"]["html_body"].startswith("<p>It <b>leaks</b>.</p>")
    assert [a["withheld"] for a in first["attachments"]] == [None, "blocked_type"]
    assert [kind for kind, *_ in first["events"]][:3] == ["created", "transition", "email_acknowledgement"]
    assert len(outbox.sent) == 2


def test_a_batch_sends_one_insert_per_table_of_held_rows_and_no_returning(app, desk, db_session):
    if db_session.get_bind().dialect.name != "postgresql":
        pytest.skip("rows are held as values only where ids are reserved (PostgreSQL)")
    raws = [build_mail(sender=f"p{n}@customer.test", subject=f"Case {n}",
                       attachments=[("a.txt", "text/plain", b"a")] if n else None) for n in range(3)]
    queued: list = []
    app.extensions["desk.jobs"] = type("Held", (), {"enqueue": lambda self, *a, **k: queued.append(a)})()
    results: list = []
    sent = sent_statements(db_session, lambda: results.extend(_many(db_session, desk, raws)))
    assert all(r.status == "stored" and r.new_case for r in results) and len(queued) == 3  # the acks' jobs, not run
    for table in ("email_threads", "email_messages", "email_attachments", "interaction_events"):
        inserts = [s for s in sent if s.lstrip().startswith(f"INSERT INTO {table} ")]
        assert len(inserts) == 1 and "RETURNING" not in inserts[0], table
    counts = {model.__tablename__: len(db_session.scalars(select(model.id)).all())
              for model in (EmailThread, EmailMessage, EmailAttachment)}
    assert counts == {"email_threads": 3, "email_messages": 6, "email_attachments": 2}


def test_the_event_log_holds_rows_as_values_for_a_caller_that_asks(app, db_session):
    held: list[dict] = []
    db_session.info[EVENT_ROWS_KEY] = held
    try:
        case = create_interaction(db_session, channel="email", actor="email", interaction_id=None)
        assert record_fact(db_session, case, "note", actor="email", data={"n": 1}) is None
        assert transition(db_session, case, "closed", actor="email", reason="done") is None
    finally:
        del db_session.info[EVENT_ROWS_KEY]
    assert not [obj for obj in db_session.new if isinstance(obj, InteractionEvent)]
    assert [(r["interaction_id"], r["kind"], r["from_state"], r["to_state"], r["data"]) for r in held] == [
        (case.id, "created", None, "new", {"channel": "email"}), (case.id, "note", "new", "new", {"n": 1}),
        (case.id, "transition", "new", "closed", {})]
    # without the key: objects in the session, as for every other caller
    row = record_fact(db_session, case, "note", actor="email")
    assert isinstance(row, InteractionEvent) and row in db_session.new
    db_session.rollback()
    assert db_session.get(Interaction, case.id) is None


@pytest.mark.parametrize("by", ["in_reply_to", "reply_token"])
def test_a_reply_reads_its_case_thread_and_customer_addresses_in_one_query(ingest, app, desk, db_session, by):
    from app.channels.email import threads
    from app.crm.models import CustomerEmail
    from tests.factories import make_customer

    customer = make_customer(db_session, email="amy@customer.test")
    customer.emails.append(CustomerEmail(email="amy@work.test"))
    db_session.commit()
    opened = ingest(build_mail(sender="amy@customer.test", message_id="<start@customer.test>", subject="Kettle"))
    to = f"reply+{threads.mint_token(SECRET, opened.interaction_id)}@desk.test" if by == "reply_token" \
        else "support@desk.test"
    reply = build_mail(sender="amy@work.test", to=to, cc="dan@customer.test", subject="Re: Kettle",
                       in_reply_to="start@customer.test" if by == "in_reply_to" else None)
    results: list = []
    sent = sent_statements(db_session, lambda: results.extend(_many(db_session, desk, [reply])))
    [result] = results
    assert result.interaction_id == opened.interaction_id and not result.new_case
    # the sender is another address of the case's customer: the CC they added may use the case tag
    thread = db_session.scalar(select(EmailThread).where(EmailThread.interaction_id == opened.interaction_id))
    assert thread.cc == ["dan@customer.test"]
    via = db_session.scalar(select(EmailMessage.details).where(EmailMessage.from_address == "amy@work.test"))
    assert via["threaded_via"] == by
    reads = [s for s in sent if s.lstrip().startswith("SELECT") and "JOIN email_threads" in s]
    assert len(reads) == 1 and "customer_emails" in reads[0]
    assert not [s for s in sent if s.lstrip().startswith("SELECT customer_emails.email FROM customer_emails")]


def test_a_reply_that_threads_nowhere_opens_a_case_with_ids_drawn_for_it(app, desk, db_session):
    # ids are reserved for the messages without reply headers; this one needs a case and a thread as well
    raws = [build_mail(sender="nia@customer.test", subject="Re: something old", in_reply_to="gone@elsewhere.test"),
            build_mail(sender="oli@customer.test", subject="New")]
    results = _many(db_session, desk, raws)
    assert [(r.status, r.new_case, r.acknowledged) for r in results] == [("stored", True, True)] * 2
    for result in results:
        thread = db_session.scalar(select(EmailThread).where(EmailThread.interaction_id == result.interaction_id))
        kinds = [m.kind for m in db_session.scalars(select(EmailMessage).where(
            EmailMessage.thread_id == thread.id).order_by(EmailMessage.id))]
        assert kinds == ["customer", "ack"]
