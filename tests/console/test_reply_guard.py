"""Replies that would talk over the customer, the customer's email arriving live, and canned replies --
over the real /agent socket, on the real chat and email channels, with contacts the real router offered."""
from __future__ import annotations

import queue

import pytest
from sqlalchemy import select

from app.channels import chat
from app.channels.chat_models import ChatMessage, ChatSession
from app.channels.email import templates
from app.channels.email.models import EmailMessage, EmailTemplate
from tests.console.test_workspace import fresh, open_desk, take_offer  # noqa: F401  (fixture)
from tests.email.conftest import build_mail, desk, ingest, jobs, outbox  # noqa: F401  (fixtures)
from tests.factories import make_customer, make_staff


def _customer_says(session, config, found, client_id: str, text: str) -> dict:
    message, _created = chat.post_customer_message(session, config.chat, fresh(session, ChatSession, found.id),
                                                   client_id=client_id, text=text)
    return message


def _agent_bodies(session, chat_id: int) -> list[str]:
    session.expire_all()
    return list(session.scalars(select(ChatMessage.body).where(ChatMessage.chat_id == chat_id,
                                                               ChatMessage.sender == "agent")
                                .order_by(ChatMessage.id)))


# ---------------------------------------------------------------------------------------------- chat
def test_a_chat_reply_over_a_newer_customer_message_is_held_until_seen(app, db_session, agent_client, routed,
                                                                        open_desk):  # noqa: F811
    agent = make_staff(db_session)
    db_session.commit()
    config = app.extensions["desk.config"]
    found, _token = chat.start_chat(db_session, config, name="Li Na", email="li@example.com", topic="general")
    iid = found.interaction_id
    client = agent_client(agent)
    client.next("snapshot")
    take_offer(client, routed)
    first = _customer_says(db_session, config, found, "customer-0001", "Where is my parcel?")
    client.next("chat.message")

    # the agent starts typing having seen `first`; meanwhile the customer writes twice more
    second = _customer_says(db_session, config, found, "customer-0002", "Actually, it was two parcels.")
    third = _customer_says(db_session, config, found, "customer-0003", "Order 1234 and 1235.")
    draft = {"interaction_id": iid, "client_id": "agent-msg-0001", "text": "Your parcel ships today.",
             "seen_upto": first["id"]}
    held = client.call("chat_send", draft)
    assert held["ok"] is False and held["error"] == "newer_messages"
    assert [(m["id"], m["body"]) for m in held["messages"]] == [(second["id"], "Actually, it was two parcels."),
                                                                 (third["id"], "Order 1234 and 1235.")]
    assert _agent_bodies(db_session, found.id) == []  # nothing stored, nothing told to the customer

    seen_some = client.call("chat_send", {**draft, "seen_upto": second["id"]})
    assert seen_some["error"] == "newer_messages" and [m["id"] for m in seen_some["messages"]] == [third["id"]]

    sent = client.call("chat_send", {**draft, "seen_upto": third["id"]})  # "send anyway", having seen them
    assert sent["ok"] and sent["message"]["body"] == "Your parcel ships today."
    # a resend after a network drop is the stored message, even with the old mark
    again = client.call("chat_send", {**draft, "seen_upto": first["id"]})
    assert again["ok"] and again["message"]["id"] == sent["message"]["id"]
    assert _agent_bodies(db_session, found.id) == ["Your parcel ships today."]

    # the agent's own and the desk's messages never hold a reply; nothing newer: it goes
    follow = client.call("chat_send", {"interaction_id": iid, "client_id": "agent-msg-0002",
                                       "text": "Both parcels.", "seen_upto": third["id"]})
    assert follow["ok"]


