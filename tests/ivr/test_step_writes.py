"""An IVR step that only moves the caller through the menu is written outside the ORM's unit of work
(``interactions.service.update_attributes``): on PostgreSQL one statement that UPDATEs with the version
check and INSERTs its facts only if the row was updated; elsewhere the UPDATE, then the INSERT."""
from __future__ import annotations

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from app.channels import voice
from app.channels.telephony import RecordingTelephony
from app.extensions import db
from app.interactions.models import Interaction, InteractionEvent
from app.interactions.service import (WRITTEN_KEY, create_interaction, events_of, record_fact, transition,
                                      update_attributes)
from tests.factories import make_interaction
from tests.ivr.helpers import OPEN_AT
from tests.ivr.phone import Caller
from ivr.models import VoiceWebhookReceipt


@pytest.fixture()
def phone(app, client, monkeypatch):
    monkeypatch.setattr(voice, "utcnow", lambda: OPEN_AT)  # the desk is open: the menu, not voicemail
    monkeypatch.setitem(app.extensions, "desk.telephony", RecordingTelephony())
    return Caller(client)


@pytest.fixture()
def statements(app):
    seen: list[str] = []

    def note(*args):
        seen.append(args[2])

    event.listen(db.engine, "before_cursor_execute", note)
    yield seen
    event.remove(db.engine, "before_cursor_execute", note)


def test_an_unchanged_interaction_is_written_at_once_with_its_facts(db_session):
    call = make_interaction(db_session, external_ref="CA-step", attributes={"from": "+8613800138000"})
    transition(db_session, call, "ivr", actor="test")
    db_session.commit()
    version = call.version
    update_attributes(db_session, call, {"ivr": {"node": "menu"}}, language="zh",
                      facts=[("ivr.menu", {"key": "1"}), ("ivr.retry", {"reason": "silence"})], actor="ivr")
    assert db_session.info[WRITTEN_KEY] is True
    assert not db_session.dirty and not db_session.new  # nothing left for the unit of work
    assert call.attributes == {"from": "+8613800138000", "ivr": {"node": "menu"}} and call.language == "zh"
    assert call.version == version + 1
    db_session.commit()
    db_session.expire_all()
    stored = db_session.get(Interaction, call.id)
    assert stored.attributes["ivr"] == {"node": "menu"} and stored.language == "zh" and stored.version == version + 1
    kinds = [(e.kind, e.from_state, e.to_state, e.actor, e.data) for e in events_of(db_session, call.id)]
    assert kinds[-2:] == [("ivr.menu", "ivr", "ivr", "ivr", {"key": "1"}),
                          ("ivr.retry", "ivr", "ivr", "ivr", {"reason": "silence"})]


def test_later_orm_changes_build_on_the_written_version(db_session):
    call = make_interaction(db_session)
    db_session.commit()
    update_attributes(db_session, call, {"a": 1}, actor="ivr")
    transition(db_session, call, "ivr", actor="test")  # an ORM change after it: no stale-version refusal
    db_session.commit()
    db_session.expire_all()
    stored = db_session.get(Interaction, call.id)
    assert stored.state == "ivr" and stored.attributes == {"a": 1}


def test_a_stale_copy_is_refused_and_writes_nothing(app, db_session):
    call = make_interaction(db_session)
    db_session.commit()
    with Session(db.engine) as other:
        stale = other.get(Interaction, call.id)
        transition(db_session, call, "ivr", actor="router")
        db_session.commit()
        with pytest.raises(StaleDataError):
            update_attributes(other, stale, {"ivr": {"node": "menu"}}, facts=[("ivr.menu", {})], actor="ivr")
        other.rollback()
    db_session.expire_all()
    assert "ivr" not in (db_session.get(Interaction, call.id).attributes or {})
    assert db_session.scalar(select(InteractionEvent).where(InteractionEvent.kind == "ivr.menu")) is None


