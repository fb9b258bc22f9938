"""The console's calls into the routing service (``queues.service``, owned by the routing domain), in
one place, so the socket handlers and views never spell the routing API themselves.

The routing service owns offers and agent state; the console only asks it to change them and reads
them back for the agent's snapshot.
"""
from __future__ import annotations

import importlib
import logging
from types import ModuleType
from typing import Any

from sqlalchemy.orm import Session

log = logging.getLogger(__name__)


class RoutingUnavailable(RuntimeError):
    """The routing service module is not installed in this build."""


def _module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:  # a real import error inside the module: never hide it
            raise
        raise RoutingUnavailable(f"{name} is not available") from exc


def service() -> ModuleType:
    return _module("queues.service")


def models() -> ModuleType:
    return _module("queues.models")


def offer_errors() -> tuple[type[BaseException], ...]:
    """The routing service's typed errors for an offer that cannot be answered any more."""
    svc = service()
    return tuple(e for e in (getattr(svc, "OfferNotAvailable", None), getattr(svc, "RoutingError", None)) if e)


def set_presence(session: Session, agent_id: int, presence: str, reason: str | None) -> Any:
    return service().set_presence(session, agent_id, presence, reason=reason)


def accept_offer(session: Session, offer_id: int, agent_id: int) -> Any:
    return service().accept_offer(session, offer_id, agent_id)


def reject_offer(session: Session, offer_id: int, agent_id: int, cause: str = "reject") -> Any:
    return service().reject_offer(session, offer_id, agent_id, cause=cause)


def agent_disconnected(session: Session, agent_id: int) -> Any:
    """Tell routing the agent's console is gone. Without a routing service there is nothing to tell."""
    svc = _optional_service("agent_disconnected")
    return svc.agent_disconnected(session, agent_id) if svc else None


def release_agent(session: Session, interaction: Any) -> Any:
    """Tell routing the agent finished a contact (capacity returns after wrap-up). Without a routing
    service no capacity is held, so there is nothing to release."""
    svc = _optional_service("release_agent")
    return svc.release_agent(session, interaction) if svc else None


_warned: set[str] = set()


def _optional_service(what: str) -> ModuleType | None:
    try:
        return service()
    except RoutingUnavailable:
        if what not in _warned:
            _warned.add(what)
            log.warning("queues.service is not installed: %s is not reported to routing", what)
        return None


def pending_offers(session: Session, agent_id: int) -> list[Any]:
    """The agent's offers still waiting for an answer (lease not yet run out), oldest first."""
    from sqlalchemy import select

    from app.db import utcnow

    offer = models().Offer
    return list(session.scalars(select(offer).where(offer.agent_id == agent_id, offer.status == "pending",
                                                    offer.expires_at > utcnow()).order_by(offer.id)))


def presence_of(session: Session, agent_id: int) -> dict[str, Any]:
    """{presence, reason, since, wrap_up_until} of the agent; ``offline`` when routing has no row yet."""
    state = session.get(models().AgentState, agent_id)
    if state is None:
        return {"presence": "offline", "reason": None, "since": None, "wrap_up_until": None}
    return {"presence": state.presence, "reason": state.reason, "since": _iso(getattr(state, "since", None)),
            "wrap_up_until": _iso(getattr(state, "wrap_up_until", None))}


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def transfer(session: Session, interaction: Any, *, queue: str | None, agent_id: int | None, note: str,
             actor: str) -> Any:
    """Send a connected contact to another queue, or to one agent, with a note for whoever takes it."""
    if agent_id is not None:
        return service().transfer_to_agent(session, interaction, agent_id, note=note, actor=actor)
    return service().transfer_to_queue(session, interaction, queue, note=note, actor=actor)
