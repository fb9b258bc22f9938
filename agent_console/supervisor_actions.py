"""What a supervisor may do from the wallboard: change an agent's presence and move a waiting contact to
another queue or to one agent. Checks here, the change itself in the routing service (``queues.service``,
through ``agent_console.routing``), which commits and announces."""
from __future__ import annotations

from sqlalchemy.orm import Session

from agent_console import routing
from app.auth.models import Role, StaffUser
from app.interactions.models import Interaction
from app.interactions.states import WAITING

PRESENCES = ("available", "break", "offline")


class SupervisorActionError(Exception):
    """A refused wallboard action; ``code`` is what the page shows (translated there)."""

    def __init__(self, code: str, detail: str = ""):
        self.code = code
        super().__init__(detail or code)


def change_agent_state(session: Session, agent_id: int, presence: str, reason: str | None, *, actor: str) -> None:
    """Set an agent's presence for them. Raises SupervisorActionError (unknown_agent, bad_presence,
    reason_required, routing_unavailable)."""
    if presence not in PRESENCES:
        raise SupervisorActionError("bad_presence")
    if presence == "break" and not (reason or "").strip():
        raise SupervisorActionError("reason_required")
    agent = session.get(StaffUser, agent_id)
    if agent is None or agent.role != Role.AGENT or not agent.active:
        raise SupervisorActionError("unknown_agent")
    reason = f"{(reason or '').strip()[:48]} ({actor})" if presence == "break" else None
    try:
        routing.set_presence(session, agent_id, presence, reason)
    except routing.RoutingUnavailable as exc:
        raise SupervisorActionError("routing_unavailable", str(exc)) from exc


def move_contact(session: Session, config, interaction_id: int, *, queue: str | None, agent_id: int | None,
                 note: str, actor: str) -> None:
    """Send a waiting contact to another queue, or offer it to one agent, keeping its place (the routing
    service keeps ``routing_age_origin``). Raises SupervisorActionError (unknown_contact, not_waiting,
    unknown_queue, unknown_agent, same_queue, target_required, routing_unavailable)."""
    interaction = session.get(Interaction, interaction_id)
    if interaction is None:
        raise SupervisorActionError("unknown_contact")
    if interaction.state not in WAITING:
        raise SupervisorActionError("not_waiting")
    if (queue is None) == (agent_id is None):
        raise SupervisorActionError("target_required")
    if queue is not None:
        if queue not in {q.name for q in config.routing.queues}:
            raise SupervisorActionError("unknown_queue")
        if queue == interaction.queue:
            raise SupervisorActionError("same_queue")
    else:
        agent = session.get(StaffUser, agent_id)
        if agent is None or agent.role != Role.AGENT or not agent.active:
            raise SupervisorActionError("unknown_agent")
    try:
        routing.transfer(session, interaction, queue=queue, agent_id=agent_id, note=note[:500], actor=actor)
    except routing.RoutingUnavailable as exc:
        raise SupervisorActionError("routing_unavailable", str(exc)) from exc