@pytest.mark.parametrize("pending", ["modified", "new_row"])
def test_pending_orm_changes_keep_the_unit_of_work(db_session, statements, pending):
    call = make_interaction(db_session)
    db_session.commit()
    db_session.refresh(call)  # loaded: reading it below flushes nothing
    if pending == "modified":
        call.subject = "changed first"
    else:
        record_fact(db_session, call, "note", actor="test")
    statements.clear()
    update_attributes(db_session, call, {"ivr": {"node": "menu"}}, language="zh", facts=[("ivr.menu", {})],
                      actor="ivr")
    assert statements == [] and WRITTEN_KEY not in db_session.info  # left to the next flush
    db_session.commit()
    assert call.attributes == {"ivr": {"node": "menu"}} and call.language == "zh"
    assert [e.kind for e in events_of(db_session, call.id)][-1] == "ivr.menu"


def _written_at_once(statement: str, *, with_receipt: bool = True) -> bool:
    """One statement that updates the interaction and, in the same round trip, inserts its event rows
    (and the webhook's receipt)."""
    return (statement.startswith("WITH moved AS") and "UPDATE interactions SET" in statement
            and "INSERT INTO interaction_events" in statement
            and ("INSERT INTO voice_webhook_receipts" in statement) == with_receipt)


def test_a_menu_step_costs_one_statement_for_the_call_and_its_facts(phone, db_session, statements, postgresql):
    phone.dial()
    call = db_session.scalar(select(Interaction).where(Interaction.external_ref == phone.call_sid))
    logged_before = len(events_of(db_session, call.id))
    statements.clear()
    reply = phone.press("1")  # English: the main menu
    assert reply.status == 200
    writes = [s for s in statements if not s.startswith("SELECT")]
    assert len(writes) == 1 and _written_at_once(writes[0])  # the interaction, its facts and the receipt
    db_session.expire_all()
    assert db_session.get(Interaction, call.id).attributes["ivr"]["seq"] == 2
    facts = events_of(db_session, call.id)[logged_before:]
    assert facts and all((e.from_state, e.to_state, e.actor) == ("ivr", "ivr", "ivr") for e in facts)


def test_a_new_call_is_inserted_once_in_the_ivr(phone, db_session, statements, postgresql):
    reply = phone.dial()
    assert reply.status == 200 and reply.verbs == ["Gather"]
    writes = [s for s in statements if not s.startswith("SELECT")]
    assert len(writes) == 1  # the call, its events and the receipt in one statement; no UPDATE of the new row
    assert writes[0].startswith("WITH created AS") and all(f"INSERT INTO {table} " in writes[0] for table in (
        "interactions", "interaction_events", "voice_webhook_receipts"))
    call = db_session.scalar(select(Interaction).where(Interaction.external_ref == phone.call_sid))
    assert call.state == "ivr" and call.attributes["ivr"]["seq"] == 1
    assert (call.direction, call.priority, call.required_skills, call.version) == ("inbound", 0, [], 1)  # defaults
    logged = events_of(db_session, call.id)
    assert [(e.kind, e.from_state, e.to_state, e.actor) for e in logged][:2] == [
        ("created", None, "new", "ivr"), ("transition", "new", "ivr", "ivr")]
    assert logged[0].data == {"channel": "voice"} and logged[1].reason == "call_answered"
    receipt = db_session.scalar(select(VoiceWebhookReceipt).where(VoiceWebhookReceipt.call_sid == phone.call_sid))
    assert receipt.event == "incoming" and receipt.interaction_id == call.id and "<Gather" in receipt.body


def test_a_retried_new_call_replays_the_stored_answer(phone, db_session):
    first = phone.dial()
    again = phone.dial()  # Twilio's retry: the same CallSid
    assert again.status == 200 and again.text == first.text
    assert db_session.scalar(select(func.count()).select_from(Interaction)) == 1