def test_a_chat_reply_before_the_customer_wrote_anything(app, db_session, agent_client, routed,
                                                         open_desk):  # noqa: F811
    agent = make_staff(db_session)
    db_session.commit()
    config = app.extensions["desk.config"]
    found, _token = chat.start_chat(db_session, config, name="Li Na", email="li@example.com", topic="general")
    client = agent_client(agent)
    client.next("snapshot")
    take_offer(client, routed)
    greeting = {"interaction_id": found.interaction_id, "client_id": "agent-msg-0001", "text": "Hello!",
                "seen_upto": 0}
    assert client.call("chat_send", greeting)["ok"]
    _customer_says(db_session, config, found, "customer-0001", "Hi")
    held = client.call("chat_send", {**greeting, "client_id": "agent-msg-0002", "text": "How can I help?"})
    assert held["error"] == "newer_messages" and [m["body"] for m in held["messages"]] == ["Hi"]
    assert client.call("chat_send", {**greeting, "seen_upto": -1})["error"] == "bad_payload"


def test_the_chat_service_holds_only_when_asked(app, db_session, open_hours, no_timers):
    """``seen_upto=None`` (not a person typing) skips the guard; a stale mark from the console holds."""
    from tests.chat.conftest import connect_agent

    agent = make_staff(db_session)
    db_session.commit()
    config = app.extensions["desk.config"]
    found, _token = chat.start_chat(db_session, config, name="Li Na", email="li@example.com", topic="general")
    connect_agent(db_session, found.interaction, agent)
    said = _customer_says(db_session, config, found, "customer-0001", "Hello?")
    with pytest.raises(chat.NewerCustomerMessages) as held:
        chat.post_agent_message(db_session, config.chat, found.interaction_id, agent.id, client_id="agent-00000001",
                                text="Hi", seen_upto=said["id"] - 1)
    assert held.value.code == "newer_messages" and [m["id"] for m in held.value.messages] == [said["id"]]
    stored = chat.post_agent_message(db_session, config.chat, found.interaction_id, agent.id,
                                     client_id="agent-00000001", text="Hi")
    assert stored["body"] == "Hi"


@pytest.fixture()
def open_hours(monkeypatch):
    monkeypatch.setattr(chat, "queue_is_open", lambda desk_config, queue, at: True)


@pytest.fixture()
def no_timers(app):
    app.config["CHAT_TIMERS"] = False
    yield
    app.config.pop("CHAT_TIMERS", None)


# ---------------------------------------------------------------------------------------------- email
def _held_email_case(db_session, agent_client, routed, ingest, agent, **mail):  # noqa: F811
    first = ingest(build_mail(subject="Help please", body="My order has not arrived.", **mail))
    client = agent_client(agent)
    client.next("snapshot")
    assert take_offer(client, routed)["channel"] == "email"
    view = client.call("email_thread", {"interaction_id": first.interaction_id})["email"]
    ack = db_session.scalar(select(EmailMessage).where(EmailMessage.interaction_id == first.interaction_id,
                                                       EmailMessage.kind == "ack"))
    return first.interaction_id, client, view, ack


def test_a_customer_email_on_an_open_case_reaches_its_agent_live(  # noqa: F811
        app, db_session, agent_client, routed, desk, ingest, jobs, outbox):  # noqa: F811
    amy, bob = make_staff(db_session, name="Agent Amy"), make_staff(db_session, name="Agent Bob")
    db_session.commit()
    iid, client, view, ack = _held_email_case(db_session, agent_client, routed, ingest, amy)
    bystander = agent_client(bob)
    bystander.next("snapshot")
    client.drain()

    ingest(build_mail(subject="Re: Help please", in_reply_to=ack.message_id, body="It was the wrong colour too."))
    live = client.next("email.message")
    stored = db_session.scalar(select(EmailMessage).where(EmailMessage.interaction_id == iid,
                                                          EmailMessage.direction == "in")
                               .order_by(EmailMessage.id.desc()))
    assert live["interaction_id"] == iid and live["agent_id"] == amy.id
    assert live["message"]["id"] == stored.id and live["message"]["kind"] == "customer"
    assert live["message"]["text"].strip() == "It was the wrong colour too."
    assert all(name != "email.message" for name, _ in bystander.drain())

    # the composer's guard counts it: a reply written before it arrived is held
    held = client.call("email_send", {"interaction_id": iid, "body": "It ships today.",
                                      "seen_upto": view["latest_customer_message_id"]})
    assert held["error"] == "newer_messages" and [m["id"] for m in held["messages"]] == [stored.id]
    sent = client.call("email_send", {"interaction_id": iid, "body": "It ships today, in blue.",
                                      "seen_upto": stored.id})
    assert sent["ok"]


