"""Both sides over real sockets: the customer writes while the agent types; the agent's reply is held
(the customer receives nothing) until the agent sends it having seen the new message."""
from __future__ import annotations

import queue

import pytest
from sqlalchemy import select

from app.channels import chat
from app.channels.chat_models import ChatMessage
from app.extensions import db
from tests.chat.conftest import connect_agent
from tests.chat.test_socket import USER_AGENT, _sign_in, _start, clients  # noqa: F401  (fixture)
from tests.factories import make_staff

pytestmark = pytest.mark.usefixtures("fallback_routing", "no_timers", "open_hours")


def test_the_customer_hears_nothing_of_a_held_reply(app, clients, db_session):  # noqa: F811
    agent = make_staff(db_session, name="Bo")
    db_session.commit()
    customer = clients().connect()
    token = _start(customer)["token"]
    first = customer.call("message", {"client_id": "c-0000000001", "text": "Hi, my order?"})["message"]
    found = chat.resume_chat(db_session, token)
    connect_agent(db_session, found.interaction, agent)
    customer.next("state", where=lambda d: d["state"] == "connected")
    cookie = _sign_in(customer.url, "/login", agent.email)
    console = clients(namespace="/agent", events=("chat.message",), headers={"Cookie": cookie,
                                                                              "User-Agent": USER_AGENT}).connect()

    newer = customer.call("message", {"client_id": "c-0000000002", "text": "It is order 1234."})["message"]
    console.next("chat.message", where=lambda d: d["message"]["id"] == newer["id"])
    draft = {"interaction_id": found.interaction_id, "client_id": "agent-0000000001", "text": "Which order?",
             "seen_upto": first["id"]}
    held = console.call("chat_send", draft)
    assert held["error"] == "newer_messages" and [m["body"] for m in held["messages"]] == ["It is order 1234."]
    with pytest.raises(queue.Empty):
        customer.next("message", timeout=1.0, where=lambda d: d["message"]["sender"] == "agent")
    db.session.remove()
    assert db.session.scalar(select(ChatMessage).where(ChatMessage.sender == "agent")) is None

    sent = console.call("chat_send", {**draft, "text": "Order 1234 ships today.", "seen_upto": newer["id"]})
    assert sent["ok"]
    got = customer.next("message", where=lambda d: d["message"]["sender"] == "agent")
    assert got["message"]["body"] == "Order 1234 ships today." and got["message"]["id"] == sent["message"]["id"]
