"""A voice webhook opens its transaction at its first write: reads and a lone write run without BEGIN/COMMIT,
several writes still commit or roll back together."""
from __future__ import annotations

import pytest
from psycopg import pq
from sqlalchemy import create_engine, event, func, insert, select, text, true, update
from sqlalchemy.orm import Session

from app.channels import voice
from app.channels.lazy_transaction import SingleWriteError, begin_lazily, reading_alone, reads_only, single_write
from app.channels.telephony import RecordingTelephony
from app.extensions import db
from app.interactions.models import Interaction
from app.interactions.states import State
from ivr.calls import CallStateError
from ivr.models import VoiceWebhookReceipt
from tests.ivr.helpers import OPEN_AT
from tests.ivr.phone import Caller

IDLE, INTRANS = pq.TransactionStatus.IDLE, pq.TransactionStatus.INTRANS


@pytest.fixture()
def phone(app, client, monkeypatch, postgresql):
    monkeypatch.setattr(voice, "utcnow", lambda: OPEN_AT)
    monkeypatch.setitem(app.extensions, "desk.telephony", RecordingTelephony())
    return Caller(client)


@pytest.fixture()
def sent(app, postgresql):
    """Each statement the app sends, with the connection's transaction status once it ran: IDLE after a
    statement means it ran on its own, outside any transaction."""
    seen: list[tuple[str, pq.TransactionStatus]] = []

    def record(conn, cursor, statement, *rest):
        seen.append((statement.split(None, 1)[0].upper(), cursor.connection.info.transaction_status))

    event.listen(db.engine, "after_cursor_execute", record)
    yield seen
    event.remove(db.engine, "after_cursor_execute", record)


def webhook(db_session, sent, send):
    """``send()`` with the test's own session out of any transaction (the request shares it), recording
    only what the webhook sent."""
    db_session.commit()
    sent.clear()
    return send()


_RECEIPT_IDS = select(VoiceWebhookReceipt.id)
_MOVED = update(Interaction).values(state="closed").returning(Interaction.id).cte("moved")


@pytest.mark.parametrize(("statement", "alone"), [
    (_RECEIPT_IDS, True),
    (select(func.count()).select_from(Interaction.__table__.join(VoiceWebhookReceipt.__table__, true())), True),
    (_RECEIPT_IDS.with_for_update(), False),
    (_RECEIPT_IDS.with_for_update(read=True), False),
    (select(func.count()).select_from(_MOVED), False),
    (select(func.count()).select_from(_MOVED.join(VoiceWebhookReceipt.__table__, true())), False),
    (_RECEIPT_IDS.add_cte(insert(VoiceWebhookReceipt).cte("logged")), False),
    (text("  select nextval('interactions_id_seq')"), True),
    (text("SELECT * FROM agent_states WHERE agent_id = 1 FOR UPDATE"), False),
    (text("SELECT * FROM agent_states FOR NO KEY UPDATE SKIP LOCKED"), False),
    (text("SELECT pg_advisory_xact_lock(42)"), False),
    (text("WITH moved AS (UPDATE interactions SET state = 'x' RETURNING id) SELECT count(*) FROM moved"), False),
    (text("LOCK TABLE interactions"), False),
    (insert(VoiceWebhookReceipt), False),
    (update(Interaction).values(state="closed"), False),
])
def test_only_a_select_that_locks_and_modifies_nothing_runs_outside_the_transaction(statement, alone):
    assert reads_only(statement) is alone


def test_a_menu_step_sends_its_read_and_its_one_write_without_begin_or_commit(phone, db_session, sent):
    webhook(db_session, sent, phone.dial)
    assert [verb for verb, _ in sent if verb != "SELECT"] == ["WITH"]  # the new call's rows and its receipt
    assert all(status == IDLE for _, status in sent)
    reply = webhook(db_session, sent, lambda: phone.press("1"))
    assert reply.status == 200 and "For the status of an order, press 1" in reply.said[-1]
    assert sent == [("SELECT", IDLE), ("WITH", IDLE)]
    interaction = db_session.scalar(select(Interaction).where(Interaction.external_ref == phone.call_sid))
    assert interaction.language == "en" and interaction.attributes["ivr"]["seq"] == 2
    receipts = db_session.scalars(select(VoiceWebhookReceipt.event).where(
        VoiceWebhookReceipt.call_sid == phone.call_sid).order_by(VoiceWebhookReceipt.id)).all()
    assert receipts == ["incoming", "gather:1"]


def test_a_waiting_turn_that_announces_opens_no_transaction(phone, db_session, sent):
    phone.dial()
    phone.press("1")
    phone.press("0")  # an agent: queued
    reply = webhook(db_session, sent, phone.follow)
    assert reply.said[:1] == ["You are number 1 in the queue."]
    assert sent and all(status == IDLE for _, status in sent) and {verb for verb, _ in sent} == {"SELECT"}


def test_asking_for_an_agent_reads_alone_and_writes_in_one_transaction(phone, db_session, sent):
    phone.dial()
    phone.press("1")
    webhook(db_session, sent, lambda: phone.press("0"))
    first_write = next(i for i, (verb, _) in enumerate(sent) if verb != "SELECT")
    assert first_write > 0 and all(status == IDLE for _, status in sent[:first_write])
    assert all(status == INTRANS for _, status in sent[first_write:]) and len(sent) - first_write >= 2
    interaction = db_session.scalar(select(Interaction).where(Interaction.external_ref == phone.call_sid))
    assert interaction.state == State.QUEUED  # committed


