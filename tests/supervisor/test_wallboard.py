"""The wallboard snapshot, the supervisor actions' checks and the presence history listener."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent_console.supervisor_actions import SupervisorActionError, change_agent_state, move_contact
from agent_console.supervisor_namespace import make_listener
from app.auth.models import Role
from app.db import utcnow
from app.interactions.service import transition
from app.reports.models import AgentPresenceLog
from app.reports.service import record_presence
from app.reports.wallboard import wallboard_snapshot
from tests.factories import make_interaction, make_staff


def queue_contact(session, queue="general", *, at=None, channel="voice"):
    it = make_interaction(session, channel=channel)
    it.queue = queue
    transition(session, it, "queued", actor="test", data={"queue": queue}, at=at)
    return it


# Noon in the desk's time zone (Asia/Shanghai): the wallboard counts the local day, and minutes after local
# midnight (16:00 UTC) a contact queued 90 s earlier belongs to the day before.
NOON = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)


def test_waiting_counts_longest_wait_and_agents_by_state(db_session, desk_config):
    now = NOON
    ann = make_staff(db_session, name="Ann")
    make_staff(db_session, name="Bob")
    make_staff(db_session, role=Role.SUPERVISOR, name="Sue")  # supervisors are not on the board
    queue_contact(db_session, at=now - timedelta(seconds=90))
    queue_contact(db_session, at=now - timedelta(seconds=30))
    queue_contact(db_session, "billing", at=now - timedelta(seconds=5))
    record_presence(db_session, ann.id, "available", at=now - timedelta(seconds=120))
    db_session.commit()
    snap = wallboard_snapshot(db_session, desk_config, now=now)
    queues = {q["name"]: q for q in snap["queues"]}
    assert (queues["general"]["waiting"], queues["general"]["longest_wait_s"]) == (2, 90)
    assert [c["wait_s"] for c in queues["general"]["contacts"]] == [90, 30]
    assert (queues["billing"]["waiting"], queues["vip"]["waiting"]) == (1, 0)
    assert queues["general"]["offered"] == 2 and queues["general"]["service_level"] is None
    assert snap["agents_by_state"] == {"available": 1, "offline": 1}
    agents = {a["name"]: a for a in snap["agents"]}
    assert agents["Ann"]["in_state_s"] == 120 and agents["Bob"]["in_state_s"] is None
    assert snap["alerts"] == []


def test_a_queue_below_its_target_raises_an_alert(db_session, desk_config):
    now = NOON
    slow = queue_contact(db_session, at=now - timedelta(seconds=100))
    transition(db_session, slow, "abandoned", actor="test", at=now - timedelta(seconds=40))  # 60 s wait
    fast = queue_contact(db_session, "billing", at=now - timedelta(seconds=50))
    transition(db_session, fast, "offered", actor="router", at=now - timedelta(seconds=45))
    transition(db_session, fast, "connected", actor="agent:1", at=now - timedelta(seconds=40))
    db_session.commit()
    snap = wallboard_snapshot(db_session, desk_config, now=now)
    queues = {q["name"]: q for q in snap["queues"]}
    assert queues["general"]["breached"] and queues["general"]["service_level"] == 0.0
    assert not queues["billing"]["breached"] and queues["billing"]["service_level"] == 1.0
    assert snap["alerts"] == [{"queue": "general", "kind": "service_level", "value": 0.0, "target": 0.8}]


@pytest.mark.parametrize("presence, reason, code", [
    ("busy", None, "bad_presence"), ("break", "  ", "reason_required"), ("available", None, "unknown_agent"),
])
def test_agent_state_changes_are_checked_before_routing(db_session, presence, reason, code):
    supervisor = make_staff(db_session, role=Role.SUPERVISOR)
    with pytest.raises(SupervisorActionError) as err:
        change_agent_state(db_session, supervisor.id, presence, reason, actor="supervisor:1")
    assert err.value.code == code


@pytest.mark.parametrize("setup, queue, agent, code", [
    ("missing", "billing", None, "unknown_contact"),
    ("closed", "billing", None, "not_waiting"),
    ("queued", None, None, "target_required"),
    ("queued", "nope", None, "unknown_queue"),
    ("queued", "general", None, "same_queue"),
    ("queued", None, "supervisor", "unknown_agent"),
])
def test_moves_are_checked_before_routing(db_session, desk_config, setup, queue, agent, code):
    supervisor = make_staff(db_session, role=Role.SUPERVISOR)
    contact_id = 9999
    if setup != "missing":
        it = queue_contact(db_session)
        if setup == "closed":
            transition(db_session, it, "closed", actor="test")
        contact_id = it.id
    with pytest.raises(SupervisorActionError) as err:
        move_contact(db_session, desk_config, contact_id, queue=queue,
                     agent_id=supervisor.id if agent else None, note="", actor="supervisor:1")
    assert err.value.code == code


def test_presence_changes_are_logged_in_their_own_transaction(app, db_session):
    """The routing service writes the history row with the change: a repeat adds nothing, a rolled-back
    change leaves no row."""
    from queues import service as routing_service

    agent = make_staff(db_session)
    db_session.commit()
    at = utcnow() - timedelta(seconds=10)
    routing_service.set_presence(db_session, agent.id, "available", now=at)
    db_session.commit()
    routing_service.set_presence(db_session, agent.id, "available")  # repeated: no row
    db_session.commit()
    routing_service.set_presence(db_session, agent.id, "break", "lunch")
    db_session.rollback()  # never happened: no row
    routing_service.set_presence(db_session, agent.id, "break", "coaching")
    db_session.commit()
    rows = db_session.query(AgentPresenceLog).filter_by(agent_id=agent.id).order_by(AgentPresenceLog.id).all()
    assert [(r.presence, r.reason) for r in rows] == [("available", None), ("break", "coaching")]
    assert rows[0].occurred_at == at


def test_the_listener_marks_the_board_dirty(app):
    listener = make_listener(app)
    pusher = app.extensions["supervisor.pusher"]
    pusher.wake.clear()
    listener("agent.presence", {"agent_id": 1, "presence": "available"})
    assert pusher.wake.is_set()
    pusher.wake.clear()
    listener("crm.customer_changed", {})
    assert not pusher.wake.is_set()


def test_presence_history_rows_are_append_only(db_session):
    from app.reports.models import PresenceLogImmutable

    agent = make_staff(db_session)
    row = record_presence(db_session, agent.id, "available")
    db_session.commit()
    row.presence = "offline"
    with pytest.raises(PresenceLogImmutable):
        db_session.flush()
    db_session.rollback()
