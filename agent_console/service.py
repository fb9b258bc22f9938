"""What an agent does to their own work from the console: notes, wrap-up with a disposition, transfer,
follow-up tasks, linking a contact to a known customer, and reading back their open work and today's figures.

Services take a Session and plain values and never commit (the socket handler or view that calls them
owns the transaction and commits, after which ``app.realtime`` announces the changes). Every function
that touches an interaction first checks it is this agent's open work and raises ``NotYourWork``
otherwise, so one agent can never change another's contact by guessing an id.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app import realtime
from app.crm.models import Customer, CustomerEmail, CustomerPhone, Order
from app.db import utcnow
from app.interactions.models import Interaction, InteractionEvent
from app.interactions.service import create_interaction, record_fact, transition
from agent_console.stats import DayStats, EventRow, agent_day_stats, day_start

OPEN_STATES = ("connected", "wrap_up")
SEARCH_LIMIT = 10


class ConsoleError(Exception):
    """A console action refused; ``code`` is stable for the browser, the message is for logs."""

    code = "console_error"

    def details(self) -> dict[str, Any]:
        """Extra fields for the browser's error acknowledgement (none by default)."""
        return {}


class NotYourWork(ConsoleError):
    code = "not_your_work"


class WrongState(ConsoleError):
    code = "wrong_state"


class UnknownDisposition(ConsoleError):
    code = "unknown_disposition"


class UnknownCustomer(ConsoleError):
    code = "unknown_customer"


def actor_for(agent_id: int) -> str:
    return f"agent:{agent_id}"


def own_work(session: Session, agent_id: int, interaction_id: int, *, states=OPEN_STATES) -> Interaction:
    """The interaction if it is ``agent_id``'s and in one of ``states``; raises NotYourWork / WrongState."""
    interaction = session.get(Interaction, interaction_id)
    if interaction is None or interaction.agent_id != agent_id:
        raise NotYourWork(f"interaction {interaction_id} is not agent {agent_id}'s")
    if interaction.state not in states:
        raise WrongState(f"interaction {interaction_id} is {interaction.state}, not one of {states}")
    return interaction


def open_work(session: Session, agent_id: int) -> list[Interaction]:
    """The agent's connected and wrap-up interactions, oldest first (the workspace tabs)."""
    return list(session.scalars(select(Interaction).where(Interaction.agent_id == agent_id,
                                                          Interaction.state.in_(OPEN_STATES))
                                .order_by(Interaction.state_changed_at, Interaction.id)))


def _announce(session: Session, interaction: Interaction, change: str) -> None:
    realtime.after_commit(session, "console.work", {"interaction_id": interaction.id,
                                                    "agent_id": interaction.agent_id, "change": change})


def save_note(session: Session, agent_id: int, interaction_id: int, text: str) -> Interaction:
    """Replace the interaction's notes (the agent's working notes, kept with the contact)."""
    interaction = own_work(session, agent_id, interaction_id)
    interaction.notes = text
    record_fact(session, interaction, "note", actor=actor_for(agent_id), data={"chars": len(text)})
    _announce(session, interaction, "note")
    return interaction


def start_wrap_up(session: Session, agent_id: int, interaction_id: int, *, at: datetime | None = None) -> Interaction:
    """The conversation is over (the agent ended it, or the customer left): connected -> wrap_up.
    Idempotent: an interaction already in wrap-up is returned unchanged."""
    interaction = own_work(session, agent_id, interaction_id)
    if interaction.state == "wrap_up":
        return interaction
    transition(session, interaction, "wrap_up", actor=actor_for(agent_id), reason="conversation ended",
               data={"agent_id": agent_id}, at=at)
    return interaction


def complete_wrap_up(session: Session, agent_id: int, interaction_id: int, disposition: str, notes: str,
                     desk_config: Any, *, at: datetime | None = None) -> Interaction:
    """Record the disposition (a code from config.yaml ``dispositions``) and notes, and close the
    interaction (from connected or wrap-up). Raises UnknownDisposition, NotYourWork, WrongState."""
    codes = {d.code for d in desk_config.dispositions}
    if disposition not in codes:
        raise UnknownDisposition(f"disposition {disposition!r} is not one of {sorted(codes)}")
    interaction = own_work(session, agent_id, interaction_id)
    at = at or utcnow()
    if interaction.state == "connected":
        start_wrap_up(session, agent_id, interaction_id, at=at)
    interaction.disposition = disposition
    if notes:
        interaction.notes = notes
    transition(session, interaction, "closed", actor=actor_for(agent_id), reason="wrap-up complete",
               data={"agent_id": agent_id, "disposition": disposition}, at=at)
    return interaction


