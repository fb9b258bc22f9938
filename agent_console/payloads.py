"""Builds the typed ``/agent`` events (``agent_console.events``) from database rows.

Read-only. Used by the socket handlers (snapshot on connect), by the realtime fan-out (an offer's
screen-pop, a changed piece of work) and by the console page (first paint).
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from agent_console import routing
from agent_console.events import OutComplaintAlert, OutOffer, OutPresence, OutSnapshot, OutStats, OutWork
from agent_console.screenpop import build_screenpop, explain_priority
from agent_console.service import open_work, today_stats
from app.auth.models import StaffUser
from app.complaints.models import ComplaintNotice
from app.crm.models import Customer
from app.db import utcnow
from app.interactions.models import Interaction, InteractionEvent
from queues import service as routing_service


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def offer_event(session: Session, payload: dict[str, Any], desk_config: Any, *,
                viewer: str | None = None) -> OutOffer | None:
    """The offer as the browser receives it, with its screen-pop. None when the interaction is gone.
    With ``viewer``, the opening of the customer's record is audited in the caller's transaction."""
    interaction = session.get(Interaction, int(payload["interaction_id"]))
    if interaction is None:
        return None
    reasons = payload.get("priority_reasons")
    priority = payload.get("priority")
    return _out_offer(payload, priority=interaction.priority if priority is None else int(priority),
                      reasons=list(interaction.priority_reasons if reasons is None else reasons),
                      channel=interaction.channel, queue=interaction.queue,
                      screenpop=build_screenpop(session, interaction, desk_config, priority=priority,
                                                priority_reasons=reasons, viewer=viewer))


def _out_offer(payload: dict[str, Any], *, priority: int, reasons: list, channel: str, queue: str | None,
               screenpop: dict[str, Any]) -> OutOffer:
    """The offer event from its ``offer.created`` payload; ``channel``/``queue`` where the payload has none."""
    expires_at = payload.get("expires_at")
    return OutOffer(
        offer_id=int(payload["offer_id"]), interaction_id=int(payload["interaction_id"]),
        agent_id=int(payload["agent_id"]), expires_at=expires_at if isinstance(expires_at, str) else _iso(expires_at),
        priority=priority, priority_reasons=reasons, channel=payload.get("channel") or channel,
        queue=payload.get("queue") or queue, screenpop=screenpop)


def prepared_screenpop(session: Session, interaction_id: int, desk_config: Any, priority: int,
                       priority_reasons: list[dict]) -> dict[str, Any] | None:
    """The screen-pop of a contact the router has just decided to offer, built while the offer is being
    written (``offer_from_prepared`` turns it into the offer event). None when the contact is gone."""
    interaction = session.get(Interaction, interaction_id)
    if interaction is None:
        return None
    return {"channel": interaction.channel, "queue": interaction.queue,
            "screenpop": build_screenpop(session, interaction, desk_config, priority=priority,
                                         priority_reasons=priority_reasons)}


def offer_from_prepared(payload: dict[str, Any], prepared: dict[str, Any]) -> OutOffer:
    """The offer event from its ``offer.created`` payload and the screen-pop prepared for it: nothing to
    read. The pop was built a moment before the offer's commit, so it is brought up to it: the contact
    is now offered, with the offer's priority."""
    screenpop = dict(prepared["screenpop"])
    screenpop["interaction"] = {**screenpop["interaction"], "state": "offered"}
    priority, reasons = int(payload["priority"]), list(payload.get("priority_reasons") or [])
    screenpop["priority"] = explain_priority(priority, reasons)
    return _out_offer(payload, priority=priority, reasons=reasons, channel=prepared["channel"],
                      queue=prepared["queue"], screenpop=screenpop)


def work_item(session: Session, interaction: Interaction, desk_config: Any, *, with_screenpop: bool = True,
              known: dict[str, Any] | None = None) -> OutWork:
    """One workspace tab: the interaction, its customer's name, when it connected and when wrap-up began.
    ``known`` spares the look-ups a caller has already made: ``group`` (the agent's), ``customer_name``
    and ``stamps`` (``{"connected": at, "wrap_up": at}``, the latest of each transition)."""
    known = known or {}
    group = known["group"] if "group" in known else _agent_group(session, interaction.agent_id)
    stamps = known["stamps"] if "stamps" in known else dict(session.execute(
        select(InteractionEvent.to_state, InteractionEvent.occurred_at)
        .where(InteractionEvent.interaction_id == interaction.id, InteractionEvent.kind == "transition",
               InteractionEvent.to_state.in_(("connected", "wrap_up")))
        .order_by(InteractionEvent.id)).all())  # the latest of each wins
    if "customer_name" in known:
        customer_name = known["customer_name"]
    else:
        customer_name = session.scalar(select(Customer.name).where(Customer.id == interaction.customer_id)) \
            if interaction.customer_id else None
    return OutWork(
        interaction_id=interaction.id, channel=interaction.channel, state=interaction.state, queue=interaction.queue,
        customer_id=interaction.customer_id, customer_name=customer_name, subject=interaction.subject,
        notes=interaction.notes, disposition=interaction.disposition, connected_at=_iso(stamps.get("connected")),
        wrap_up_started_at=_iso(stamps.get("wrap_up")) if interaction.state == "wrap_up" else None,
        wrap_up_s=desk_config.routing.agent_group(group).wrap_up_s,
        attributes={k: v for k, v in (interaction.attributes or {}).items() if isinstance(v, (str, int, float, bool))},
        screenpop=build_screenpop(session, interaction, desk_config) if with_screenpop else None)