def test_a_hang_up_is_one_statement_on_its_own(phone, db_session, sent):
    phone.dial()
    webhook(db_session, sent, phone.hang_up)
    assert sent == [("SELECT", IDLE), ("WITH", IDLE)]
    interaction = db_session.scalar(select(Interaction).where(Interaction.external_ref == phone.call_sid))
    assert interaction.state == State.ABANDONED


def _answer(app, handler, call_sid="CA" + "a" * 32):
    with app.test_request_context("/voice/test", method="POST", data={"CallSid": call_sid}):
        return voice.answer("test", handler)


def test_writes_before_a_refusal_are_rolled_back_together(app, db_session, sent):
    def handler(session):
        session.execute(insert(VoiceWebhookReceipt), {"call_sid": "CA" + "b" * 32, "event": "x", "status_code": 200,
                                                       "body": "", "created_at": OPEN_AT})
        session.execute(insert(VoiceWebhookReceipt), {"call_sid": "CA" + "c" * 32, "event": "x", "status_code": 200,
                                                       "body": "", "created_at": OPEN_AT})
        raise CallStateError("refused after writing")

    db_session.commit()
    response = _answer(app, handler)
    assert response.status_code == 409
    assert [status for _, status in sent[:2]] == [INTRANS, INTRANS]
    assert db_session.scalar(select(func.count()).select_from(VoiceWebhookReceipt)) == 0


def test_a_locking_read_opens_the_transaction(app, db_session, sent):
    def handler(session):
        session.execute(select(VoiceWebhookReceipt.id).with_for_update())
        return None, voice.VoiceResponse()

    db_session.commit()
    assert _answer(app, handler).status_code == 200
    assert sent[0] == ("SELECT", INTRANS)


def test_text_sql_other_than_a_select_opens_the_transaction(app, db_session, sent):
    def handler(session):
        session.execute(text("SELECT 1"))
        session.execute(text("SET LOCAL statement_timeout = 5000"))  # SQL text may do anything: taken for a write
        return None, voice.VoiceResponse()

    db_session.commit()
    assert _answer(app, handler).status_code == 200
    assert sent[:2] == [("SELECT", IDLE), ("SET", INTRANS)]


def test_a_second_write_inside_single_write_is_refused(app, db_session, postgresql):
    row = {"call_sid": "CA" + "d" * 32, "event": "x", "status_code": 200, "body": "", "created_at": OPEN_AT}
    db_session.commit()
    session = db.session()
    assert begin_lazily(session)
    with pytest.raises(SingleWriteError), single_write(session):
        session.execute(insert(VoiceWebhookReceipt), row)
        session.execute(insert(VoiceWebhookReceipt), {**row, "event": "y"})
    session.rollback()
    assert db_session.scalars(select(VoiceWebhookReceipt.event)).all() == ["x"]  # the first ran on its own


def test_begin_lazily_leaves_an_open_transaction_alone_and_single_write_then_changes_nothing(app, db_session):
    db_session.scalar(select(func.count()).select_from(Interaction))  # a transaction is open
    assert not begin_lazily(db_session())
    with single_write(db_session()):
        db_session.execute(insert(VoiceWebhookReceipt), {"call_sid": "CA" + "e" * 32, "event": "x",
                                                         "status_code": 200, "body": "", "created_at": OPEN_AT})
    db_session.rollback()
    assert db_session.scalar(select(func.count()).select_from(VoiceWebhookReceipt)) == 0


def test_other_databases_keep_the_ordinary_transaction():
    session = Session(create_engine("sqlite://"))
    assert not begin_lazily(session)
    assert not session.in_transaction()


def test_connections_go_back_to_the_pool_out_of_autocommit(phone, db_session):
    returned: list[bool] = []

    def checked_in(dbapi_connection, record):
        returned.append(dbapi_connection.autocommit)

    event.listen(db.engine, "checkin", checked_in)
    try:
        for send in (phone.dial, lambda: phone.press("1"), lambda: phone.press("0"), phone.hang_up):
            db_session.commit()
            db_session.close()  # the test's own connection goes back too: the webhook checks one out
            assert send().status == 200
        db_session.close()
    finally:
        event.remove(db.engine, "checkin", checked_in)
    assert returned and not any(returned)


def test_a_read_alone_runs_outside_any_transaction_and_leaves_no_autocommit_behind(app, postgresql):
    returned: list[bool] = []

    def checked_in(dbapi_connection, record):
        returned.append(dbapi_connection.autocommit)

    event.listen(db.engine, "checkin", checked_in)
    try:
        with reading_alone(db.engine) as connection:
            assert connection.scalar(select(func.count()).select_from(Interaction)) == 0
            assert connection.connection.dbapi_connection.info.transaction_status == IDLE
    finally:
        event.remove(db.engine, "checkin", checked_in)
    assert returned == [False]


def test_an_engine_not_installed_reads_alone_through_the_isolation_option(app, postgresql):
    engine = create_engine(db.engine.url)  # no checkin hook: SQLAlchemy's own option sets and resets autocommit
    try:
        with reading_alone(engine) as connection:
            assert connection.get_execution_options()["isolation_level"] == "AUTOCOMMIT"
            connection.scalar(select(func.count()).select_from(Interaction))
            assert connection.connection.dbapi_connection.info.transaction_status == IDLE
    finally:
        engine.dispose()