@pytest.mark.parametrize("beside", ["nothing", "a changed row", "a second new call", "a fact of another call"])
def test_only_a_new_call_alone_is_inserted_at_once(db_session, beside):
    from app.interactions.service import insert_new_at_once, reserve_interaction_id

    earlier = make_interaction(db_session)
    db_session.commit()
    if beside == "nothing":
        assert insert_new_at_once(db_session) is False  # nothing new to write
        return
    first_id, second_id = reserve_interaction_id(db_session), reserve_interaction_id(db_session)
    create_interaction(db_session, channel="voice", actor="test", external_ref="CA-new", interaction_id=first_id)
    if beside == "a changed row":
        earlier.subject = "changed"
    elif beside == "a second new call":
        create_interaction(db_session, channel="voice", actor="test", external_ref="CA-other", interaction_id=second_id)
    else:
        record_fact(db_session, earlier, "note", actor="test")
    assert insert_new_at_once(db_session) is False  # left to the unit of work
    db_session.commit()
    assert db_session.scalar(select(Interaction).where(Interaction.external_ref == "CA-new")) is not None


def test_asking_for_an_agent_from_the_menu_looks_no_queue_entry_up(phone, db_session, statements):
    phone.dial()
    phone.press("1")  # English: the main menu
    statements.clear()
    reply = phone.press("0")  # an agent: the call never waited, so it has no queue entry to reuse
    assert reply.status == 200 and reply.redirect_url.endswith("/voice/wait?t=1")
    assert not [s for s in statements if s.startswith("SELECT") and "FROM routing_queue_entries" in s]
    assert [s.split()[2] for s in statements if s.startswith("INSERT")][:1] == ["routing_queue_entries"]
    call = db_session.scalar(select(Interaction).where(Interaction.external_ref == phone.call_sid))
    assert call.state == "queued" and call.routing_age_origin is not None


def test_a_known_caller_queued_at_once_is_inserted_once(phone, db_session, statements, postgresql):
    from tests.factories import make_customer

    make_customer(db_session, tier="vip", phone="+8613800138000", language="zh")
    db_session.commit()
    statements.clear()
    reply = phone.dial()
    assert reply.status == 200
    assert not [s for s in statements if s.startswith("UPDATE interactions")]
    call = db_session.scalar(select(Interaction).where(Interaction.external_ref == phone.call_sid))
    assert call.state == "queued" and call.language == "zh"


def test_no_id_is_reserved_without_a_sequence():
    from sqlalchemy import create_engine

    from app.interactions.service import reserve_interaction_id

    with Session(create_engine("sqlite://")) as session:
        assert reserve_interaction_id(session) is None


def test_a_waiting_turn_reads_four_columns_and_writes_nothing(phone, db_session, statements):
    phone.dial()
    phone.press("1")
    phone.press("0")  # an agent: queued, the wait loop begins
    phone.follow()  # the first turn announces the position
    statements.clear()
    reply = phone.post(phone.last.redirect_url)  # a quiet turn
    assert reply.status == 200 and reply.verbs == ["Gather", "Redirect"]
    call_reads = [s for s in statements if "FROM interactions" in s]
    assert len(statements) == 1 and len(call_reads) == 1
    assert call_reads[0].startswith("SELECT interactions.id, interactions.state, interactions.agent_id, "
                                    "interactions.language \\nFROM".replace("\\n", "\n"))


def test_a_call_back_in_the_queue_between_the_two_reads_still_waits(app, db_session, monkeypatch):
    from ivr import calls

    call = make_interaction(db_session, external_ref="CA" + "e" * 32, language="zh")
    db_session.commit()  # state new: the first read sends the turn the longer way
    requeued = Interaction(id=call.id, channel="voice", state="queued", language="zh")
    monkeypatch.setattr(calls, "find_call", lambda session, call_sid: requeued)
    desk = calls.Desk.from_config(app.extensions["desk.config"])
    announced = int(OPEN_AT.timestamp()) - 5  # a quiet turn: the first read is the four columns
    interaction, response = calls.wait_turn(db_session, desk, call_sid="CA" + "e" * 32, turn=2,
                                            urls=calls.VoiceUrls("http://desk.test"), now=OPEN_AT, announced=announced)
    assert interaction is requeued
    assert f"/voice/wait?t=3&amp;a={announced}" in str(response) and "<Say" not in str(response)


