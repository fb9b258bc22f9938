"""Where a new email case goes, and the two calls into neighbouring domains (CRM identification and
the router's enqueue), each with an explicit fallback while the neighbour's function is missing."""
from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.channels.email.config import EmailConfig, Mailbox
from app.interactions.models import Interaction
from app.interactions.service import transition
from app.interactions.states import State

log = logging.getLogger(__name__)


def choose_queue(config: EmailConfig, mailbox: Mailbox, sender: str, subject: str) -> str:
    """The first matching rule's queue, else the mailbox's queue (pure)."""
    domain = sender.rpartition("@")[2].lower()
    lowered = (subject or "").lower()
    for rule in config.rules:
        if rule.mailbox is not None and rule.mailbox != mailbox.name:
            continue
        if rule.from_domain is not None and rule.from_domain.lower() != domain:
            continue
        if rule.subject_contains and not any(word.lower() in lowered for word in rule.subject_contains):
            continue
        return rule.queue
    return mailbox.queue


def _neighbour(ref: str) -> Callable | None:
    """``module:function`` when the neighbouring domain provides it, else None (fallback in use)."""
    module, attr = ref.split(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return None


ENQUEUE_REF = "queues.service:enqueue_contact"
IDENTIFY_REF = "app.crm.service:identify"


def enqueue(session: Session, interaction: Interaction, queue_name: str, *, actor: str, reason: str) -> str:
    """Hand the case to the router; returns "router" or "fallback". Does not commit.

    Fallback (the router's ``enqueue_contact`` missing): set the queue and move the Interaction to
    ``queued`` through the state machine -- the router picks waiting contacts up from the database."""
    enqueue_contact = _neighbour(ENQUEUE_REF)
    if enqueue_contact is not None:
        enqueue_contact(session, interaction, queue_name, actor=actor)
        return "router"
    interaction.queue = queue_name
    transition(session, interaction, State.QUEUED, actor=actor, reason=reason, data={"queue": queue_name})
    return "fallback"


@dataclass(frozen=True)
class CustomerInfo:
    """The few customer facts the email channel uses (read as columns: no relationship loading)."""

    id: int
    name: str
    language: str
    tier: str
    is_prospect: bool


def customer_info(session: Session, customer_id: int | None) -> CustomerInfo | None:
    from app.crm.models import Customer

    if customer_id is None:
        return None
    row = session.execute(select(Customer.id, Customer.name, Customer.language, Customer.tier, Customer.is_prospect)
                          .where(Customer.id == customer_id)).first()
    return CustomerInfo(*row) if row else None


def identify_customer(session: Session, address: str, *, name: str, language: str,
                      create_prospect: bool) -> CustomerInfo | None:
    """The customer a sender address belongs to; None when nobody (or several customers) match. Uses the
    CRM's ``identify`` (which may create a prospect); the fallback matches CustomerEmail exactly."""
    from app.crm.models import CustomerEmail

    identify = _neighbour(IDENTIFY_REF)
    if identify is not None:
        result: Any = identify(session, email=address, name=name or None, language=language,
                               create_prospect=create_prospect)
        customer_id = getattr(result, "customer_id", None)
    else:
        ids = list(session.scalars(select(CustomerEmail.customer_id).where(CustomerEmail.email == address.lower())))
        customer_id = ids[0] if len(set(ids)) == 1 else None
    return customer_info(session, customer_id)


def customer_addresses(session: Session, customer_id: int | None) -> set[str]:
    if customer_id is None:
        return set()
    from app.crm.models import CustomerEmail

    return set(session.scalars(select(CustomerEmail.email).where(CustomerEmail.customer_id == customer_id)))
