"""The IVR's door into routing: queue a call, keep its place as a callback, learn its position.

``queues.service`` (the routing engine's sole writer of offers and priorities) owns these moves.
Where it is not installed yet, or lacks a function, this module falls back to the plainest correct
behaviour through ``interactions.service.transition`` -- so a desk without the router still records
every state change -- and logs once that it did.
"""
from __future__ import annotations

import importlib
import logging
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app.interactions.models import Interaction
from app.interactions.service import transition
from app.interactions.states import State

log = logging.getLogger(__name__)
_warned: set[str] = set()


def routing_function(name: str):
    """``queues.service.<name>`` when the router provides it, else None (logged once)."""
    try:
        module = importlib.import_module("queues.service")
    except ImportError:
        module = None
    found = getattr(module, name, None) if module else None
    if found is None and name not in _warned:
        _warned.add(name)
        log.warning("queues.service.%s is not available; the IVR uses its fallback", name)
    return found


def enqueue_call(session: Session, interaction: Interaction, queue: str, *, skills: list[tuple[str, int]],
                 priority_bump: int, actor: str, reason: str = "ivr", now: datetime | None = None) -> None:
    """Queue the call in ``queue``. The node's extra skills and priority bump travel on the
    interaction (``required_skills`` gains them; ``attributes['priority_bump']``) for the router's
    priority rule to read. Does not commit."""
    attributes = dict(interaction.attributes or {})
    if priority_bump:
        attributes["priority_bump"] = priority_bump
    interaction.attributes = attributes
    extra = [{"skill": skill, "min_level": level} for skill, level in skills]
    interaction.required_skills = _merge_skills(list(interaction.required_skills or []), extra)
    enqueue_contact = routing_function("enqueue_contact")
    if enqueue_contact is not None:
        enqueue_contact(session, interaction, queue, actor=actor)
        return
    interaction.queue = queue
    interaction.priority = (interaction.priority or 0) + priority_bump
    reasons = list(interaction.priority_reasons or [])
    if priority_bump:
        reasons.append({"reason": "ivr", "points": priority_bump})
    interaction.priority_reasons = reasons
    transition(session, interaction, State.QUEUED, actor=actor, reason=reason, data={"queue": queue}, at=now)


def _merge_skills(current: list[dict[str, Any]], extra: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_skill = {item["skill"]: item for item in current}
    for item in extra:
        known = by_skill.get(item["skill"])
        if known is None or known.get("min_level", 1) < item["min_level"]:
            by_skill[item["skill"]] = item
    return list(by_skill.values())


def keep_place_for_callback(session: Session, interaction: Interaction, *, actor: str, number: str,
                            now: datetime | None = None) -> None:
    """The caller leaves the line but not the queue: queued -> callback_pending, same place
    (``routing_age_origin`` is untouched), with the number to ring. Does not commit."""
    attributes = dict(interaction.attributes or {})
    attributes["callback_number"] = number
    interaction.attributes = attributes
    transition(session, interaction, State.CALLBACK_PENDING, actor=actor, reason="callback_requested",
               data={"number": number}, at=now)


def abandon(session: Session, interaction: Interaction, *, actor: str, wait_s: int | None, where: str,
            now: datetime | None = None) -> None:
    """The caller hung up before being served: rescind any pending offer, record the wait. No commit."""
    rescind = routing_function("rescind_offers_for_abandoned")
    if rescind is not None and interaction.state == State.OFFERED:
        rescind(session, interaction)
    data: dict[str, Any] = {"where": where}
    if wait_s is not None:
        data["wait_s"] = wait_s
    transition(session, interaction, State.ABANDONED, actor=actor, reason="caller_hung_up", data=data, at=now)


def position_and_wait(session: Session, interaction: Interaction) -> tuple[int | None, int | None]:
    """(position in its queue counting from 1, estimated wait in seconds or None when the router
    cannot estimate well enough). Without the router: position by priority and age, no estimate."""
    ask = routing_function("position_and_wait")
    if ask is not None:
        return ask(session, interaction.id)
    if interaction.queue is None or interaction.routing_age_origin is None:
        return None, None
    waiting = (State.QUEUED, State.CALLBACK_PENDING)
    ahead = session.scalar(select(func.count()).select_from(Interaction).where(
        Interaction.queue == interaction.queue, Interaction.state.in_(waiting), Interaction.id != interaction.id,
        or_(Interaction.priority > interaction.priority,
            (Interaction.priority == interaction.priority)
            & (Interaction.routing_age_origin < interaction.routing_age_origin))))
    return int(ahead or 0) + 1, None
