"""The /supervisor namespace with the real python-socketio client against a live server."""
from __future__ import annotations

import queue as queue_mod
from datetime import timedelta

import pytest
import socketio

from app.db import utcnow
from app.interactions.service import transition
from tests.factories import make_interaction, make_staff
from tests.supervisor.conftest import USER_AGENT, session_cookie, signed_in_client


class Board:
    """A connected supervisor socket collecting every "wallboard" push."""

    def __init__(self, url: str, cookie: str):
        self.pushes: queue_mod.Queue = queue_mod.Queue()
        self.client = socketio.Client(reconnection=False)
        self.client.on("wallboard", self.pushes.put, namespace="/supervisor")
        self.client.connect(url, headers={"Cookie": cookie, "User-Agent": USER_AGENT}, namespaces=["/supervisor"],
                            transports=["websocket"], wait_timeout=10)

    def next_where(self, predicate, timeout_s: float = 15.0) -> dict:
        """The first push (from now on) for which ``predicate`` holds; fails the test if none comes."""
        while True:
            try:
                snap = self.pushes.get(timeout=timeout_s)
            except queue_mod.Empty:
                pytest.fail("no matching wallboard push arrived")
            if predicate(snap):
                return snap

    def call(self, event: str, data) -> dict:
        return self.client.call(event, data, namespace="/supervisor", timeout=10)

    def close(self):
        self.client.disconnect()


@pytest.fixture()
def board(live_server, supervisor_client):
    b = Board(live_server.url, session_cookie(supervisor_client))
    yield b
    b.close()


def waiting(snap, name="general") -> int:
    return next(q["waiting"] for q in snap["queues"] if q["name"] == name)


def test_a_supervisor_gets_the_board_on_connect_and_a_push_when_a_contact_queues(board, db_session):
    first = board.next_where(lambda s: True)
    assert waiting(first) == 0
    it = make_interaction(db_session)
    it.queue = "general"
    transition(db_session, it, "queued", actor="test", data={"queue": "general"})
    db_session.commit()  # the commit's announcement wakes the pusher
    snap = board.next_where(lambda s: waiting(s) == 1)
    general = next(q for q in snap["queues"] if q["name"] == "general")
    assert general["contacts"][0]["id"] == it.id and general["offered"] == 1


def test_refresh_returns_the_board(board):
    reply = board.call("refresh", {})
    assert reply["ok"] and {q["name"] for q in reply["wallboard"]["queues"]} == {"general", "billing", "vip"}


def test_actions_validate_their_payloads(board, db_session):
    extra = {"agent_id": 1, "presence": "available", "extra": 1}
    assert board.call("set_agent_state", extra)["error"] == "bad_payload"
    assert board.call("set_agent_state", "nonsense")["error"] == "bad_payload"
    both = {"interaction_id": 1, "queue": "billing", "agent_id": 2}
    assert board.call("move_contact", both)["error"] == "bad_payload"
    assert board.call("set_agent_state", {"agent_id": 999, "presence": "available"})["error"] == "unknown_agent"
    assert board.call("move_contact", {"interaction_id": 999, "queue": "billing"})["error"] == "unknown_contact"


def test_agents_and_strangers_cannot_connect(app, live_server, db_session):
    agent = make_staff(db_session)
    db_session.commit()
    client = signed_in_client(app, agent)
    for headers in ({"Cookie": session_cookie(client), "User-Agent": USER_AGENT}, {}):
        sio = socketio.Client(reconnection=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            sio.connect(live_server.url, headers=headers, namespaces=["/supervisor"], transports=["websocket"],
                        wait_timeout=5)
        sio.disconnect()


def test_the_board_shows_agents_with_time_in_state(board, db_session):
    from app.reports.service import record_presence

    ann = make_staff(db_session, name="Ann")
    record_presence(db_session, ann.id, "break", reason="lunch", at=utcnow() - timedelta(minutes=3))
    db_session.commit()
    reply = board.call("refresh", {})
    (row,) = [a for a in reply["wallboard"]["agents"] if a["id"] == ann.id]
    assert row["presence"] in ("break", "offline")  # routing's agent state wins once routing is installed
    if row["presence"] == "break":
        assert row["reason"] == "lunch" and row["in_state_s"] >= 180


def test_a_successful_action_commits_and_wakes_the_board(board, db_session, monkeypatch, app):
    """The namespace's glue around an action, with the action itself replaced by one that writes a row
    (the real one calls the routing service)."""
    import agent_console.supervisor_namespace as ns
    from app.reports.models import AgentPresenceLog
    from app.reports.service import record_presence

    ann = make_staff(db_session, name="Ann")
    db_session.commit()
    calls = []

    def fake_change(session, agent_id, presence, reason, *, actor):
        calls.append(actor)
        record_presence(session, agent_id, presence, reason=reason)

    monkeypatch.setattr(ns, "change_agent_state", fake_change)
    app.extensions["supervisor.pusher"].wake.clear()
    reply = board.call("set_agent_state", {"agent_id": ann.id, "presence": "break", "reason": "coaching"})
    assert reply == {"ok": True}
    assert calls and calls[0].startswith("supervisor:")
    db_session.expire_all()
    assert db_session.query(AgentPresenceLog).filter_by(agent_id=ann.id, presence="break").count() == 1


def test_a_failing_snapshot_does_not_stop_the_pusher(app, monkeypatch):
    import agent_console.supervisor_namespace as ns

    def broken(now=None):
        raise RuntimeError("database away")

    monkeypatch.setattr(ns, "current_snapshot", broken)
    emitted = []
    monkeypatch.setattr(ns.socketio, "emit", lambda *a, **k: emitted.append(a))
    app.extensions["supervisor.pusher"].push()
    assert emitted == []
