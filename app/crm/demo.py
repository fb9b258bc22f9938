"""Demo customers that show every tier, segment, lifecycle stage and loyalty type, each with its reasons.

``seed_customers(session, n)`` builds a deterministic population whose revenue ranks land customers in
every tier of the pyramid, then recomputes value so the console shows stored explanations at once.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.crm.models import (
    Customer, CustomerConsent, CustomerContact, CustomerEmail, CustomerFeedback, CustomerPhone, CustomerTag, Order,
    OrderLine, Shipment,
)
from app.db import utcnow
from app.interactions.service import create_interaction, transition

MIN_CUSTOMERS = 40  # below this the 1% / 5% cuts leave the major tier empty
# With the six hand-made customers of app/demo.py this makes 120 buyers, so the pyramid's top 1% holds two
# places: the demo's biggest spender and Li Na, whom the other domains' demos treat as the VIP.
DEMO_CUSTOMERS = 120
SURNAMES = ["Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Zhao", "Huang", "Zhou", "Wu", "Smith", "Jones",
            "Brown", "Taylor", "Wilson", "Evans"]
GIVEN = ["Wei", "Fang", "Na", "Min", "Jing", "Lei", "Yan", "Tao", "Anna", "James", "Olivia", "Noah", "Emma", "Leo"]
PRODUCTS = [("TEA-01", "Longjing green tea 250 g", 16800), ("CUP-02", "Porcelain tea set", 42000),
            ("KET-03", "Electric kettle", 29900), ("GIFT-04", "Gift box", 8800), ("SUB-05", "Tea subscription", 9900)]


@dataclass(frozen=True)
class Archetype:
    """What a demo customer is meant to show; orders are (days ago, amount in yuan)."""

    label: str
    orders: tuple[tuple[int, int], ...]
    csat: tuple[int, ...] = ()
    nps: tuple[int, ...] = ()
    contacts: int = 0
    kind: str = "individual"


def _archetypes(rank: int, n_buyers: int, rng: random.Random) -> Archetype:
    """The archetype for the customer at revenue position ``rank`` (0 = biggest)."""
    if rank == 0:  # VIP, true loyalty, most valuable
        return Archetype("vip_true", tuple((d, 60000) for d in (5, 40, 75, 120, 160, 220, 300)), csat=(5, 5),
                         nps=(10,))
    if rank < max(2, round(n_buyers * 0.05)):  # major: one loyal, one buying out of habit and drifting
        if rank % 2:
            return Archetype("major_inertia", ((20, 26000), (260, 30000), (300, 28000), (330, 30000)), csat=(2, 2),
                             contacts=3, kind="business")
        return Archetype("major_true", ((10, 30000), (80, 26000), (150, 25000), (250, 20000)), csat=(5,),
                         kind="distributor")
    if rank < round(n_buyers * 0.20):  # ordinary: growth potential, or a latent fan
        if rank % 3 == 0:
            return Archetype("ordinary_growing", ((300, 2000), (60, 6000), (20, 8000)), csat=(4,))
        if rank % 3 == 1:
            return Archetype("ordinary_latent", ((40, 12000 + rank * 10),), csat=(5,), nps=(9,))
        return Archetype("ordinary_new", ((30, 9000 + rank * 10),))
    bucket = rank % 6
    amount = 300 + rng.randint(0, 900)
    return [
        Archetype("small_costly", ((30, 150),), csat=(2,), contacts=20),  # below zero: costs exceed margin
        Archetype("small_at_risk", ((200, amount), (250, amount))),
        Archetype("small_lapsed", ((400, amount), (500, amount))),
        Archetype("small_latent", ((90, amount),), csat=(5,)),
        Archetype("small_none", ((120, amount),)),
        Archetype("small_inertia", ((15, amount // 3), (100, amount // 3), (170, amount // 3)), csat=(3,)),
    ][bucket]


def seed_customers(session: Session, n: int = 60, *, seed: int = 20260601, now: datetime | None = None,
                   recompute_with: Any = None) -> list[Customer]:
    """Create ``n`` demo customers (about 5% prospects) with orders, shipments, survey answers and past
    contacts so every tier, segment, lifecycle stage and loyalty type appears. With ``recompute_with``
    (the DeskConfig) their value is computed and stored at once. Flushes and, when recomputing, commits.
    Raises ValueError below MIN_CUSTOMERS."""
    if n < MIN_CUSTOMERS:
        raise ValueError(f"n: at least {MIN_CUSTOMERS} customers are needed for every tier to appear")
    rng = random.Random(seed)
    now = now or utcnow()
    prospects = max(2, n // 20)
    buyers = n - prospects
    created = []
    for index in range(n):
        name = f"{rng.choice(GIVEN)} {rng.choice(SURNAMES)}"
        customer = Customer(name=name, language="zh" if index % 2 else "en", tier="small",
                            timezone="Asia/Shanghai" if index % 2 else "Europe/London",
                            is_prospect=index >= buyers, created_at=now - timedelta(days=900), attributes={})
        customer.phones = [CustomerPhone(e164=f"+86139{index:08d}")]
        customer.emails = [CustomerEmail(email=f"demo{index}@example.cn")]
        session.add(customer)
        session.flush()
        if index < buyers:
            _history(session, customer, _archetypes(index, buyers, rng), index, rng, now)
        else:
            customer.attributes = {"preferred_contact": "email"}
        created.append(customer)
    session.flush()
    if recompute_with is not None:
        from app.crm.jobs import recompute_values

        session.commit()
        recompute_values(session, recompute_with, now=now, trigger="on_demand")
    return created


def seed_demo(session: Session) -> str | None:
    """``flask --app app demo seed`` hook (app/demo.py EXTRA_SEEDERS): add the demo population and compute
    every customer's value with the desk's live config, the hand-made demo customers included, so each
    tier and loyalty type appears with its explanation. Idempotent: once seeded (the first demo
    customer's email exists) nothing is added or recomputed and None is returned. Commits."""
    from flask import current_app

    from app.crm.models import CustomerValueSnapshot

    if session.scalar(select(CustomerEmail.id).where(CustomerEmail.email == "demo0@example.cn")) is not None:
        return None
    created = seed_customers(session, DEMO_CUSTOMERS, recompute_with=current_app.extensions["desk.config"])
    tiers = dict(session.execute(select(CustomerValueSnapshot.tier, func.count())
                                 .group_by(CustomerValueSnapshot.tier)).all())
    loyalty = dict(session.execute(select(CustomerValueSnapshot.loyalty, func.count())
                                   .group_by(CustomerValueSnapshot.loyalty)).all())
    return (f"Demo CRM customers created: {len(created)}; value computed -- tiers "
            + ", ".join(f"{t} {tiers.get(t, 0)}" for t in ("vip", "major", "ordinary", "small"))
            + "; loyalty " + ", ".join(f"{k} {loyalty.get(k, 0)}" for k in ("true", "inertia", "latent", "none"))
            + " (see /customers/)")


def _history(session: Session, customer: Customer, archetype: Archetype, index: int, rng: random.Random,
             now: datetime) -> None:
    customer.kind = archetype.kind
    customer.attributes = {"loyalty_card": f"LC{index:05d}",
                           "preferred_contact": rng.choice(["phone", "email", "chat"])}
    if archetype.kind != "individual":
        customer.organisation = f"{customer.name.split()[-1]} Trading Co."
        session.add(CustomerContact(customer_id=customer.id, name=f"Buyer for {customer.name}", role="purchasing",
                                    phone_e164=f"+86137{index:08d}", is_primary=True))
    session.add(CustomerTag(customer_id=customer.id, tag=f"demo-{archetype.label.replace('_', '-')}"))
    session.add(CustomerConsent(customer_id=customer.id, purpose="marketing", granted=index % 3 != 0,
                                source="import", updated_at=now))
    for number, (days_ago, yuan) in enumerate(archetype.orders):
        placed = now - timedelta(days=days_ago, hours=rng.randint(0, 20))
        sku, description, price = PRODUCTS[(index + number) % len(PRODUCTS)]
        quantity = max(1, yuan * 100 // price)
        order = Order(customer_id=customer.id, number=f"D{index:04d}-{number + 1}", placed_at=placed,
                      status="delivered" if days_ago > 7 else "shipped", total_cents=quantity * price,
                      currency="CNY")
        order.lines = [OrderLine(sku=sku, description=description, quantity=quantity, unit_price_cents=price)]
        delivered = placed + timedelta(days=3) if days_ago > 7 else None
        order.shipments = [Shipment(carrier="SF Express", tracking_number=f"SF{index:05d}{number:03d}",
                                    status="delivered" if delivered else "in_transit",
                                    shipped_at=placed + timedelta(days=1), expected_at=placed + timedelta(days=4),
                                    delivered_at=delivered)]
        session.add(order)
    for k, score in enumerate(archetype.csat):
        session.add(CustomerFeedback(customer_id=customer.id, kind="csat", score=score,
                                     recorded_at=now - timedelta(days=10 + k)))
    for k, score in enumerate(archetype.nps):
        session.add(CustomerFeedback(customer_id=customer.id, kind="nps", score=score,
                                     recorded_at=now - timedelta(days=12 + k)))
    for k in range(archetype.contacts):
        at = now - timedelta(days=5 + 7 * k)
        contact = create_interaction(session, channel=("voice", "email", "chat")[k % 3], actor="demo",
                                     customer_id=customer.id, language=customer.language,
                                     subject="Where is my order?" if k % 2 else "Question about my invoice", at=at)
        transition(session, contact, "closed", actor="demo", reason="demo history", at=at + timedelta(minutes=6))