def test_a_duplicate_or_a_new_case_announces_nothing(  # noqa: F811
        app, db_session, agent_client, routed, desk, ingest, jobs, outbox):  # noqa: F811
    amy = make_staff(db_session, name="Agent Amy")
    db_session.commit()
    iid, client, _view, ack = _held_email_case(db_session, agent_client, routed, ingest, amy)
    reply = build_mail(subject="Re: Help please", in_reply_to=ack.message_id, body="One more thing.")
    ingest(reply)
    client.next("email.message")
    assert ingest(reply).status == "duplicate"
    ingest(build_mail(sender="carol@customer.test", subject="Another question", body="Hello?"))
    with pytest.raises(queue.Empty):
        client.next("email.message", timeout=1.0)


# ---------------------------------------------------------------------------------------------- canned replies
def test_a_canned_reply_is_rendered_for_the_case_in_the_customers_language(  # noqa: F811
        app, db_session, agent_client, routed, desk, ingest, jobs, outbox):  # noqa: F811
    amy = make_staff(db_session, name="Agent Amy")
    make_customer(db_session, name="王小红", email="wang@customer.test", language="zh")
    db_session.commit()
    iid, client, _view, _ack = _held_email_case(db_session, agent_client, routed, ingest, amy,
                                                sender="wang@customer.test")
    got = client.call("reply_template", {"interaction_id": iid, "key": "canned_delivery_delay"})
    assert got["ok"] and got["template"]["language"] == "zh"
    assert got["template"]["body"].startswith("感谢您的耐心等待，王小红。")
    assert f"C-{iid}" in got["template"]["body"]

    # an admin's edit is what agents get; a stored template that breaks falls back to the built-in text
    templates.save_template(db_session, "canned_refund", "zh", "退款", "{{ customer.name }}，退款已办理（{{ case.tag }}）。",
                            staff_id=None)
    db_session.commit()
    edited = client.call("reply_template", {"interaction_id": iid, "key": "canned_refund"})["template"]
    assert edited["body"] == f"王小红，退款已办理（[#C-{iid}]）。"
    row = db_session.scalar(select(EmailTemplate).where(EmailTemplate.key == "canned_refund"))
    row.body = "{{ ''.__class__.__mro__[1].__subclasses__() }}"  # written past the admin page's check
    db_session.commit()
    templates._cache.clear()
    fallback = client.call("reply_template", {"interaction_id": iid, "key": "canned_refund"})["template"]
    assert fallback["body"].startswith("您的退款已获批准") and "subclasses" not in fallback["body"]


def test_canned_replies_in_chat_and_refusals(app, db_session, agent_client, routed, open_desk):  # noqa: F811
    amy, bob = make_staff(db_session), make_staff(db_session)
    db_session.commit()
    config = app.extensions["desk.config"]
    hostile = "Li {{ 7*7 }}{% raw %}<script>alert(1)</script>"  # a name is data, never template source
    found, _token = chat.start_chat(db_session, config, name=hostile, email="li@example.com", topic="general")
    iid = found.interaction_id
    client = agent_client(amy)
    client.next("snapshot")
    take_offer(client, routed)
    got = client.call("reply_template", {"interaction_id": iid, "key": "canned_delivery_delay"})["template"]
    assert got["language"] == "en" and got["body"].startswith(f"Thank you for your patience, {hostile}.")

    assert client.call("reply_template", {"interaction_id": iid, "key": "reply"})["error"] == "unknown_template"
    assert client.call("reply_template", {"interaction_id": iid, "key": "../etc"})["error"] == "unknown_template"
    assert client.call("reply_template", {"interaction_id": iid})["error"] == "bad_payload"
    other = agent_client(bob)
    other.next("snapshot")
    assert other.call("reply_template", {"interaction_id": iid, "key": "canned_refund"})["error"] == "not_your_work"
