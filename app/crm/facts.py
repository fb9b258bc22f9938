"""Read every customer's value facts with a handful of set-based queries (no per-customer loops).

The SQL mirrors ``scoring.facts_from_orders`` exactly (tests hold them together): an order counts when
it is not cancelled or returned and ``now - window < placed_at <= now``; the recent half starts at
``now - window/2``. Contacts handled are interactions the customer had in the window, outbound follow-up
tasks excepted (they are our choice, not the customer's cost to serve).
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from app.crm import bridges
from app.crm.models import Customer, CustomerFeedback, Order
from app.crm.scoring import CustomerFacts
from app.interactions.models import Interaction

NOT_REVENUE = ("cancelled", "returned")


def gather_facts(session: Session, *, now: datetime, window_days: int) -> list[CustomerFacts]:
    """CustomerFacts for every customer (prospects included), ordered by customer id."""
    start = now - timedelta(days=window_days)
    middle = now - timedelta(days=window_days / 2)
    in_window = Order.placed_at > start
    earlier = (Order.placed_at > start) & (Order.placed_at <= middle)
    recent = Order.placed_at > middle

    def count_if(condition):
        return func.sum(case((condition, 1), else_=0))

    def sum_if(condition):
        return func.sum(case((condition, Order.total_cents), else_=0))

    orders = {row[0]: row[1:] for row in session.execute(
        select(Order.customer_id, func.min(Order.placed_at), func.max(Order.placed_at),
               count_if(in_window), sum_if(in_window), count_if(earlier), count_if(recent),
               sum_if(earlier), sum_if(recent))
        .where(Order.placed_at <= now, Order.status.not_in(NOT_REVENUE))
        .group_by(Order.customer_id))}
    contacts = dict(session.execute(
        select(Interaction.customer_id, func.count())
        .where(Interaction.customer_id.is_not(None), Interaction.created_at > start,
               Interaction.created_at <= now, Interaction.channel != "task")
        .group_by(Interaction.customer_id)).all())
    feedback: dict[int, dict] = {}
    for customer_id, kind, avg, count in session.execute(
            select(CustomerFeedback.customer_id, CustomerFeedback.kind, func.avg(CustomerFeedback.score),
                   func.count())
            .where(CustomerFeedback.recorded_at > start, CustomerFeedback.recorded_at <= now)
            .group_by(CustomerFeedback.customer_id, CustomerFeedback.kind)):
        feedback.setdefault(customer_id, {})[f"{kind}_avg"] = float(avg)
        feedback[customer_id][f"{kind}_count"] = int(count)
    complaints = bridges.complaint_facts(session, start)

    facts = []
    for customer_id, is_prospect in session.execute(select(Customer.id, Customer.is_prospect).order_by(Customer.id)):
        o = orders.get(customer_id)
        extra = {**feedback.get(customer_id, {}), **complaints.get(customer_id, {})}
        if o is None:
            facts.append(CustomerFacts(customer_id, is_prospect=is_prospect,
                                       contacts_handled=contacts.get(customer_id, 0), **extra))
            continue
        first, last, w_n, w_rev, e_n, r_n, e_rev, r_rev = o
        facts.append(CustomerFacts(
            customer_id, is_prospect=False, first_order_at=first, last_order_at=last,
            window_orders=int(w_n or 0), window_revenue_cents=int(w_rev or 0),
            earlier_half_orders=int(e_n or 0), recent_half_orders=int(r_n or 0),
            earlier_half_revenue_cents=int(e_rev or 0), recent_half_revenue_cents=int(r_rev or 0),
            contacts_handled=contacts.get(customer_id, 0), **extra))
    return facts

