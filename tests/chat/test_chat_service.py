"""The chat service: persisted once per client id, read marks, ends that never lose a message."""
from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings, strategies as st
from sqlalchemy import func, select

from app import realtime
from app.channels import chat
from app.channels.chat_models import ChatMessage
from app.db import utcnow
from app.interactions.models import Interaction
from app.interactions.states import State
from app.portal.models import CaseMessage, PortalEmail
from tests.chat.conftest import connect_agent
from tests.factories import make_customer, make_staff
from tests.portal.helpers import emails_to, make_account

pytestmark = pytest.mark.usefixtures("fallback_routing", "no_timers")


@pytest.fixture()
def events():
    seen: list[tuple[str, dict]] = []
    listener = lambda name, payload: seen.append((name, payload))  # noqa: E731
    realtime.subscribe(listener)
    yield seen
    realtime.unsubscribe(listener)


def _start(app, db_session, **kw):
    args = {"name": "Ann", "email": "ann@example.com", "topic": "general", "language": "en"}
    args.update(kw)
    return chat.start_chat(db_session, app.extensions["desk.config"], **args)


def test_start_identifies_and_queues(app, db_session, open_hours, events):
    known = make_customer(db_session, email="ann@example.com", tier="vip")
    db_session.commit()
    started, token = _start(app, db_session)
    interaction = started.interaction
    assert interaction.channel == "chat" and interaction.state == State.QUEUED and interaction.queue == "general"
    assert interaction.customer_id == known.id and interaction.attributes["identification"]["status"] == "matched"
    assert chat.resume_chat(db_session, token).id == started.id
    assert started.token_hash != token and len(token) > 30
    status = chat.status(db_session, started)
    assert status["position"] == 1 and status["state"] == "queued" and status["agent_name"] is None
    assert [m["sender"] for m in chat.history(db_session, started)] == ["system"]
    assert tuple({n for n, _ in events if n.startswith("chat.")}) == ("chat.message", )


def test_signed_in_customer_is_identified_by_account(app, db_session, open_hours):
    account = make_account(db_session, email="acc@example.com", name="Account Holder")
    db_session.commit()
    started, _ = _start(app, db_session, name="", email="", account_id=account.id)
    assert started.customer_id == account.customer_id and started.visitor_email == "acc@example.com"
    assert started.visitor_name == "Account Holder"
    assert chat.open_chat_of_account(db_session, account.id).id == started.id


@pytest.mark.parametrize("kw,code", [({"name": ""}, "bad_name"), ({"email": "nope"}, "bad_email"),
                                     ({"topic": "astrology"}, "unknown_topic")])
def test_start_validation(app, db_session, kw, code):
    with pytest.raises(chat.MessageInvalid) as err:
        _start(app, db_session, **kw)
    assert err.value.code == code


def test_queue_position_counts_earlier_chats(app, db_session, open_hours):
    first, _ = _start(app, db_session, email="a1@example.com")
    second, _ = _start(app, db_session, email="a2@example.com")
    assert chat.status(db_session, first)["position"] == 1
    assert chat.status(db_session, second)["position"] == 2


def test_message_is_stored_once_per_client_id(app, db_session, open_hours, events):
    started, _ = _start(app, db_session)
    config = app.extensions["desk.config"].chat
    first, created = chat.post_customer_message(db_session, config, started, client_id="client-0001",
                                                text="Hello <b>there</b>\x00")
    again, created_again = chat.post_customer_message(db_session, config, started, client_id="client-0001",
                                                      text="Hello <b>there</b>")
    assert created and not created_again and first == again
    assert first["body"] == "Hello <b>there</b>"  # stored as typed, never as HTML; renderers escape
    count = db_session.scalar(select(func.count(ChatMessage.id)).where(ChatMessage.sender == "customer"))
    assert count == 1
    assert sum(1 for n, p in events if n == "chat.message" and p["message"]["client_id"] == "client-0001") == 1


