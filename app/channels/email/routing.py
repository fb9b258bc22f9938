"""Where a new email case goes, and the email channel's two calls into neighbouring domains: CRM
identification and the router's enqueue."""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.channels.email.config import EmailConfig, Mailbox
from app.crm.service import Identification, MatchStatus, identify, identify_emails
from app.interactions.models import Interaction
from queues.service import CustomerHistory, enqueue_contact

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


def enqueue(session: Session, interaction: Interaction, queue_name: str, *, actor: str, reason: str,
            customer: CustomerInfo | None = None, history: CustomerHistory | None = None) -> str:
    """Hand the case to the router (which records ``reason`` on the queued transition); returns
    "router". ``customer``: the case's customer as just read (the router then reads its tier from
    it); ``history``: that customer's routing history, read ahead for a batch. Does not commit."""
    own = customer is not None and customer.id == interaction.customer_id
    enqueue_contact(session, interaction, queue_name, actor=actor, customer_tier=customer.tier if own else None,
                    customer_is_new=own and customer.new, history=history if own else None)
    return "router"


@dataclass(frozen=True)
class CustomerInfo:
    """The few customer facts the email channel uses (read as columns: no relationship loading)."""

    id: int
    name: str
    language: str
    tier: str
    is_prospect: bool
    new: bool = field(default=False, compare=False)  # created in this transaction: it has no history


def customer_info(session: Session, customer_id: int | None) -> CustomerInfo | None:
    from app.crm.models import Customer

    if customer_id is None:
        return None
    row = session.execute(select(Customer.id, Customer.name, Customer.language, Customer.tier, Customer.is_prospect)
                          .where(Customer.id == customer_id)).first()
    return CustomerInfo(*row) if row else None


def identify_customer(session: Session, address: str, *, name: str, language: str,
                      create_prospect: bool, known: Mapping[str, Identification] | None = None,
                      prospect_id: int | None = None) -> CustomerInfo | None:
    """The customer a sender address belongs to; None when nobody (or several customers) match. The
    CRM's ``identify`` never guesses between several; it may create a prospect. ``known``: addresses a
    batch already identified together (``identify_senders``); the others are identified here.
    ``prospect_id``: an id reserved for a prospect (written with the caller's next flush)."""
    result = (known or {}).get(address) or identify(session, email=address, name=name or None, language=language,
                                                    create_prospect=create_prospect, prospect_id=prospect_id)
    if result.status == MatchStatus.MATCHED and len(result.candidates) == 1:
        # the CRM read these columns while matching: no second query
        found = result.candidates[0]
        return CustomerInfo(found.customer_id, found.name, found.language, found.tier, found.is_prospect)
    if result.status == MatchStatus.NEW_PROSPECT and result.candidates:  # written with the next flush
        found = result.candidates[0]
        return CustomerInfo(found.customer_id, found.name, found.language, found.tier, True, new=True)
    if result.status == MatchStatus.NEW_PROSPECT:
        from app.crm.models import Customer

        # the prospect was just created in this session: its identity-map copy, no query
        prospect = session.get(Customer, result.customer_id)
        if prospect is not None:
            return CustomerInfo(prospect.id, prospect.name, prospect.language, prospect.tier, prospect.is_prospect,
                                new=True)
    return customer_info(session, result.customer_id)


def identify_senders(session: Session, addresses: Iterable[str]) -> dict[str, Identification]:
    """The senders of a batch that match exactly one customer, identified in one query (the CRM's
    ``identify_emails``), for ``identify_customer(known=...)``."""
    return identify_emails(session, addresses)


def customer_addresses(session: Session, customer_id: int | None) -> set[str]:
    if customer_id is None:
        return set()
    from app.crm.models import CustomerEmail

    return set(session.scalars(select(CustomerEmail.email).where(CustomerEmail.customer_id == customer_id)))
