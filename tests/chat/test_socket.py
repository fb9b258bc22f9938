"""The customer namespace over a real server (thread) with real python-socketio clients."""
from __future__ import annotations

import queue
import time

import pytest
import requests
import socketio
from sqlalchemy import select

from app.channels import chat, chat_socket
from app.channels.chat_models import ChatMessage, ChatSession
from app.extensions import db
from app.interactions.models import Interaction
from app.interactions.states import State
from tests.chat.conftest import connect_agent
from tests.factories import PASSWORD, make_staff
from tests.portal.helpers import PNG, make_account

pytestmark = pytest.mark.usefixtures("fallback_routing", "no_timers", "open_hours")
WAIT_S = 10
USER_AGENT = "desk-tests/1.0"


class Client:
    """A socket.io client on one namespace that records every event it receives."""

    def __init__(self, url: str, namespace: str = "/customer", events=("message", "typing", "read", "ended", "state"),
                 headers: dict | None = None):
        self.url, self.namespace, self.headers = url, namespace, headers or {}
        self.events: queue.Queue = queue.Queue()
        self.sio = socketio.Client(reconnection=False)
        for name in events:
            self.sio.on(name, self._recorder(name), namespace=namespace)

    def _recorder(self, name):
        return lambda data=None: self.events.put((name, data))

    def connect(self, token: str | None = None) -> Client:
        self.sio.connect(self.url, namespaces=[self.namespace], transports=["websocket"], wait_timeout=WAIT_S,
                         auth={"token": token} if token else None, headers=self.headers)
        return self

    def call(self, event: str, data: dict | None = None) -> dict:
        return self.sio.call(event, data or {}, namespace=self.namespace, timeout=WAIT_S)

    def next(self, name: str, timeout: float = WAIT_S, where=lambda d: True):
        deadline = time.monotonic() + timeout
        while True:
            got, data = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            if got == name and where(data):
                return data

    def close(self) -> None:
        if self.sio.connected:
            self.sio.disconnect()


@pytest.fixture()
def clients(live_server):  # noqa: F811
    made: list[Client] = []

    def make(**kw) -> Client:
        client = Client(live_server.url, **kw)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def _start(client: Client, **kw) -> dict:
    data = {"name": "Ann", "email": "ann@example.com", "topic": "general", "language": "en"}
    data.update(kw)
    reply = client.call("start", data)
    assert reply["ok"], reply
    return reply


def _sign_in(url: str, path: str, email: str) -> str:
    http = requests.Session()
    http.headers["User-Agent"] = USER_AGENT
    response = http.post(f"{url}{path}", data={"email": email, "password": PASSWORD}, allow_redirects=False)
    assert response.status_code == 302, response.text[:300]
    return "; ".join(f"{c.name}={c.value}" for c in http.cookies)


def test_message_is_acknowledged_after_it_is_stored_and_resends_are_stored_once(app, clients):
    customer = clients().connect()
    reply = _start(customer)
    assert reply["status"]["state"] == "queued" and reply["status"]["position"] == 1
    assert [m["sender"] for m in reply["history"]] == ["system"]
    ack = customer.call("message", {"client_id": "c-0000000001", "text": "Hello"})
    assert ack["ok"] and not ack["duplicate"]
    db.session.remove()
    stored = db.session.scalar(select(ChatMessage).where(ChatMessage.id == ack["message"]["id"]))
    assert stored is not None and stored.body == "Hello"  # in the database when the ack arrived
    resend = customer.call("message", {"client_id": "c-0000000001", "text": "Hello"})
    assert resend["ok"] and resend["duplicate"] and resend["message"]["id"] == ack["message"]["id"]
    assert db.session.query(ChatMessage).filter_by(sender="customer").count() == 1
    assert customer.next("message", where=lambda d: d["message"]["client_id"] == "c-0000000001")
    assert customer.call("message", {"client_id": "c-0000000002", "text": ""})["error"] == "empty"
    assert customer.call("start", {"name": "again"})["error"] == "already_started"


