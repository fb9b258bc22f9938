"""The live wallboard's figures: per queue now (waiting, longest wait) and today (service level, ASA, AHT,
abandonment, from the same event-derived KPIs as the reports), agents by state with time in state, and
alerts when a queue is below its service-level target.

``wallboard_snapshot`` returns plain JSON-ready values; the Socket.IO namespace sends them as they are.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.auth.models import Role, StaffUser
from app.db import utcnow
from app.interactions.models import Interaction
from app.interactions.states import State, WAITING
from app.reports.models import AgentPresenceLog
from app.reports.service import build_report, local_day_period

WAITING_LIST_LIMIT = 50
PresenceReader = Callable[[Session, int], dict[str, Any]]


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _waiting_by_queue(session: Session, now: datetime) -> dict[str, list[dict]]:
    rows = session.execute(select(Interaction.id, Interaction.queue, Interaction.channel, Interaction.priority,
                                  Interaction.routing_age_origin, Interaction.state_changed_at, Interaction.state)
                           .where(Interaction.state.in_([str(s) for s in WAITING]))
                           .order_by(Interaction.priority.desc(), Interaction.routing_age_origin, Interaction.id))
    out: dict[str, list[dict]] = {}
    for id_, queue, channel, priority, origin, changed, state in rows:
        since = origin or changed
        out.setdefault(queue or "", []).append({
            "id": id_, "channel": channel, "priority": priority, "state": state,
            "wait_s": max(0, int((now - since).total_seconds()))})
    return out


def _log_presence(session: Session, agent_id: int) -> dict[str, Any]:
    last = session.scalars(select(AgentPresenceLog).where(AgentPresenceLog.agent_id == agent_id)
                           .order_by(AgentPresenceLog.occurred_at.desc(), AgentPresenceLog.id.desc()).limit(1)).first()
    if last is None:
        return {"presence": "offline", "reason": None, "since": None}
    return {"presence": last.presence, "reason": last.reason, "since": last.occurred_at.isoformat()}


def _agents(session: Session, now: datetime, presence_of: PresenceReader) -> list[dict]:
    staff = session.scalars(select(StaffUser).where(StaffUser.active.is_(True), StaffUser.role == Role.AGENT)
                            .order_by(StaffUser.name)).all()
    busy = dict(session.execute(select(Interaction.agent_id, func.count()).where(
        Interaction.state.in_([State.CONNECTED, State.WRAP_UP, State.OFFERED]),
        Interaction.agent_id.is_not(None)).group_by(Interaction.agent_id)).all())
    agents = []
    for user in staff:
        p = presence_of(session, user.id)
        since = datetime.fromisoformat(p["since"]) if p.get("since") else None
        agents.append({"id": user.id, "name": user.name, "presence": p["presence"], "reason": p.get("reason"),
                       "in_state_s": int((now - since).total_seconds()) if since else None,
                       "open_contacts": int(busy.get(user.id, 0))})
    return agents


def wallboard_snapshot(session: Session, config, *, now: datetime | None = None,
                       presence_of: PresenceReader | None = None) -> dict[str, Any]:
    """Everything the wallboard shows, as of ``now``. ``presence_of(session, agent_id)`` gives an agent's
    current {presence, reason, since}; by default the presence history's last row."""
    now = now or utcnow()
    presence_of = presence_of or _log_presence
    tz = ZoneInfo(config.desk.timezone)
    today = local_day_period(now.astimezone(tz).date(), tz)
    report = build_report(session, config, today, "queue", now=now)
    figures = {row.key: row for row in report.rows}
    waiting = _waiting_by_queue(session, now)
    queues, alerts = [], []
    for q in config.routing.queues:
        row = figures.get(q.name)
        contacts = waiting.get(q.name, [])
        target = q.service_level.percent / 100
        sl = row.service_level if row else None
        entry = {
            "name": q.name, "label_en": q.label_en or q.name, "label_zh": q.label_zh or q.label_en or q.name,
            "waiting": len(contacts), "longest_wait_s": max((c["wait_s"] for c in contacts), default=0),
            "offered": row.offered if row else 0, "answered": row.answered if row else 0,
            "abandoned": row.abandoned if row else 0,
            "service_level": _round(sl), "asa_s": _round(row.asa_s if row else None, 1),
            "aht_s": _round(row.aht_s if row else None, 1),
            "abandon_rate": _round(row.abandon_rate if row else None),
            "target": target, "within_s": q.service_level.within_s,
            "contacts": contacts[:WAITING_LIST_LIMIT],
        }
        entry["breached"] = sl is not None and sl < target
        if entry["breached"]:
            alerts.append({"queue": q.name, "kind": "service_level", "value": entry["service_level"],
                           "target": target})
        queues.append(entry)
    agents = _agents(session, now, presence_of)
    return {"at": now.isoformat(), "queues": queues, "agents": agents, "alerts": alerts,
            "agents_by_state": dict(Counter(a["presence"] for a in agents))}