def test_a_turn_for_a_call_that_left_the_queue_is_refused(app, db_session):
    from ivr import calls

    make_interaction(db_session, external_ref="CA" + "d" * 32)
    db_session.commit()
    desk = calls.Desk.from_config(app.extensions["desk.config"])
    with pytest.raises(calls.CallStateError):
        calls.wait_turn(db_session, desk, call_sid="CA" + "d" * 32, turn=1, urls=calls.VoiceUrls("http://desk.test"),
                        now=OPEN_AT)
    for announced in (None, int(OPEN_AT.timestamp()) - 5):  # an announcing turn, a quiet one
        with pytest.raises(calls.UnknownCall):
            calls.wait_turn(db_session, desk, call_sid="CA" + "c" * 32, turn=1,
                            urls=calls.VoiceUrls("http://desk.test"), now=OPEN_AT, announced=announced)


def test_a_move_written_at_once_logs_announces_and_merges_the_attributes(db_session):
    from app import realtime
    from app.interactions.service import transition_now

    call = make_interaction(db_session, attributes={"from": "+8613800138000"})
    transition(db_session, call, "ivr", actor="test")
    transition(db_session, call, "queued", actor="test")
    db_session.commit()
    db_session.refresh(call)
    version, origin = call.version, call.routing_age_origin
    announced: list = []
    realtime.subscribe(listener := lambda name, payload: announced.append((name, payload)))
    try:
        transition_now(db_session, call, "abandoned", actor="ivr", reason="caller_hung_up", data={"wait_s": 3},
                       attributes={"call_status": "completed"})
        assert not db_session.dirty and not db_session.new and db_session.info[WRITTEN_KEY] is True
        assert call.state == "abandoned" and call.version == version + 1 and call.routing_age_origin == origin
        db_session.commit()
    finally:
        realtime.unsubscribe(listener)
    db_session.expire_all()
    stored = db_session.get(Interaction, call.id)
    assert stored.state == "abandoned" and stored.attributes == {"from": "+8613800138000", "call_status": "completed"}
    last = events_of(db_session, call.id)[-1]
    assert (last.kind, last.from_state, last.to_state, last.reason, last.data) == (
        "transition", "queued", "abandoned", "caller_hung_up", {"wait_s": 3})
    assert [(n, p["from"], p["to"]) for n, p in announced] == [("interaction.state", "queued", "abandoned")]


def test_a_move_to_the_queue_written_at_once_starts_the_routing_age(db_session):
    from app.interactions.service import transition_now

    call = make_interaction(db_session)
    transition(db_session, call, "ivr", actor="test")
    db_session.commit()
    db_session.refresh(call)
    transition_now(db_session, call, "queued", actor="ivr", at=OPEN_AT)
    db_session.commit()
    db_session.expire_all()
    assert db_session.get(Interaction, call.id).routing_age_origin == OPEN_AT


def test_a_forbidden_or_stale_move_written_at_once_writes_nothing(app, db_session):
    from app.interactions.service import InvalidTransition, transition_now

    call = make_interaction(db_session)
    db_session.commit()
    db_session.refresh(call)
    with pytest.raises(InvalidTransition):
        transition_now(db_session, call, "connected", actor="ivr")
    with Session(db.engine) as other:
        stale = other.get(Interaction, call.id)
        transition(db_session, call, "ivr", actor="router")
        db_session.commit()
        with pytest.raises(StaleDataError):
            transition_now(other, stale, "abandoned", actor="ivr")
        other.rollback()
    db_session.expire_all()
    assert db_session.get(Interaction, call.id).state == "ivr"
    assert [e.to_state for e in events_of(db_session, call.id)] == ["new", "ivr"]


