"""The ``/supervisor`` Socket.IO namespace: the live wallboard and the supervisor's actions on it.

Server -> browser: ``wallboard`` (the whole ``app.reports.wallboard`` snapshot) to the room
``supervisors``: on connect, shortly after anything changes (a realtime event marks the board dirty; pushes
are debounced by ``reports.wallboard_debounce_s``) and at least every ``reports.wallboard_refresh_s``
(times in state and waits grow, and other processes' changes reach this one that way).

Browser -> server, each answered through its acknowledgement ``{"ok": true}`` or
``{"ok": false, "error": code, "problems": [...]}``: ``refresh``, ``set_agent_state``
{agent_id, presence, reason}, ``move_contact`` {interaction_id, queue | agent_id, note}.
Only supervisors (and admins) may connect or act; payloads are pydantic models with ``extra="forbid"``.

The agents' presence history (``app.reports.models.AgentPresenceLog``), which occupancy and time in state
are computed from, is written by the routing service in the same transaction as each presence change.
"""
from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any

from flask import current_app, request
from flask_socketio import Namespace, emit, join_room
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy.orm import Session

from agent_console import routing
from agent_console.supervisor_actions import SupervisorActionError, change_agent_state, move_contact
from app import realtime
from app.auth.models import Role
from app.auth.roles import current_staff, socket_role_required, staff_allowed
from app.extensions import db, socketio
from app.reports.wallboard import wallboard_snapshot

log = logging.getLogger(__name__)
NAMESPACE = "/supervisor"
ROOM = "supervisors"
DIRTY_EVENTS = ("interaction.", "offer.", "agent.", "queue.")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InAgentState(_In):
    agent_id: int = Field(gt=0)
    presence: str = Field(max_length=20)
    reason: str | None = Field(default=None, max_length=64)


class InMoveContact(_In):
    interaction_id: int = Field(gt=0)
    queue: str | None = Field(default=None, max_length=64)
    agent_id: int | None = Field(default=None, gt=0)
    note: str = Field(default="", max_length=500)

    @model_validator(mode="after")
    def _one_target(self) -> InMoveContact:
        if (self.queue is None) == (self.agent_id is None):
            raise ValueError("give either a queue or an agent")
        return self


def _fail(code: str, problems: list[str] | None = None) -> dict[str, Any]:
    return {"ok": False, "error": code, "problems": problems or []}


def presence_reader(session: Session, agent_id: int) -> dict[str, Any]:
    """The agent's current presence: the routing service's agent state when it exists, else the history."""
    try:
        return routing.presence_of(session, agent_id)
    except routing.RoutingUnavailable:
        from app.reports.wallboard import _log_presence

        return _log_presence(session, agent_id)


def current_snapshot(now: datetime | None = None) -> dict[str, Any]:
    return wallboard_snapshot(db.session, current_app.extensions["desk.config"], now=now,
                              presence_of=presence_reader)


class WallboardPusher:
    """One per app: wakes on a change (debounced) or on the refresh period, and pushes the snapshot to the
    ``supervisors`` room while any supervisor is connected."""

    def __init__(self, app):
        self.app = app
        self.wake = threading.Event()
        self.connected: set[str] = set()
        self.started = False
        self._lock = threading.Lock()

    def ensure_started(self) -> None:
        with self._lock:
            if not self.started:
                self.started = True
                socketio.start_background_task(self._run)

    def mark_dirty(self) -> None:
        self.wake.set()

    def _run(self) -> None:
        settings = self.app.extensions["desk.config"].reports
        while True:
            self.wake.wait(settings.wallboard_refresh_s)
            socketio.sleep(settings.wallboard_debounce_s)  # let a burst of changes settle into one push
            self.wake.clear()
            if self.connected:
                self.push()

    def push(self) -> None:
        with self.app.app_context():
            try:
                snapshot = current_snapshot()
            except Exception:  # a failing snapshot must not kill the pusher; it retries next period
                log.exception("wallboard snapshot failed")
                return
            finally:
                db.session.remove()
        socketio.emit("wallboard", snapshot, namespace=NAMESPACE, to=ROOM)


def _pusher() -> WallboardPusher:
    return current_app.extensions["supervisor.pusher"]


def _act(handler, model: type[_In], data: Any) -> dict[str, Any]:
    """Validate, run one action, commit; a refused action rolls back and acknowledges with its code."""
    try:
        parsed = model.model_validate(data if isinstance(data, dict) else {})
    except ValidationError as exc:
        return _fail("bad_payload", [f"{'.'.join(map(str, e['loc'])) or 'payload'}: {e['msg']}" for e in exc.errors()])
    supervisor = current_staff()
    try:
        handler(parsed, f"supervisor:{supervisor.id}")
        db.session.commit()
    except SupervisorActionError as exc:
        db.session.rollback()
        return _fail(exc.code)
    except Exception as exc:
        db.session.rollback()
        if isinstance(exc, routing.offer_errors() if _routing_present() else ()):
            return _fail("refused", [str(exc)])
        raise
    _pusher().mark_dirty()
    return {"ok": True}


def _routing_present() -> bool:
    try:
        routing.service()
        return True
    except routing.RoutingUnavailable:
        return False


class SupervisorNamespace(Namespace):
    def on_connect(self, auth=None):
        if not staff_allowed(Role.SUPERVISOR):
            return False  # refused: the client gets a connect_error
        join_room(ROOM)
        pusher = _pusher()
        pusher.connected.add(request.sid)
        pusher.ensure_started()
        emit("wallboard", current_snapshot())
        db.session.remove()
        return True

    def on_disconnect(self, *args):
        _pusher().connected.discard(request.sid)

    @socket_role_required(Role.SUPERVISOR)
    def on_refresh(self, data=None):
        try:
            return {"ok": True, "wallboard": current_snapshot()}
        finally:
            db.session.remove()

    @socket_role_required(Role.SUPERVISOR)
    def on_set_agent_state(self, data=None):
        return _act(lambda p, actor: change_agent_state(db.session, p.agent_id, p.presence, p.reason, actor=actor),
                    InAgentState, data)

    @socket_role_required(Role.SUPERVISOR)
    def on_move_contact(self, data=None):
        config = current_app.extensions["desk.config"]
        return _act(lambda p, actor: move_contact(db.session, config, p.interaction_id, queue=p.queue,
                                                  agent_id=p.agent_id, note=p.note, actor=actor),
                    InMoveContact, data)


def make_listener(app):
    """The realtime listener: mark the wallboard dirty on any change. (The presence history is written by
    the routing service in the transaction that changes the presence.)"""

    def listener(name: str, payload: dict[str, Any]) -> None:
        if name.startswith(DIRTY_EVENTS):
            app.extensions["supervisor.pusher"].mark_dirty()

    return listener


def init_supervisor_realtime(app) -> None:
    """INITIALISER: the namespace, its pusher, and the realtime listener."""
    app.extensions["supervisor.pusher"] = WallboardPusher(app)
    socketio.on_namespace(SupervisorNamespace(NAMESPACE))
    listener = make_listener(app)
    app.extensions["supervisor.listener"] = listener
    realtime.subscribe(listener)
