"""A real desk server in a thread and real python-socketio clients signed in as staff."""
from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import pytest
import requests
import socketio

from queues import router
from tests.factories import PASSWORD

USER_AGENT = "desk-tests/1.0"  # the sign-in session is bound to it (session_protection="strong")
WAIT_S = 10


class AgentClient:
    """A python-socketio client on ``/agent`` that records every event it receives."""

    def __init__(self, base_url: str, cookie: str):
        self.events: queue.Queue = queue.Queue()
        self.sio = socketio.Client(reconnection=False)
        for name in ("snapshot", "offer", "offer_gone", "presence", "work", "work_closed", "alert", "chat.message",
                     "chat.typing", "chat.read", "chat.ended", "email.message"):
            self.sio.on(name, self._recorder(name), namespace="/agent")
        self.base_url, self.cookie = base_url, cookie

    def _recorder(self, name):
        return lambda data=None: self.events.put((name, data))

    def connect(self) -> AgentClient:
        self.sio.connect(self.base_url, namespaces=["/agent"], transports=["websocket"], wait_timeout=WAIT_S,
                         headers={"Cookie": self.cookie, "User-Agent": USER_AGENT})
        return self

    def call(self, event: str, data: dict | None = None) -> dict:
        return self.sio.call(event, data or {}, namespace="/agent", timeout=WAIT_S)

    def next(self, name: str, *, timeout: float = WAIT_S):
        """The next event called ``name`` (others received meanwhile are skipped)."""
        while True:
            got, data = self.events.get(timeout=timeout)
            if got == name:
                return data

    def drain(self) -> list[tuple[str, object]]:
        out = []
        while not self.events.empty():
            out.append(self.events.get_nowait())
        return out

    def close(self) -> None:
        if self.sio.connected:
            self.sio.disconnect()


def sign_in(base_url: str, email: str, password: str = PASSWORD) -> str:
    """Sign in through the real form; returns the Cookie header value."""
    http = requests.Session()
    http.headers["User-Agent"] = USER_AGENT
    response = http.post(f"{base_url}/login", data={"email": email, "password": password}, allow_redirects=False)
    assert response.status_code == 302, response.text[:300]
    return "; ".join(f"{c.name}={c.value}" for c in http.cookies)


@pytest.fixture()
def socket_server(app, live_server):  # noqa: F811
    app.config["CONSOLE_DISCONNECT_GRACE_S"] = 0
    yield live_server
    app.config.pop("CONSOLE_DISCONNECT_GRACE_S", None)


@pytest.fixture()
def agent_client(socket_server) -> Iterator:
    """Factory: ``agent_client(staff)`` -> a connected AgentClient for that staff user."""
    clients: list[AgentClient] = []

    def make(staff, *, connect: bool = True) -> AgentClient:
        client = AgentClient(socket_server.url, sign_in(socket_server.url, staff.email))
        clients.append(client)
        return client.connect() if connect else client

    yield make
    for client in clients:
        client.close()


@pytest.fixture()
def routed(app):
    """A fresh router for the test (rebuilt from the database); ``routed()`` runs it until settled."""
    router.reset(app)
    yield lambda: router.run_once(app)
    router.reset(app)


@pytest.fixture()
def running_router(app):
    """The real router loop (``queues.router.serve``) on a thread, as the embedded desk runs it."""
    router.reset(app)
    stop = threading.Event()
    thread = threading.Thread(target=router.serve, args=(app, stop), name="test-router", daemon=True)
    thread.start()
    yield thread
    stop.set()
    router._hub.wake.set()
    thread.join(timeout=15)
    router.reset(app)
