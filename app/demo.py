"""``flask --app app demo seed``: a desk full of people and customers to try things with."""
from __future__ import annotations

import importlib
from datetime import timedelta

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from app.auth.models import Role, StaffUser
from app.auth.service import create_staff
from app.crm.models import Customer, CustomerEmail, CustomerPhone, Order, OrderLine, Shipment
from app.db import utcnow
from app.extensions import db

demo_cli = AppGroup("demo", help="Demo data.")
DEMO_PASSWORD = "demo-password-1"

STAFF = [
    # email, name, role, language, skills
    ("agent1@demo.desk", "Alice Agent", Role.AGENT, "en", {"general": 7, "billing": 5, "english": 8}),
    ("agent2@demo.desk", "王小明", Role.AGENT, "zh", {"general": 6, "mandarin": 9, "billing": 3}),
    ("agent3@demo.desk", "Bob Agent", Role.AGENT, "en", {"general": 5, "vip": 8, "english": 7, "mandarin": 4}),
    ("lead@demo.desk", "Tara Teamlead", Role.SUPERVISOR, "en", {"general": 8, "vip": 9, "billing": 8}),
    ("admin@demo.desk", "Adam Admin", Role.ADMIN, "en", {}),
]

# name, kind, language, phone, email, tier, orders (amount in yuan, days ago)
CUSTOMERS = [
    ("Li Na", "individual", "zh", "+8613800138000", "li.na@example.cn", "vip", [(48000, 5), (52000, 40), (30000, 90)]),
    ("Globex Ltd", "business", "en", "+441632960001", "buyer@globex.example", "major", [(12000, 10), (9000, 70)]),
    ("Zhang Wei", "individual", "zh", "+8613900139000", "zhang.wei@example.cn", "ordinary", [(800, 20), (650, 120)]),
    ("Jane Smith", "individual", "en", "+14155550100", "jane@example.com", "ordinary", [(420, 3)]),
    ("Tom Brown", "individual", "en", "+14155550101", "tom@example.com", "small", [(35, 200)]),
    ("Chen Jie", "distributor", "zh", "+8613700137000", "chen@reseller.example.cn", "major", [(15000, 15)]),
]


def _seed_staff(session) -> list[str]:
    lines = []
    for email, name, role, language, skills in STAFF:
        if session.scalar(select(StaffUser.id).where(StaffUser.email == email)):
            continue
        create_staff(session, email=email, name=name, password=DEMO_PASSWORD, role=role, language=language,
                     timezone="Asia/Shanghai" if language == "zh" else "Europe/London", skills=skills)
        lines.append(f"  {role:<10} {email:<22} {DEMO_PASSWORD}")
    return lines


def _seed_customers(session) -> int:
    if session.scalar(select(Customer.id).limit(1)):
        return 0
    now = utcnow()
    count = 0
    for index, (name, kind, language, phone, email, tier, orders) in enumerate(CUSTOMERS, start=1):
        customer = Customer(name=name, kind=kind, language=language, tier=tier)
        customer.phones = [CustomerPhone(e164=phone)]
        customer.emails = [CustomerEmail(email=email)]
        for number, (amount, days_ago) in enumerate(orders, start=1):
            placed = now - timedelta(days=days_ago)
            order = Order(number=f"{1000 + index * 10 + number}", placed_at=placed, status="shipped",
                          total_cents=amount * 100, currency="CNY")
            order.lines = [OrderLine(sku=f"SKU-{index}{number}", description="Demo item", quantity=1,
                                     unit_price_cents=amount * 100)]
            order.shipments = [Shipment(carrier="SF Express", tracking_number=f"SF{index}{number}0001",
                                        status="delivered" if days_ago > 7 else "in_transit",
                                        shipped_at=placed + timedelta(days=1),
                                        expected_at=placed + timedelta(days=4),
                                        delivered_at=placed + timedelta(days=3) if days_ago > 7 else None)]
            customer.orders.append(order)
        session.add(customer)
        count += 1
    return count


# Domains add "module:function(session) -> str | None" to extend the demo (the string is printed).
EXTRA_SEEDERS: list[str] = [
    "app.complaints.demo:seed_complaints",
    "app.crm.demo:seed_demo",  # after the complaints: value counts their open complaints as churn signals
]


def seed(session) -> list[str]:
    """Create the demo desk (idempotent) and return the lines to print."""
    logins = _seed_staff(session)
    created = _seed_customers(session)
    session.flush()
    notes = []
    for ref in EXTRA_SEEDERS:
        module, attr = ref.split(":")
        note = getattr(importlib.import_module(module), attr)(session)
        if note:
            notes.append(note)
    session.commit()
    out = [f"Demo customers created: {created}"] + notes
    if logins:
        out += ["Logins (role, email, password):"] + logins
    else:
        out += [f"Demo logins exist already; every demo password is {DEMO_PASSWORD}"]
    return out


@demo_cli.command("seed")
def seed_command() -> None:
    """Create demo staff, customers across value tiers, orders and shipments; print the logins."""
    for line in seed(db.session):
        click.echo(line)
    click.echo(f"Open {current_app.config['PUBLIC_BASE_URL']}/login")
