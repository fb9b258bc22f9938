"""The sole writer of an Interaction's state and its event log.

Callers own the transaction: ``transition`` adds the change and the event row to the session and
queues the realtime announcement, which ``app.realtime`` sends only after the commit succeeds.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import realtime
from app.db import utcnow
from app.interactions.models import Interaction, InteractionEvent
from app.interactions.states import State, check_transition

__all__ = ["create_interaction", "transition", "record_fact", "InvalidTransition"]

from app.interactions.states import InvalidTransition  # noqa: E402  (re-export for callers)


def create_interaction(session: Session, *, channel: str, actor: str, external_ref: str | None = None,
                       customer_id: int | None = None, language: str = "en", direction: str = "inbound",
                       subject: str | None = None, attributes: dict[str, Any] | None = None,
                       at: datetime | None = None) -> Interaction:
    """Add a new Interaction in state ``new`` with its first event row. Does not commit."""
    at = at or utcnow()
    interaction = Interaction(channel=channel, direction=direction, state=State.NEW, external_ref=external_ref,
                              customer_id=customer_id, language=language, subject=subject,
                              attributes=dict(attributes or {}), created_at=at, state_changed_at=at)
    session.add(interaction)
    session.flush()
    session.add(InteractionEvent(interaction_id=interaction.id, kind="created", from_state=None,
                                 to_state=State.NEW, actor=actor, reason="created", occurred_at=at,
                                 data={"channel": channel}))
    realtime.after_commit(session, "interaction.created", {"id": interaction.id, "channel": channel,
                                                           "state": State.NEW})
    return interaction


def transition(session: Session, interaction: Interaction, to_state: str, *, actor: str, reason: str = "",
               data: dict[str, Any] | None = None, at: datetime | None = None) -> InteractionEvent:
    """Move ``interaction`` to ``to_state`` and log it. Raises InvalidTransition (changing nothing)
    when the state machine forbids the move. Does not commit; the event is announced after commit."""
    target = check_transition(interaction.state, to_state)
    at = at or utcnow()
    previous = interaction.state
    interaction.state = target
    interaction.state_changed_at = at
    if target == State.QUEUED and interaction.routing_age_origin is None:
        interaction.routing_age_origin = at
    row = InteractionEvent(interaction_id=interaction.id, kind="transition", from_state=previous,
                           to_state=target, actor=actor, reason=reason, data=dict(data or {}), occurred_at=at)
    session.add(row)
    realtime.after_commit(session, "interaction.state", {
        "id": interaction.id, "channel": interaction.channel, "from": previous, "to": str(target),
        "queue": interaction.queue, "agent_id": interaction.agent_id, "reason": reason,
        "at": at.isoformat()})
    return row


def record_fact(session: Session, interaction: Interaction, kind: str, *, actor: str, reason: str = "",
                data: dict[str, Any] | None = None, at: datetime | None = None) -> InteractionEvent:
    """Log something that happened without a state change (hold, mute, IVR step, note)."""
    row = InteractionEvent(interaction_id=interaction.id, kind=kind, from_state=interaction.state,
                           to_state=interaction.state, actor=actor, reason=reason, data=dict(data or {}),
                           occurred_at=at or utcnow())
    session.add(row)
    return row


def events_of(session: Session, interaction_id: int) -> list[InteractionEvent]:
    return list(session.scalars(select(InteractionEvent).where(
        InteractionEvent.interaction_id == interaction_id).order_by(InteractionEvent.id)))