def test_a_move_with_pending_changes_goes_through_the_unit_of_work(db_session, statements):
    from app.interactions.service import transition_now

    call = make_interaction(db_session)
    db_session.commit()
    db_session.refresh(call)
    call.subject = "changed first"
    statements.clear()
    transition_now(db_session, call, "ivr", actor="ivr", attributes={"a": 1})
    assert statements == [] and WRITTEN_KEY not in db_session.info
    db_session.commit()
    assert call.state == "ivr" and call.attributes == {"a": 1} and call.subject == "changed first"


def test_hanging_up_in_the_queue_is_one_update_and_one_insert(phone, db_session, statements, postgresql):
    phone.dial()
    phone.press("1")
    phone.press("0")  # queued
    statements.clear()
    reply = phone.post("/voice/status", {"CallStatus": "completed", "CallDuration": "30"})
    assert reply.status == 200
    writes = [s for s in statements if not s.startswith("SELECT")]
    assert len(writes) == 1 and _written_at_once(writes[0])  # the move, its event row and the receipt
    call = db_session.scalar(select(Interaction).where(Interaction.external_ref == phone.call_sid))
    assert call.state == "abandoned" and call.attributes["call_status"] == "completed"
    assert call.attributes["call_duration_s"] == 30


def test_without_postgresql_the_writes_at_once_are_an_update_then_an_insert():
    from sqlalchemy import create_engine

    from app.interactions.service import transition_now

    engine = create_engine("sqlite://")
    db.metadata.create_all(engine)
    sent: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: sent.append(args[2]))
    with Session(engine) as session:
        call = make_interaction(session, external_ref="CA-sqlite")
        transition(session, call, "ivr", actor="test")
        session.commit()
        session.refresh(call)
        sent.clear()
        update_attributes(session, call, {"ivr": {"node": "menu"}}, language="zh",
                          facts=[("ivr.menu", {"key": "1"}), ("ivr.retry", {})], actor="ivr")
        transition_now(session, call, "abandoned", actor="ivr", reason="caller_hung_up")
        assert [s.split()[0] for s in sent] == ["UPDATE", "INSERT", "UPDATE", "INSERT"]
        session.commit()
        session.expire_all()
        stored = session.get(Interaction, call.id)
        assert stored.state == "abandoned" and stored.attributes == {"ivr": {"node": "menu"}}
        assert [(e.kind, e.to_state) for e in events_of(session, call.id)][-3:] == [
            ("ivr.menu", "ivr"), ("ivr.retry", "ivr"), ("transition", "abandoned")]
        with Session(engine) as other:
            stale = other.get(Interaction, call.id)
            session.execute(Interaction.__table__.update().values(version=Interaction.version + 1))
            session.commit()
            with pytest.raises(StaleDataError):
                update_attributes(other, stale, {"b": 2}, facts=[("ivr.menu", {})], actor="ivr")
            other.rollback()
        assert [e.kind for e in events_of(session, call.id)].count("ivr.menu") == 1
        from app.interactions.service import insert_new_at_once

        create_interaction(session, channel="voice", actor="test", external_ref="CA-sqlite-2", interaction_id=99)
        assert insert_new_at_once(session) is False  # the unit of work writes it
        session.commit()
        assert session.get(Interaction, 99).external_ref == "CA-sqlite-2"


# --- a write at once kept for the caller's own row (DEFER_KEY) ----------------------------------------------

@pytest.fixture()
def deferring(db_session):
    from app.interactions.service import DEFER_KEY

    db_session.info[DEFER_KEY] = True
    yield db_session
    db_session.info.pop(DEFER_KEY, None)


def _menu_call(session) -> Interaction:
    call = make_interaction(session, external_ref="CA" + "f" * 32)
    transition(session, call, "ivr", actor="test")
    session.commit()
    session.refresh(call)
    return call


