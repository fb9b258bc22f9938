"""What the console reads from routing, and the few routing decisions it composes.

The routing service (``queues.service``) owns offers and agent state; the socket handlers call it
directly for every change (presence, accept, reject, release, disconnect). This module keeps what is
the console's own: reading the agent's pending offers and presence for the snapshot without writing
anything, choosing between the service's two transfer functions, ending wrap-up early when the agent
completes it, and turning the service's typed errors into the stable codes the browser shows.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import utcnow
from app.interactions.models import Interaction
from queues import service as routing_service
from queues.models import AgentState, Offer
from queues.service import NotRoutable, OfferNotAvailable, RoutingError, UnknownAgent, UnknownQueue

__all__ = ["OfferNotAvailable", "RoutingError", "error_code", "finish_wrap_up", "pending_offers", "presence_of",
           "transfer"]

_CODES: tuple[tuple[type[RoutingError], str], ...] = (
    (OfferNotAvailable, "offer_gone"), (UnknownQueue, "unknown_queue"), (UnknownAgent, "unknown_agent"),
    (NotRoutable, "wrong_state"))


def error_code(exc: RoutingError) -> str:
    """The browser's code for a refusal by the routing service (``refused`` for any other RoutingError)."""
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code
    return "refused"


def pending_offers(session: Session, agent_id: int) -> list[Offer]:
    """The agent's offers still waiting for an answer (lease not yet run out), oldest first. Read-only."""
    return list(session.scalars(select(Offer).where(Offer.agent_id == agent_id, Offer.status == "pending",
                                                    Offer.expires_at > utcnow()).order_by(Offer.id)))


def presence_of(session: Session, agent_id: int) -> dict[str, Any]:
    """{presence, reason, since, wrap_up_until} of the agent; ``offline`` when routing has no row yet.
    Read-only (``queues.service.agent_state`` would create the row)."""
    state = session.get(AgentState, agent_id)
    if state is None:
        return {"presence": "offline", "reason": None, "since": None, "wrap_up_until": None}
    return {"presence": state.presence, "reason": state.reason, "since": _iso(state.since),
            "wrap_up_until": _iso(state.wrap_up_until)}


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def transfer(session: Session, interaction: Interaction, *, queue: str | None, agent_id: int | None, note: str,
             actor: str) -> Interaction:
    """Send a connected contact to another queue, or to one agent (held for them a while), with a note
    for whoever takes it. Raises UnknownQueue, UnknownAgent, NotRoutable. Does not commit."""
    if agent_id is not None:
        return routing_service.transfer_to_agent(session, interaction, agent_id, note=note, actor=actor)
    return routing_service.transfer_to_queue(session, interaction, queue, note=note, actor=actor)


def finish_wrap_up(session: Session, agent_id: int) -> bool:
    """The agent completed a wrap-up: when routing still holds them in its wrap-up timer and no other
    contact of theirs is in wrap-up, they are available again at once (the timer is the most an agent
    gets, not a wait imposed on one who is done). Returns whether presence changed. Does not commit."""
    state = session.get(AgentState, agent_id)
    if state is None or state.presence != "wrap_up":
        return False
    others = session.scalar(select(Interaction.id).where(Interaction.agent_id == agent_id,
                                                         Interaction.state == "wrap_up").limit(1))
    if others is not None:
        return False
    routing_service.set_presence(session, agent_id, "available")
    return True