def test_a_message_through_the_chat_reference_is_the_same_message(app, db_session, open_hours, events):
    started, _ = _start(app, db_session)
    ref = chat.chat_ref(db_session, started.id)
    assert (ref.id, ref.interaction_id, ref.ended_at, ref.agent_id) == (started.id, started.interaction_id, None,
                                                                       started.agent_id)
    assert chat.chat_ref(db_session, 10**9) is None
    config = app.extensions["desk.config"].chat
    stored, created = chat.post_customer_message(db_session, config, ref, client_id="client-0007", text="Hi")
    again, created_again = chat.post_customer_message(db_session, config, started, client_id="client-0007", text="Hi")
    assert created and not created_again and stored == again
    announced = [p for n, p in events if n == "chat.message"]
    assert announced[-1]["message"] == stored and announced[-1]["interaction_id"] == started.interaction_id


@pytest.mark.parametrize("client_id,text,code", [
    ("short", "hi", "bad_client_id"), ("client-0002", "   ", "empty"), ("client-0003", "x" * 2001, "too_long"),
    ("bad id with spaces", "hi", "bad_client_id"),
])
def test_message_validation(app, db_session, open_hours, client_id, text, code):
    started, _ = _start(app, db_session)
    with pytest.raises(chat.MessageInvalid) as err:
        chat.post_customer_message(db_session, app.extensions["desk.config"].chat, started, client_id=client_id,
                                   text=text)
    assert err.value.code == code


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=300))
def test_clean_text_keeps_printable_text_and_drops_controls(text):
    cleaned = chat.clean_text(text, 1000)
    assert not any(ord(c) < 32 and c not in "\n\t" for c in cleaned)
    assert cleaned == cleaned.strip()


def test_agent_conversation_read_marks_and_typing(app, db_session, open_hours, events):
    started, _ = _start(app, db_session)
    config = app.extensions["desk.config"].chat
    agent, intruder = make_staff(db_session, name="Bo"), make_staff(db_session)
    db_session.commit()
    customer_msg, _ = chat.post_customer_message(db_session, config, started, client_id="c-00000001", text="Hi")
    with pytest.raises(chat.NotYourChat):
        chat.post_agent_message(db_session, config, started.interaction_id, agent.id, client_id="a-1xxxxxxx",
                                text="too early")
    connect_agent(db_session, started.interaction, agent)
    assert chat.status(db_session, started)["agent_name"] == "Bo"
    reply = chat.post_agent_message(db_session, config, started.interaction_id, agent.id, client_id="a-00000001",
                                    text="Hello Ann")
    assert reply["sender"] == "agent"
    with pytest.raises(chat.NotYourChat):
        chat.post_agent_message(db_session, config, started.interaction_id, intruder.id, client_id="a-00000002",
                                text="not mine")
    assert chat.mark_read(db_session, started.interaction_id, reader="agent", upto_id=customer_msg["id"],
                          agent_id=agent.id) == customer_msg["id"]
    assert chat.mark_read(db_session, started.interaction_id, reader="agent", upto_id=1,
                          agent_id=agent.id) == customer_msg["id"]  # marks never move back
    assert chat.mark_read(db_session, started.interaction_id, reader="customer", upto_id=10**9,
                          chat=started) == reply["id"]  # capped at the last message
    with pytest.raises(chat.NotYourChat):
        chat.mark_read(db_session, started.interaction_id + 1, reader="customer", upto_id=1, chat=started)
    chat.typing(started.interaction_id, sender="agent", on=True, agent_id=agent.id)
    reads = [p for n, p in events if n == "chat.read"]
    assert [(r["reader"], r["agent_id"]) for r in reads] == [("agent", agent.id), ("customer", agent.id)]
    assert ("chat.typing", {"interaction_id": started.interaction_id, "sender": "agent", "on": True,
                            "agent_id": agent.id}) in events
    assert [m["body"] for m in chat.chat_history(db_session, started.interaction_id)][-2:] == ["Hi", "Hello Ann"]