def create_follow_up(session: Session, agent_id: int, interaction_id: int, due_at: datetime, note: str) -> Interaction:
    """A follow-up task for this contact, due at ``due_at``: a ``task`` Interaction owned by the agent
    (``attributes.owner_agent_id``) and linked to the original. Routed when due by ``jobs.route_follow_up``."""
    original = own_work(session, agent_id, interaction_id, states=OPEN_STATES + ("closed",))
    task = create_interaction(session, channel="task", actor=actor_for(agent_id), direction="outbound",
                              customer_id=original.customer_id, language=original.language,
                              subject=note[:200], attributes={"follow_up_of": original.id, "due_at": due_at.isoformat(),
                                                              "owner_agent_id": agent_id, "note": note})
    task.queue = original.queue
    record_fact(session, original, "follow_up", actor=actor_for(agent_id),
                data={"task_id": task.id, "due_at": due_at.isoformat()})
    return task


def search_customers(session: Session, query: str, *, limit: int = SEARCH_LIMIT) -> list[dict[str, Any]]:
    """Customers (not prospects) whose name, phone, email or order number contains ``query``
    (case-insensitive), best tier first. For the "link to existing customer" search."""
    needle = f"%{query.strip().lower()}%"
    digits = "".join(ch for ch in query if ch.isdigit())
    by_phone = select(CustomerPhone.customer_id).where(CustomerPhone.e164.like(f"%{digits}%")) if len(digits) >= 4 \
        else None
    conditions = [Customer.name.ilike(needle),
                  Customer.id.in_(select(CustomerEmail.customer_id).where(CustomerEmail.email.like(needle))),
                  Customer.id.in_(select(Order.customer_id).where(Order.number.ilike(needle)))]
    if by_phone is not None:
        conditions.append(Customer.id.in_(by_phone))
    rows = session.scalars(select(Customer).where(Customer.is_prospect.is_(False), or_(*conditions))
                           .order_by(Customer.name, Customer.id).limit(limit * 4))
    rank = {"vip": 0, "major": 1, "ordinary": 2, "small": 3}
    found = sorted(rows, key=lambda c: (rank.get(c.tier, 9), c.name, c.id))[:limit]
    return [{"id": c.id, "name": c.name, "tier": c.tier, "kind": c.kind, "organisation": c.organisation,
             "phones": [p.e164 for p in c.phones], "emails": [e.email for e in c.emails]} for c in found]


def link_customer(session: Session, agent_id: int, interaction_id: int, customer_id: int) -> Interaction:
    """Attach the contact to an existing customer. When it was attached to a prospect (created from this
    caller's number), the prospect is merged into the customer, so the number identifies them next time.
    Raises UnknownCustomer, NotYourWork, WrongState."""
    interaction = own_work(session, agent_id, interaction_id, states=OPEN_STATES + ("offered",))
    customer = session.get(Customer, customer_id)
    if customer is None or customer.is_prospect:
        raise UnknownCustomer(f"customer {customer_id} does not exist or is a prospect")
    previous = session.get(Customer, interaction.customer_id) if interaction.customer_id else None
    previous_id = previous.id if previous is not None else None
    if previous is not None and previous_id != customer_id and previous.is_prospect:
        from app.crm.service import merge_customers

        merge_customers(session, customer_id, previous_id, actor=actor_for(agent_id))
    interaction.customer_id = customer_id
    record_fact(session, interaction, "customer_linked", actor=actor_for(agent_id),
                data={"customer_id": customer_id, "previous_customer_id": previous_id})
    _announce(session, interaction, "customer")
    return interaction


def today_stats(session: Session, agent_id: int, timezone: str, *, now: datetime | None = None) -> DayStats:
    """The agent's figures since local midnight (see ``agent_console.stats``)."""
    now = now or utcnow()
    since = day_start(now, timezone)
    touched = select(InteractionEvent.interaction_id).where(
        InteractionEvent.occurred_at >= since, InteractionEvent.kind == "transition",
        or_(InteractionEvent.actor.in_((actor_for(agent_id), f"staff:{agent_id}")),
            InteractionEvent.data["agent_id"].as_integer() == agent_id)).distinct()
    ids = set(session.scalars(touched))
    if not ids:
        return DayStats(day_started_at=since)
    channels = dict(session.execute(select(Interaction.id, Interaction.channel).where(Interaction.id.in_(ids))).all())
    rows = session.execute(select(InteractionEvent).where(InteractionEvent.interaction_id.in_(ids),
                                                          InteractionEvent.kind == "transition")
                           .order_by(InteractionEvent.interaction_id, InteractionEvent.id)).scalars()
    events = [EventRow(r.interaction_id, r.from_state, r.to_state, r.actor, r.data or {}, r.occurred_at) for r in rows]
    return agent_day_stats(events, channels, agent_id, since=since, now=now)