def test_a_kept_write_rides_with_the_callers_row_in_one_statement(deferring, statements, postgresql):
    from app.interactions.service import write_pending
    from ivr.models import VoiceWebhookReceipt

    call = _menu_call(deferring)
    statements.clear()
    update_attributes(deferring, call, {"ivr": {"node": "menu"}}, facts=[("ivr.menu", {"key": "1"})], actor="ivr")
    assert statements == [] and call.attributes == {"ivr": {"node": "menu"}}  # kept; the object shows it
    receipt = {"call_sid": call.external_ref, "event": "gather:1", "status_code": 200, "body": "<Response/>",
               "created_at": OPEN_AT, "interaction_id": None}
    assert write_pending(deferring, ride=(VoiceWebhookReceipt.__table__, receipt)) is True
    assert len(statements) == 1 and _written_at_once(statements[0])
    assert write_pending(deferring) is False  # nothing kept any more
    deferring.commit()
    stored = deferring.scalar(select(VoiceWebhookReceipt).where(VoiceWebhookReceipt.call_sid == call.external_ref))
    assert stored.interaction_id == call.id and stored.body == "<Response/>"
    assert [e.kind for e in events_of(deferring, call.id)][-1] == "ivr.menu"


def test_a_kept_write_goes_before_anything_else_the_session_sends(deferring, statements, postgresql):
    from app.interactions.service import transition_now

    call = _menu_call(deferring)
    statements.clear()
    update_attributes(deferring, call, {"a": 1}, facts=[("ivr.menu", {})], actor="ivr")
    transition_now(deferring, call, "abandoned", actor="ivr")  # the first is sent before this one is kept
    assert len(statements) == 1 and _written_at_once(statements[0], with_receipt=False)
    # a query sends the kept write first: the transaction reads its own writes, events in order
    assert [e.to_state for e in events_of(deferring, call.id)][-2:] == ["ivr", "abandoned"]
    assert deferring.scalar(select(Interaction.state).where(Interaction.id == call.id)) == "abandoned"


@pytest.mark.parametrize("then", ["flush", "commit"])
def test_a_kept_write_nobody_collects_is_sent_by_the_flush_or_the_commit(deferring, then):
    call = _menu_call(deferring)
    update_attributes(deferring, call, {"a": 1}, actor="ivr")
    if then == "flush":
        call.subject = "changed after"
        deferring.flush()  # the kept write first, then the unit of work (at the version it wrote)
    deferring.commit()
    deferring.expire_all()
    stored = deferring.get(Interaction, call.id)
    assert stored.attributes == {"a": 1} and stored.subject == ("changed after" if then == "flush" else None)


def test_a_kept_write_is_dropped_by_a_rollback(deferring):
    from app.interactions.service import write_pending

    call = _menu_call(deferring)
    update_attributes(deferring, call, {"a": 1}, facts=[("ivr.menu", {})], actor="ivr")
    deferring.rollback()
    assert write_pending(deferring) is False
    assert "a" not in (deferring.get(Interaction, call.id).attributes or {})


def test_a_stale_kept_write_is_refused_when_sent_and_writes_nothing(app, deferring, postgresql):
    from app.interactions.service import write_pending
    from ivr.models import VoiceWebhookReceipt

    call = _menu_call(deferring)
    with Session(db.engine) as other:
        other.execute(Interaction.__table__.update().where(Interaction.id == call.id).values(
            version=Interaction.version + 1))
        other.commit()
    update_attributes(deferring, call, {"a": 1}, facts=[("ivr.menu", {})], actor="ivr")
    receipt = {"call_sid": call.external_ref, "event": "gather:9", "status_code": 200, "body": "<Response/>",
               "created_at": OPEN_AT, "interaction_id": None}
    with pytest.raises(StaleDataError):
        write_pending(deferring, ride=(VoiceWebhookReceipt.__table__, receipt))
    deferring.rollback()
    assert deferring.scalar(select(VoiceWebhookReceipt).where(VoiceWebhookReceipt.event == "gather:9")) is None
    assert "ivr.menu" not in [e.kind for e in events_of(deferring, call.id)]