def test_reconnect_restores_history_and_a_second_tab_sees_messages(app, clients):
    customer = clients().connect()
    token = _start(customer)["token"]
    for n in range(3):
        assert customer.call("message", {"client_id": f"c-000000000{n}", "text": f"line {n}"})["ok"]
    customer.close()  # the network drops
    back = clients().connect(token=token)
    reply = back.call("resume", {})
    assert [m["body"] for m in reply["history"] if m["sender"] == "customer"] == ["line 0", "line 1", "line 2"]
    other_tab = clients().connect()
    assert other_tab.call("resume", {"token": token})["ok"]
    assert back.call("message", {"client_id": "c-0000000009", "text": "from tab one"})["ok"]
    assert other_tab.next("message", where=lambda d: d["message"]["body"] == "from tab one")
    stranger = clients().connect()
    assert stranger.call("resume", {"token": "not-a-token"})["error"] == "not_found"
    assert stranger.call("message", {"client_id": "c-0000000010", "text": "x"})["error"] == "no_chat"
    for event in ("typing", "read", "status", "leave", "transcript"):
        assert stranger.call(event, {})["error"] == "no_chat"


def test_agent_side_typing_read_receipts_and_join(app, clients, db_session):
    agent = make_staff(db_session, name="Bo")
    db_session.commit()
    customer = clients().connect()
    token = _start(customer)["token"]
    first = customer.call("message", {"client_id": "c-0000000001", "text": "Hi"})["message"]
    found = chat.resume_chat(db_session, token)
    connect_agent(db_session, found.interaction, agent)
    assert customer.next("state", where=lambda d: d["state"] == "connected")
    assert customer.call("status")["status"]["agent_name"] == "Bo"
    cookie = _sign_in(app_url(customer), "/login", agent.email)
    console = clients(namespace="/agent", events=("chat.message", "chat.typing", "chat.read"),
                      headers={"Cookie": cookie, "User-Agent": USER_AGENT})
    console.connect()
    chat.typing(found.interaction_id, sender="agent", on=True, agent_id=agent.id)
    assert customer.next("typing")["on"] is True
    assert customer.call("typing", {"on": True})["ok"]
    assert console.next("chat.typing")["sender"] == "customer"
    config = app.extensions["desk.config"].chat
    reply = chat.post_agent_message(db_session, config, found.interaction_id, agent.id, client_id="a-0000000001",
                                    text="<img src=x onerror=alert(1)>")
    got = customer.next("message", where=lambda d: d["message"]["sender"] == "agent")
    assert got["message"]["body"] == "<img src=x onerror=alert(1)>" and "agent_id" not in got
    chat.mark_read(db_session, found.interaction_id, reader="agent", upto_id=first["id"], agent_id=agent.id)
    assert customer.next("read")["upto"] == first["id"]
    assert customer.call("read", {"upto": reply["id"]})["upto"] == reply["id"]
    assert customer.call("read", {"upto": "x"})["error"] == "invalid"
    assert console.next("chat.read", where=lambda d: d["reader"] == "customer")["upto"] == reply["id"]
    assert customer.call("message", {"client_id": "c-0000000002", "text": "Thanks"})["ok"]
    assert console.next("chat.message", where=lambda d: d["message"]["body"] == "Thanks")


def app_url(client: Client) -> str:
    return client.url


def test_signed_in_customer_skips_the_form_and_resumes_from_any_tab(app, clients, db_session):
    account = make_account(db_session, email="signed@example.com", name="Signed In")
    db_session.commit()
    cookie = _sign_in(clients().url, "/portal/signin", account.email)
    tab = clients(headers={"Cookie": cookie, "User-Agent": USER_AGENT}).connect()
    reply = tab.call("start", {"topic": "billing"})
    assert reply["ok"] and reply["chat"]["email"] == "signed@example.com"
    db.session.remove()
    found = db.session.scalar(select(ChatSession))
    assert found.account_id == account.id and found.interaction.queue == "billing"
    assert found.interaction.customer_id == account.customer_id
    second = clients(headers={"Cookie": cookie, "User-Agent": USER_AGENT}).connect()
    resumed = second.call("resume", {})
    assert resumed["ok"] and resumed["status"]["interaction_id"] == found.interaction_id


def test_leave_transcript_and_rate_limits(app, clients, db_session):
    customer = clients().connect()
    _start(customer)
    assert customer.call("message", {"client_id": "c-0000000001", "text": "Are you there?"})["ok"]
    assert customer.call("transcript")["email"] == "ann@example.com"
    for _ in range(2):
        customer.call("transcript")
    assert customer.call("transcript")["error"] == "rate_limited"
    left = customer.call("leave")
    assert left["ok"] and left["case_reference"].startswith("C-")
    assert customer.next("ended")["case_reference"] == left["case_reference"]
    assert customer.call("message", {"client_id": "c-0000000002", "text": "hello?"})["error"] == "ended"
    spammer = clients().connect()
    _start(spammer, email="spam@example.com")
    limit = app.extensions["desk.config"].chat.messages_per_minute
    answers = [spammer.call("message", {"client_id": f"s-{n:010d}", "text": "spam"}) for n in range(limit + 1)]
    assert answers[-1]["error"] == "rate_limited" and all(a["ok"] for a in answers[:-1])