def test_transfer_keeps_history_and_end_by_agent(app, db_session, open_hours, events):
    started, _ = _start(app, db_session)
    config = app.extensions["desk.config"].chat
    first, second = make_staff(db_session), make_staff(db_session)
    db_session.commit()
    chat.post_customer_message(db_session, config, started, client_id="c-00000001", text="Billing question")
    connect_agent(db_session, started.interaction, first)
    chat.post_agent_message(db_session, config, started.interaction_id, first.id, client_id="a-00000001",
                            text="Let me transfer you")
    with pytest.raises(chat.MessageInvalid):
        chat.transfer_chat(db_session, started.interaction_id, first.id, queue="nowhere")
    chat.transfer_chat(db_session, started.interaction_id, first.id, queue="billing", note="billing")
    db_session.refresh(started.interaction)
    assert started.interaction.state == State.QUEUED and started.interaction.queue == "billing"
    assert started.interaction.agent_id is None
    connect_agent(db_session, started.interaction, second)
    bodies = [m["body"] for m in chat.chat_history(db_session, started.interaction_id)]
    assert "Billing question" in bodies and "Let me transfer you" in bodies
    chat.end_by_agent(db_session, started.interaction_id, second.id)
    db_session.refresh(started.interaction)
    assert started.interaction.state == State.WRAP_UP and started.ended_at is not None
    with pytest.raises(chat.ChatEnded):
        chat.post_customer_message(db_session, config, started, client_id="c-00000009", text="still there?")
    with pytest.raises(chat.ChatEnded):
        chat.post_agent_message(db_session, config, started.interaction_id, second.id, client_id="a-00000009",
                                text="bye")
    assert [p["reason"] for n, p in events if n == "chat.ended"] == ["agent_ended"]


def test_customer_leaving_while_queued_becomes_email_case(app, db_session, open_hours, events):
    started, _ = _start(app, db_session)
    config = app.extensions["desk.config"].chat
    chat.post_customer_message(db_session, config, started, client_id="c-00000001", text="My order is late")
    chat.post_customer_message(db_session, config, started, client_id="c-00000002", text="Order ORD1")
    case = chat.customer_leaves(db_session, app.extensions["desk.config"], started, base_url="http://desk.test")
    db_session.refresh(started.interaction)
    assert started.interaction.state == State.ABANDONED and started.end_reason == "customer_left"
    assert case.channel == "email" and case.state == State.QUEUED and case.queue == "general"
    assert case.customer_id == started.customer_id and case.attributes["chat_interaction_id"] == started.interaction_id
    body = db_session.scalar(select(CaseMessage.body).where(CaseMessage.interaction_id == case.id))
    assert "My order is late" in body and "Order ORD1" in body
    mail = emails_to(db_session, "ann@example.com", "chat_case")[-1]
    assert f"C-{case.id}" in mail.subject and "My order is late" in mail.body
    # idempotent: leaving again (a second tab, the grace job) does not make a second case
    assert chat.customer_leaves(db_session, app.extensions["desk.config"], started, base_url="x").id == case.id
    assert chat.convert_to_email_case(db_session, app.extensions["desk.config"], started, reason="no_agent",
                                      base_url="x").id == case.id
    assert db_session.scalar(select(func.count(Interaction.id)).where(Interaction.channel == "email")) == 1
    assert chat.status(db_session, started)["case_reference"] == f"C-{case.id}"
    assert [p["case_reference"] for n, p in events if n == "chat.ended"] == [f"C-{case.id}"]


def test_leaving_without_writing_just_ends(app, db_session, open_hours):
    started, _ = _start(app, db_session)
    assert chat.customer_leaves(db_session, app.extensions["desk.config"], started, base_url="x") is None
    assert started.ended_at is not None
    assert db_session.scalar(select(func.count(Interaction.id)).where(Interaction.channel == "email")) == 0


def test_customer_leaving_a_connected_chat_sends_agent_to_wrap_up(app, db_session, open_hours):
    started, _ = _start(app, db_session)
    agent = make_staff(db_session)
    db_session.commit()
    connect_agent(db_session, started.interaction, agent)
    assert chat.customer_leaves(db_session, app.extensions["desk.config"], started, base_url="x") is None
    db_session.refresh(started.interaction)
    assert started.interaction.state == State.WRAP_UP
    assert chat.history(db_session, started)[-1]["sender"] == "system"
    with pytest.raises(chat.ChatEnded):
        chat.convert_to_email_case(db_session, app.extensions["desk.config"], started, reason="no_agent",
                                   base_url="x")


def test_out_of_hours_chat_is_offline_and_sweeps_into_a_case(app, db_session, monkeypatch):
    monkeypatch.setattr(chat, "queue_is_open", lambda desk_config, queue, at: False)
    started, _ = _start(app, db_session)
    assert started.mode == "offline" and started.interaction.state == State.NEW
    assert "closed" in chat.history(db_session, started)[0]["body"]
    chat.post_customer_message(db_session, app.extensions["desk.config"].chat, started, client_id="c-00000001",
                               text="Please call me back")
    desk = app.extensions["desk.config"]
    assert chat.sweep_unanswered(db_session, desk, base_url="x") == []  # not yet
    later = utcnow() + timedelta(seconds=desk.chat.max_wait_s + 1)
    assert chat.sweep_unanswered(db_session, desk, base_url="x", now=later) == [started.interaction_id]
    db_session.refresh(started.interaction)
    assert started.interaction.state == State.CLOSED and started.end_reason == "no_agent"
    assert started.case_interaction_id is not None


