"""The portal's and chat's door to routing: ``queues.service`` when it is installed, otherwise an
explicit fallback that queues the interaction through the state machine (so no contact is ever lost;
the router picks it up from the database when it starts).

Position and estimated wait come from ``queues.service.position_and_wait``; the fallback counts the
contacts ahead in the same queue and channel by routing age (priority ignored) and gives no estimate.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from app.interactions.models import Interaction
from app.interactions.service import transition
from app.interactions.states import State


def routing_service() -> ModuleType | None:
    """``queues.service`` when it provides what we call, else None (the fallback is used)."""
    try:
        module = importlib.import_module("queues.service")
    except ModuleNotFoundError as exc:
        if exc.name != "queues.service":  # a real import error inside the module: never hide it
            raise
        return None
    needed = ("enqueue_contact", "position_and_wait")
    return module if all(hasattr(module, name) for name in needed) else None


def enqueue(session: Session, interaction: Interaction, queue_name: str, *, actor: str) -> None:
    """Put ``interaction`` in ``queue_name`` to be offered to an agent. May commit (the routing service
    commits its offers); callers add everything that belongs to the contact first."""
    service = routing_service()
    if service is not None:
        service.enqueue_contact(session, interaction, queue_name, actor=actor)
        return
    interaction.queue = queue_name
    transition(session, interaction, State.QUEUED, actor=actor, reason=f"queued to {queue_name}")


def transfer(session: Session, interaction: Interaction, queue_name: str, *, actor: str, note: str = "") -> None:
    """Send a connected contact back to a queue (another agent will pick it up; its history stays)."""
    service = routing_service()
    if service is not None and hasattr(service, "transfer_to_queue"):
        service.transfer_to_queue(session, interaction, queue_name, actor=actor, note=note)
        return
    interaction.queue = queue_name
    interaction.agent_id = None
    transition(session, interaction, State.QUEUED, actor=actor, reason="transfer", data={"note": note})


def position_and_wait(session: Session, interaction: Interaction) -> tuple[int | None, float | None]:
    """(1-based position, estimated wait in seconds or None) while waiting; (None, None) otherwise."""
    if interaction.state not in (State.QUEUED, State.OFFERED):
        return None, None
    service = routing_service()
    if service is not None:
        return service.position_and_wait(session, interaction.id)
    origin = interaction.routing_age_origin
    ahead = session.scalar(select(func.count(Interaction.id)).where(
        Interaction.state == State.QUEUED, Interaction.queue == interaction.queue,
        Interaction.channel == interaction.channel, Interaction.id != interaction.id,
        or_(Interaction.routing_age_origin < origin,
            and_(Interaction.routing_age_origin == origin, Interaction.id < interaction.id))))
    return int(ahead or 0) + 1, None
