"""The demo population shows every tier, segment, lifecycle stage and loyalty type, with reasons."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.crm.demo import MIN_CUSTOMERS, seed_customers
from app.crm.models import CustomerValueSnapshot
from app.crm.service import customer_360


def test_demo_covers_every_value_category(db_session, desk_config):
    customers = seed_customers(db_session, 60, recompute_with=desk_config)
    assert len(customers) == 60

    def values(column):
        return set(db_session.scalars(select(column).distinct()))

    assert values(CustomerValueSnapshot.tier) == {"vip", "major", "ordinary", "small"}
    assert values(CustomerValueSnapshot.loyalty) == {"none", "latent", "inertia", "true"}
    assert values(CustomerValueSnapshot.segment) == {"mvc", "mgc", "bzc", "standard"}
    assert values(CustomerValueSnapshot.stage) == {"prospect", "new", "active", "at_risk", "lapsed"}
    signals = {s for row in db_session.scalars(select(CustomerValueSnapshot.churn_signals)) for s in row}
    assert {"falling_frequency", "low_csat"} <= signals
    vip = db_session.scalar(select(CustomerValueSnapshot).where(CustomerValueSnapshot.tier == "vip"))
    view = customer_360(db_session, vip.customer_id)
    assert view["value"]["tier"] == "vip" and view["value"]["reasons"]["tier"][0]["zh"]
    assert view["orders"][0]["shipments"] and view["satisfaction"]["csat_count"] == 2


def test_demo_is_deterministic_and_needs_enough_customers(db_session):
    with pytest.raises(ValueError, match="at least"):
        seed_customers(db_session, MIN_CUSTOMERS - 1)
    seed_customers(db_session, MIN_CUSTOMERS)
    assert db_session.scalar(select(func.count()).select_from(CustomerValueSnapshot)) == 0


def test_demo_seed_registers_the_crm_population_and_keeps_the_hand_made_customers(db_session):
    from app.crm.demo import DEMO_CUSTOMERS, seed_demo
    from app.crm.models import Customer, CustomerEmail
    from app.demo import CUSTOMERS, seed

    lines = seed(db_session)
    summary = next(line for line in lines if line.startswith("Demo CRM customers created"))
    assert f"created: {DEMO_CUSTOMERS}" in summary and "vip 2" in summary
    snapshots = db_session.scalars(select(CustomerValueSnapshot)).all()
    assert {s.tier for s in snapshots} == {"vip", "major", "ordinary", "small"}
    assert {s.loyalty for s in snapshots} == {"none", "latent", "inertia", "true"}
    assert all(s.explanation["tier"]["reasons"][0]["en"] and s.explanation["loyalty"]["reasons"][0]["zh"]
               for s in snapshots)
    for name, _kind, _lang, phone, email, _tier, orders in CUSTOMERS:  # still there, as app/demo.py made them
        customer = db_session.scalar(select(Customer).join(CustomerEmail).where(CustomerEmail.email == email))
        assert customer.name == name and [p.e164 for p in customer.phones] == [phone]
        assert len(customer.orders) == len(orders)
    li_na = db_session.scalar(select(Customer).join(CustomerEmail).where(CustomerEmail.email == "li.na@example.cn"))
    assert li_na.tier == "vip"  # the VIP the other demos (routing, complaints) rely on
    assert seed_demo(db_session) is None  # idempotent
    seed(db_session)
    assert db_session.scalar(select(func.count()).select_from(Customer)) == DEMO_CUSTOMERS + len(CUSTOMERS)