def test_no_agent_in_time_job(app, db_session, open_hours):
    from app.channels import chat_socket

    started, _ = _start(app, db_session)
    chat.post_customer_message(db_session, app.extensions["desk.config"].chat, started, client_id="c-00000001",
                               text="Anyone?")
    assert chat_socket.unanswered_job(started.token_hash) is False  # too soon
    started.created_at = utcnow() - timedelta(hours=1)
    db_session.commit()
    assert chat_socket.unanswered_job(started.token_hash) is True
    assert chat_socket.unanswered_job("no-such-chat") is False
    db_session.refresh(started)
    assert started.end_reason == "no_agent" and started.case_interaction_id


def test_transcript_goes_only_to_the_chat_address_as_plain_text(app, db_session, open_hours):
    started, _ = _start(app, db_session)
    chat.post_customer_message(db_session, app.extensions["desk.config"].chat, started, client_id="c-00000001",
                               text="<script>alert(1)</script>")
    chat.send_transcript(db_session, started)
    mail = db_session.scalar(select(PortalEmail).where(PortalEmail.kind == "transcript"))
    assert mail.to_address == "ann@example.com" and "Ann: <script>alert(1)</script>" in mail.body


def test_ambiguous_identity_still_gets_a_case_owner(app, db_session, open_hours):
    make_customer(db_session, email="shared@example.com")
    make_customer(db_session, email="shared@example.com")
    db_session.commit()
    started, _ = _start(app, db_session, email="shared@example.com")
    assert started.customer_id is None
    chat.post_customer_message(db_session, app.extensions["desk.config"].chat, started, client_id="c-00000001",
                               text="hello")
    case = chat.customer_leaves(db_session, app.extensions["desk.config"], started, base_url="x")
    assert case.customer_id is None  # several customers share the address: the agent links the right one
    assert case.attributes["reply_to"] == "shared@example.com"


def test_survey_only_after_a_chat_an_agent_answered(app, db_session, open_hours):
    from app.channels import chat_socket
    from app.interactions.service import transition

    answered, _ = _start(app, db_session, email="answered@example.com")
    silent, _ = _start(app, db_session, email="silent@example.com")
    agent = make_staff(db_session)
    db_session.commit()
    connect_agent(db_session, answered.interaction, agent)
    chat.post_agent_message(db_session, app.extensions["desk.config"].chat, answered.interaction_id, agent.id,
                            client_id="a-00000001", text="Done!")
    chat.end_by_agent(db_session, answered.interaction_id, agent.id)
    transition(db_session, answered.interaction, State.CLOSED, actor="test")
    db_session.commit()  # the realtime listener queues the survey job (inline in tests)
    assert emails_to(db_session, "answered@example.com", "survey")
    connect_agent(db_session, silent.interaction, agent)
    assert chat_socket.survey_job(silent.interaction_id) is False
    assert chat_socket.survey_job(999999) is False


def test_periodic_sweep_job(app, db_session, open_hours):
    from app.channels import chat_socket

    started, _ = _start(app, db_session)
    chat.post_customer_message(db_session, app.extensions["desk.config"].chat, started, client_id="c-00000001",
                               text="hello?")
    assert chat_socket.sweep_chats_job() == []
    started.created_at = utcnow() - timedelta(hours=2)
    db_session.commit()
    assert chat_socket.sweep_chats_job() == [started.interaction_id]


def test_schedule_names_the_chat_by_its_random_key(app, monkeypatch):
    from app.channels import chat_socket

    queued = []
    monkeypatch.setattr("app.jobs.enqueue", lambda func, *args, **kw: queued.append((func, args, kw["delay"])))
    app.config["CHAT_TIMERS"] = True
    chat_socket.schedule(chat_socket.left_job, "abc123", delay_s=120)
    assert queued == [(chat_socket.left_job, ("abc123",), timedelta(seconds=120))]