def test_dropped_customer_who_does_not_return_has_left(app, clients, db_session):
    customer = clients().connect()
    token = _start(customer)["token"]
    customer.call("message", {"client_id": "c-0000000001", "text": "My parcel"})
    found = chat.resume_chat(db_session, token)
    interaction_id, key = found.interaction_id, found.token_hash
    back = clients().connect(token=token)
    customer.close()
    time.sleep(0.3)
    assert chat_socket.left_job(key) is False  # another tab is still there
    back.close()
    deadline = time.monotonic() + WAIT_S
    while app.extensions["desk.redis"].scard(f"chat:sockets:{interaction_id}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert chat_socket.left_job(key) is True
    db.session.remove()
    interaction = db.session.get(Interaction, interaction_id)
    assert interaction.state == State.ABANDONED
    assert chat_socket.left_job(key) is False
    assert chat_socket.left_job("no-such-chat") is False


def test_upload_and_attachment_access(app, clients, live_server):  # noqa: F811
    customer = clients().connect()
    token = _start(customer)["token"]
    url = live_server.url
    bad = requests.post(f"{url}/chat/upload", headers={"X-Chat-Token": token},
                        files={"file": ("a.html", b"<html>", "text/html")})
    assert bad.status_code == 400 and bad.json()["error"] == "type_not_allowed"
    assert requests.post(f"{url}/chat/upload", headers={"X-Chat-Token": "nope"},
                         files={"file": ("a.png", PNG)}).status_code == 404
    assert requests.post(f"{url}/chat/upload", headers={"X-Chat-Token": token}).status_code == 400
    up = requests.post(f"{url}/chat/upload", headers={"X-Chat-Token": token}, files={"file": ("a.png", PNG)})
    attachment = up.json()["attachment"]
    ack = customer.call("message", {"client_id": "c-0000000001", "text": "", "attachment_id": attachment["id"]})
    assert ack["ok"] and ack["message"]["attachment"]["filename"] == "a.png"
    assert customer.call("message", {"client_id": "c-0000000002", "text": "x",
                                     "attachment_id": attachment["id"] + 1000})["error"] == "bad_attachment"
    got = requests.get(f"{url}/chat/attachments/{attachment['id']}", params={"token": token})
    assert got.status_code == 200 and got.content == PNG and "sandbox" in got.headers["Content-Security-Policy"]
    assert requests.get(f"{url}/chat/attachments/{attachment['id']}").status_code == 404
    other = clients().connect()
    other_token = _start(other, email="other@example.com")["token"]
    assert requests.get(f"{url}/chat/attachments/{attachment['id']}", params={"token": other_token}
                        ).status_code == 404
    assert requests.get(f"{url}/chat/attachments/999999").status_code == 404
    customer.call("leave")
    assert requests.post(f"{url}/chat/upload", headers={"X-Chat-Token": token},
                         files={"file": ("a.png", PNG)}).status_code == 409


def test_widget_loader_frame_and_allowed_origins(app, client):
    js = client.get("/chat/widget.js")
    assert js.status_code == 200 and b"/chat/frame" in js.data and js.mimetype == "text/javascript"
    assert client.get("/chat/vendor/socket.io.min.js").status_code == 200
    frame = client.get("/chat/frame?origin=http://desk.test&lang=zh")
    assert frame.status_code == 200
    assert "frame-ancestors 'self' http://desk.test" in frame.headers["Content-Security-Policy"]
    assert "在线咨询".encode() in frame.data and b"pc-name" in frame.data
    assert client.get("/chat/frame?origin=https://evil.example").status_code == 403
    import dataclasses  # noqa: F401

    config = app.extensions["desk.config"]
    widened = config.model_copy(update={"chat": config.chat.model_copy(
        update={"allowed_origins": ["https://shop.example.com"]})})
    app.extensions["desk.config"] = widened
    try:
        shop = client.get("/chat/frame?origin=https://shop.example.com")
        assert shop.status_code == 200 and "https://shop.example.com" in shop.headers["Content-Security-Policy"]
    finally:
        app.extensions["desk.config"] = config