def moved_work_item(session: Session, interaction_id: int, agent_id: int, moved: dict[str, Any], desk_config: Any,
                    *, with_screenpop: bool = True) -> OutWork | None:
    """The work item of a contact that has just moved to connected (``moved``: its ``interaction.state``
    event), read in one statement: the row with its customer's name and its agent's group, the connection
    time from the event itself. None when the contact is no longer this agent's open work. A contact
    that has moved on since (to wrap-up) is read in full."""
    row = session.execute(
        select(Interaction, Customer.name, StaffUser.agent_group)
        .outerjoin(Customer, Customer.id == Interaction.customer_id)
        .outerjoin(StaffUser, StaffUser.id == Interaction.agent_id)
        .where(Interaction.id == interaction_id)).first()
    if row is None or row[0].agent_id != agent_id or row[0].state not in ("connected", "wrap_up"):
        return None
    interaction, customer_name, group = row
    known: dict[str, Any] = {"group": group or "default", "customer_name": customer_name}
    if interaction.state == "connected" == moved.get("to") and moved.get("at"):
        known["stamps"] = {"connected": datetime.fromisoformat(moved["at"])}
    return work_item(session, interaction, desk_config, with_screenpop=with_screenpop, known=known)


def _agent_group(session: Session, agent_id: int | None) -> str:
    if agent_id is None:
        return "default"
    return session.scalar(select(StaffUser.agent_group).where(StaffUser.id == agent_id)) or "default"


def presence_event(agent_id: int, state: dict[str, Any]) -> OutPresence:
    return OutPresence(agent_id=agent_id, presence=state["presence"], reason=state.get("reason"),
                       since=state.get("since"), wrap_up_until=state.get("wrap_up_until"))


ALERT_EVENT = "alert.complaint_sla"
RECENT_ALERTS = timedelta(hours=12)  # a (re)connecting console shows the alerts it may have missed
RECENT_ALERTS_LIMIT = 20


def complaint_url(complaint_id: int) -> str | None:
    """The complaint's page (the complaints domain's ``complaints.detail``), when it is installed."""
    if "complaints.detail" not in current_app.view_functions:
        return None
    return current_app.url_map.bind("desk").build("complaints.detail", {"complaint_id": complaint_id})


def complaint_alert(payload: dict[str, Any]) -> OutComplaintAlert:
    """The ``alert.complaint_sla`` event as the console receives it (see ``app.complaints.notices``)."""
    complaint_id = int(payload["complaint_id"])
    notice_id = payload.get("notice_id")
    return OutComplaintAlert(
        notice_id=int(notice_id) if notice_id is not None else None, complaint_id=complaint_id,
        reference=str(payload.get("reference") or complaint_id), owner_id=payload.get("owner_id"),
        level=payload.get("level"), clock=str(payload.get("clock") or ""), point=str(payload.get("point") or ""),
        due=payload.get("due"), subject=payload.get("subject"), url=complaint_url(complaint_id))


def recent_alerts(session: Session, agent_id: int, *, now: datetime | None = None) -> list[OutComplaintAlert]:
    """The SLA alerts delivered to this agent's console in the last ``RECENT_ALERTS``, newest first."""
    since = (now or utcnow()) - RECENT_ALERTS
    rows = session.scalars(select(ComplaintNotice).where(
        ComplaintNotice.channel == "console", ComplaintNotice.recipient_kind == "staff",
        ComplaintNotice.recipient_id == agent_id, ComplaintNotice.status == "sent", ComplaintNotice.sent_at >= since)
        .order_by(ComplaintNotice.sent_at.desc(), ComplaintNotice.id.desc()).limit(RECENT_ALERTS_LIMIT))
    return [complaint_alert({**(n.data or {}), "notice_id": n.id, "complaint_id": n.complaint_id,
                             "subject": n.subject}) for n in rows]


def snapshot(session: Session, agent: StaffUser, desk_config: Any) -> OutSnapshot:
    """The agent's whole console state: presence, pending offers (with screen-pops), open work, today's
    figures, capacity and the load their offered and connected contacts use."""
    group = desk_config.routing.agent_group(agent.agent_group)
    offers = []
    for offer in routing.pending_offers(session, agent.id):
        event = offer_event(session, {"offer_id": offer.id, "interaction_id": offer.interaction_id,
                                      "agent_id": agent.id, "expires_at": offer.expires_at,
                                      "priority": offer.priority, "priority_reasons": offer.priority_reasons,
                                      "channel": offer.channel, "queue": offer.queue}, desk_config)
        if event is not None:
            offers.append(event)
    work = [work_item(session, i, desk_config) for i in open_work(session, agent.id)]
    load = routing_service.agent_load(session, agent.id, config=desk_config.routing)
    stats = OutStats(**today_stats(session, agent.id, agent.timezone).to_dict())
    return OutSnapshot(agent_id=agent.id, presence=presence_event(agent.id, routing.presence_of(session, agent.id)),
                       offers=offers, work=work, stats=stats, capacity=group.capacity, load=load,
                       alerts=recent_alerts(session, agent.id))
