"""The console's chat panel and email composer over the real socket, on the real chat and email
channels, with contacts the real router offered."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from agent_console import workspace
from app.channels import chat
from app.channels.chat_models import ChatMessage, ChatSession
from app.channels.email.models import EmailMessage
from app.interactions.models import Interaction
from queues.models import AgentState
from tests.email.conftest import build_mail, desk, ingest, jobs, outbox  # noqa: F401  (fixtures)
from tests.factories import make_staff


@pytest.fixture()
def open_desk(monkeypatch):
    """Chat is open whatever the clock says (the calendars have their own tests)."""
    monkeypatch.setattr(chat, "is_open", lambda calendar, at: True)


def take_offer(client, routed) -> dict:
    """The agent goes available, the router offers the waiting contact, the agent accepts it."""
    assert client.call("presence", {"presence": "available"}) == {"ok": True}
    routed()
    offer = client.next("offer")
    assert client.call("accept", {"offer_id": offer["offer_id"]}) == {"ok": True}
    return offer


def fresh(session, model, key):
    session.expire_all()
    return session.get(model, key)


# ---------------------------------------------------------------------------------------------- chat
def test_chat_panel_history_send_typing_read_and_end(app, db_session, agent_client, routed, open_desk):
    agent = make_staff(db_session)
    db_session.commit()
    config = app.extensions["desk.config"]
    found, _token = chat.start_chat(db_session, config, name="Li Na", email="li@example.com", topic="general")
    interaction_id = found.interaction_id
    client = agent_client(agent)
    client.next("snapshot")
    assert take_offer(client, routed)["channel"] == "chat"

    history = client.call("chat_history", {"interaction_id": interaction_id})["chat"]
    assert [m["sender"] for m in history["messages"]] == ["system"] and history["ended"] is False

    chat.post_customer_message(db_session, config.chat, fresh(db_session, ChatSession, found.id),
                               client_id="customer-1", text="Where is my parcel?")
    arrived = client.next("chat.message")
    assert arrived["interaction_id"] == interaction_id and arrived["message"]["body"] == "Where is my parcel?"

    message = {"interaction_id": interaction_id, "client_id": "agent-msg-1", "text": "Let me look.",
               "seen_upto": arrived["message"]["id"]}
    sent, again = client.call("chat_send", message), client.call("chat_send", message)
    assert sent["ok"] and again["message"]["id"] == sent["message"]["id"]  # a resend is one message
    bodies = db_session.scalars(select(ChatMessage.body).where(ChatMessage.chat_id == found.id,
                                                               ChatMessage.sender == "agent")).all()
    assert bodies == ["Let me look."]

    assert client.call("chat_typing", {"interaction_id": interaction_id, "on": True}) == {"ok": True}
    chat.typing(interaction_id, sender="customer", on=True, agent_id=agent.id)
    assert client.next("chat.typing") == {"interaction_id": interaction_id, "sender": "customer", "on": True,
                                          "agent_id": agent.id}

    read = client.call("chat_read", {"interaction_id": interaction_id, "upto": arrived["message"]["id"]})
    assert read == {"ok": True, "upto": arrived["message"]["id"]}
    assert fresh(db_session, ChatSession, found.id).agent_read_upto == arrived["message"]["id"]
    chat.mark_read(db_session, interaction_id, reader="customer", upto_id=sent["message"]["id"],
                   chat=fresh(db_session, ChatSession, found.id))
    marks = [client.next("chat.read") for _ in range(2)]  # the agent's own mark, then the customer's
    assert [(m["reader"], m["upto"]) for m in marks] == [("agent", arrived["message"]["id"]),
                                                         ("customer", sent["message"]["id"])]

    assert client.call("end", {"interaction_id": interaction_id}) == {"ok": True}
    assert client.next("chat.ended")["reason"] == "agent_ended"
    ended = fresh(db_session, ChatSession, found.id)
    assert ended.ended_at is not None and fresh(db_session, Interaction, interaction_id).state == "wrap_up"
    assert fresh(db_session, AgentState, agent.id).presence == "wrap_up"
    last = db_session.scalars(select(ChatMessage).where(ChatMessage.chat_id == found.id)
                              .order_by(ChatMessage.id.desc())).first()
    assert last.sender == "system"  # the customer was told
    refused = client.call("chat_send", {**message, "client_id": "agent-msg-2", "text": "Still there?"})
    assert refused["error"] == "ended"


def test_a_chat_transfer_tells_the_customer(app, db_session, agent_client, routed, open_desk):
    agent = make_staff(db_session, skills={"general": 5})
    db_session.commit()
    config = app.extensions["desk.config"]
    found, _token = chat.start_chat(db_session, config, name="Li Na", email="li@example.com", topic="general")
    client = agent_client(agent)
    client.next("snapshot")
    take_offer(client, routed)
    client.call("presence", {"presence": "break", "reason": "lunch"})

    ack = client.call("transfer", {"interaction_id": found.interaction_id, "queue": "billing", "note": "invoice"})
    assert ack == {"ok": True}
    moved = fresh(db_session, Interaction, found.interaction_id)
    assert (moved.state, moved.queue) == ("queued", "billing")
    assert "transferred" in db_session.scalars(select(ChatMessage.body).where(ChatMessage.chat_id == found.id)
                                               .order_by(ChatMessage.id.desc())).first()


def test_chat_commands_refuse_other_work(db_session, agent_client):
    agent = make_staff(db_session)
    db_session.commit()
    client = agent_client(agent)
    client.next("snapshot")
    for event, extra in (("chat_history", {}), ("chat_typing", {"on": True}), ("chat_read", {"upto": 1}),
                         ("chat_send", {"client_id": "agent-msg-x", "text": "hi", "seen_upto": 0}), ("email_thread", {}),
                         ("email_cancel", {"message_id": 1})):
        assert client.call(event, {"interaction_id": 424242, **extra})["error"] == "not_your_work", event
    empty = {"interaction_id": 1, "client_id": "agent-msg-x", "text": "", "seen_upto": 0}
    assert client.call("chat_send", empty)["error"] == "bad_payload"
    unsaid = {"interaction_id": 1, "client_id": "agent-msg-x", "text": "hi"}  # no seen_upto: refused
    assert client.call("chat_send", unsaid)["error"] == "bad_payload"
    assert client.call("email_send", {"interaction_id": 1, "body": "  "})["error"] == "bad_payload"
    assert client.call("email_send", {"interaction_id": 1, "body": "x", "cc": ["not an address"]})["error"] == \
        "bad_payload"


# ---------------------------------------------------------------------------------------------- email
def test_email_composer_previews_holds_for_newer_messages_sends_and_undoes(
        app, db_session, agent_client, routed, desk, ingest, jobs, outbox):  # noqa: F811
    agent = make_staff(db_session, name="Agent Amy")
    db_session.commit()
    first = ingest(build_mail(subject="Help please", body="My order has not arrived."))
    case_id = first.interaction_id
    client = agent_client(agent)
    client.next("snapshot")
    assert take_offer(client, routed)["channel"] == "email"

    view = client.call("email_thread", {"interaction_id": case_id})["email"]
    customer = [m for m in view["messages"] if m["direction"] == "in"]
    assert [m["text"].strip() for m in customer] == ["My order has not arrived."]
    assert view["latest_customer_message_id"] == customer[0]["id"] and view["undo_window_s"] == 10
    preview = client.call("email_preview", {"interaction_id": case_id, "body": "It ships today."})["preview"]
    assert "It ships today." in preview["body"] and "Agent Amy" in preview["body"]
    assert preview["subject"].startswith("Re: Help please")

    ack = db_session.scalar(select(EmailMessage).where(EmailMessage.interaction_id == case_id,
                                                       EmailMessage.kind == "ack"))
    ingest(build_mail(subject="Re: Help please", in_reply_to=ack.message_id, body="Also it was the wrong colour."))
    held = client.call("email_send", {"interaction_id": case_id, "body": "It ships today.",
                                      "seen_upto": view["latest_customer_message_id"]})
    assert held["error"] == "newer_messages"
    assert [m["text"].strip() for m in held["messages"]] == ["Also it was the wrong colour."]
    assert db_session.scalar(select(EmailMessage).where(EmailMessage.kind == "reply")) is None

    sent = client.call("email_send", {"interaction_id": case_id, "body": "It ships today.", "confirm": True,
                                      "seen_upto": view["latest_customer_message_id"]})
    assert sent["ok"] and sent["message"]["status"] == "scheduled" and sent["undo_window_s"] == 10
    assert client.call("email_cancel", {"interaction_id": case_id, "message_id": sent["message"]["id"]}) == \
        {"ok": True}
    assert fresh(db_session, EmailMessage, sent["message"]["id"]).status == "cancelled"
    assert client.call("email_cancel", {"interaction_id": case_id,
                                        "message_id": sent["message"]["id"]})["error"] == "too_late"

    latest = client.call("email_thread", {"interaction_id": case_id})["email"]["latest_customer_message_id"]
    final = client.call("email_send", {"interaction_id": case_id, "body": "Sorry - a new one ships today.",
                                       "seen_upto": latest, "cc": ["Boss@Customer.test"]})
    assert final["ok"]
    jobs.run_delayed()
    assert fresh(db_session, EmailMessage, final["message"]["id"]).status == "sent"
    assert any("a new one ships today" in m.message.get_content() for m in outbox.sent)
    assert client.call("email_cancel", {"interaction_id": case_id, "message_id": ack.id})["error"] == "too_late"
    assert client.call("email_thread", {"interaction_id": case_id})["ok"]


# ---------------------------------------------------------------------------------------------- refusals
def handled_by(session, agent, channel):
    """A contact ``agent`` is connected to, with no chat session or email thread behind it."""
    from tests.console.test_socket import connected_contact

    return connected_contact(session, agent, channel=channel)


@pytest.mark.parametrize("channel, call, code", [
    ("email", lambda s, a, i: workspace.chat_view(s, a.id, i), "wrong_channel"),
    ("chat", lambda s, a, i: workspace.chat_view(s, a.id, i), "not_found"),
    ("chat", lambda s, a, i: workspace.chat_read(s, a.id, i, 5), "not_found"),
    ("chat", lambda s, a, i: workspace.end_chat(s, a.id, i), "not_found"),
    ("chat", lambda s, a, i: workspace.transfer_chat(s, a.id, i, "billing", ""), "not_found"),
    ("email", lambda s, a, i: workspace.email_view(s, None, a.id, i), "no_thread"),
    ("email", lambda s, a, i: workspace.cancel_email(s, a.id, i, 999999), "not_found"),
    ("voice", lambda s, a, i: workspace.email_preview(s, None, a, i, "x"), "wrong_channel"),
])
def test_channel_refusals_have_codes(db_session, channel, call, code):
    agent = make_staff(db_session)
    interaction = handled_by(db_session, agent, channel)
    with pytest.raises(workspace.ChannelRefused) as refused:
        call(db_session, agent, interaction.id)
    assert refused.value.code == code


def test_a_reply_to_a_bouncing_address_is_refused(app, db_session, desk, ingest):  # noqa: F811
    from app.channels.email.models import UndeliverableAddress

    agent = make_staff(db_session)
    case = ingest(build_mail(sender="gone@customer.test"))
    interaction = db_session.get(Interaction, case.interaction_id)
    interaction.agent_id = agent.id
    interaction.state = "connected"  # as if routed and accepted (the routing tests cover that path)
    db_session.add(UndeliverableAddress(address="gone@customer.test", status_code="5.1.1"))
    db_session.commit()
    with pytest.raises(workspace.ChannelRefused) as refused:
        workspace.send_email(db_session, desk, agent, interaction.id, body="Hello", cc=[], seen_upto=None,
                             confirm=True, secret="s")
    assert refused.value.code == "undeliverable"
    with pytest.raises(workspace.NewerCustomerMessages) as held:  # never seen anything: every message is new
        workspace.send_email(db_session, desk, agent, interaction.id, body="Hello", cc=[], seen_upto=None,
                             confirm=False, secret="s")
    assert len(held.value.details()["messages"]) == 1
