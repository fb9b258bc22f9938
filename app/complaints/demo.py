"""Demo complaints for ``flask --app app demo seed``: one per level and at different steps, with proposals,
and one waiting for a supervisor's approval (sign in as lead@demo.desk to approve it).

Built through the services, so grades, deadlines, audit trails and notices are real. Idempotent: a demo
complaint already present (same customer, same description) is not raised again.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.models import StaffUser
from app.complaints import payouts, service
from app.complaints.compensation import FixedClaim
from app.complaints.models import Complaint
from app.crm.models import Customer, CustomerEmail, Order
from app.db import utcnow


@dataclass(frozen=True)
class DemoComplaint:
    customer_email: str
    owner_email: str | None  # None: raised by the customer, waiting in the shared pool
    channel: str
    category: str
    description: str
    scores: dict[str, int]
    days_ago: float
    steps: tuple[str, ...] = ()  # investigate, propose, issue, resolve, close
    proposal: dict = field(default_factory=dict)
    root_cause: str | None = None
    remedy_sought: str = ""
    amount_claimed_cents: int | None = None


DEMO = (
    DemoComplaint("jane@example.com", "agent1@demo.desk", "voice", "delivery_delay",
                  "Order arrived four days after the promised date; I had to take another day off work.",
                  {"harm": 1}, 9, ("investigate", "propose", "issue", "resolve"),
                  {"fixed": [FixedClaim("delivery_delay_per_day", days=4)], "include_goodwill": False,
                   "response_note": "The courier held the parcel at the depot; 10 per day late as a voucher."},
                  root_cause="carrier"),
    DemoComplaint("zhang.wei@example.cn", "agent2@demo.desk", "voice", "loss_or_damage",
                  "包裹送到时外箱压坏，电饭煲内胆变形无法使用。再不处理我就投诉到12315。",
                  {"harm": 1, "financial_loss": 2, "legal_risk": 2}, 3, ("investigate", "propose"),
                  {"proven_loss_cents": 8000, "method": "refund",
                   "response_note": "内胆损坏由运输造成，退还 80 元货款并给予补偿。"},
                  root_cause="warehouse", remedy_sought="退款", amount_claimed_cents=8000),
    DemoComplaint("li.na@example.cn", "agent2@demo.desk", "voice", "product_quality",
                  "热水壶底座漏电，使用时手被电击烫伤。", {"harm": 3}, 0.2, ("investigate",),
                  remedy_sought="退货并赔偿医药费"),
    DemoComplaint("tom@example.com", None, "email", "billing",
                  "I was charged twice for the same order.", {"financial_loss": 1}, 0.5),
    DemoComplaint("buyer@globex.example", "agent3@demo.desk", "voice", "staff_conduct",
                  "Your agent hung up on our buyer twice when we asked about a delayed invoice.",
                  {"harm": 1, "repeat_contact": 1}, 20, ("investigate", "propose", "resolve", "close"),
                  {"include_goodwill": False, "response_note": "Apology from the team lead; coaching for the agent."},
                  root_cause="staff_error"),
)


def _customer(session: Session, email: str) -> Customer | None:
    return session.scalar(select(Customer).join(CustomerEmail).where(CustomerEmail.email == email))


def _staff_id(session: Session, email: str | None) -> int | None:
    return session.scalar(select(StaffUser.id).where(StaffUser.email == email)) if email else None


def _raise(session: Session, config, item: DemoComplaint, customer: Customer) -> Complaint:
    now = utcnow()
    at = now - timedelta(days=item.days_ago)
    owner = _staff_id(session, item.owner_email)
    order = session.scalar(select(Order.id).where(Order.customer_id == customer.id).order_by(Order.placed_at.desc()))
    complaint = service.raise_complaint(
        session, config, channel=item.channel, customer_id=customer.id, category=item.category,
        description=item.description, actor_id=owner, actor=None if owner else f"customer:{customer.id}",
        order_id=order, remedy_sought=item.remedy_sought, amount_claimed_cents=item.amount_claimed_cents,
        scores=item.scores, owner_id=owner, at=at)
    actor = service.staff_actor(owner)
    step_at = at + timedelta(hours=2)
    proposal = None
    for step in item.steps:
        if step == "investigate":
            service.transition(session, config, complaint, "investigating", actor=actor, actor_id=owner,
                               note="called the customer back", at=step_at)
        elif step == "propose":
            proposal = payouts.propose_compensation(session, config, complaint, actor_id=owner, at=step_at,
                                                    **item.proposal)
        elif step == "issue":
            payouts.issue(session, config, proposal.id, at=step_at)
        elif step == "resolve":
            service.resolve(session, config, complaint, actor_id=owner, at=step_at,
                            note="Apologised and explained what we changed.")
        elif step == "close":
            service.close(session, config, complaint, actor_id=owner, at=step_at,
                          public_base_url=current_app.config.get("PUBLIC_BASE_URL", ""))
        step_at += timedelta(hours=20)
    if item.root_cause:
        service.set_root_cause(session, config, complaint, item.root_cause, actor_id=owner, at=step_at)
    return complaint


def seed_complaints(session: Session) -> str | None:
    """Raise the demo complaints that are missing (needs the demo customers and staff); returns a line
    for the seed command to print, or None when there was nothing to add. Does not commit."""
    config = current_app.extensions["desk.config"]
    created = []
    for item in DEMO:
        customer = _customer(session, item.customer_email)
        if customer is None:
            continue
        exists = session.scalar(select(Complaint.id).where(Complaint.customer_id == customer.id,
                                                           Complaint.description == item.description))
        if exists is None:
            created.append(_raise(session, config, item, customer))
    if not created:
        return None
    waiting = [c.reference for c in created if c.state == "awaiting_approval"]
    line = f"Demo complaints created: {len(created)} ({', '.join(c.reference for c in created)})"
    if waiting:
        line += f"; awaiting approval by a supervisor (lead@demo.desk): {', '.join(waiting)}"
    return line
