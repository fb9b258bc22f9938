"""Factories for test data: each returns a flushed model with sensible defaults."""
from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from app.auth.models import Role, StaffUser
from app.auth.service import create_staff
from app.crm.models import Customer, CustomerEmail, CustomerPhone, Order, Shipment
from app.db import utcnow
from app.interactions.models import Interaction
from app.interactions.service import create_interaction

PASSWORD = "correct-horse-battery"
_seq = itertools.count(1)


def make_staff(session, *, role: Role | str = Role.AGENT, email: str | None = None, name: str | None = None,
               skills: dict[str, int] | None = None, language: str = "en", password: str = PASSWORD,
               **extra) -> StaffUser:
    n = next(_seq)
    user = create_staff(session, email=email or f"staff{n}@test.desk", name=name or f"Staff {n}",
                        password=password, role=role, language=language,
                        skills={"general": 5} if skills is None else skills, **extra)
    session.flush()
    return user


def make_customer(session, *, name: str | None = None, tier: str = "ordinary", phone: str | None = None,
                  email: str | None = None, language: str = "en", **extra) -> Customer:
    n = next(_seq)
    customer = Customer(name=name or f"Customer {n}", tier=tier, language=language, **extra)
    if phone:
        customer.phones = [CustomerPhone(e164=phone)]
    if email:
        customer.emails = [CustomerEmail(email=email.lower())]
    session.add(customer)
    session.flush()
    return customer


def make_order(session, customer: Customer, *, number: str | None = None, total_cents: int = 10_000,
               placed_at: datetime | None = None, status: str = "shipped", shipment_status: str | None = None,
               currency: str = "CNY") -> Order:
    order = Order(customer_id=customer.id, number=number or f"ORD{next(_seq):06d}", total_cents=total_cents,
                  placed_at=placed_at or utcnow() - timedelta(days=3), status=status, currency=currency)
    if shipment_status:
        order.shipments = [Shipment(carrier="SF Express", tracking_number=f"SF{next(_seq):08d}",
                                    status=shipment_status, expected_at=utcnow() + timedelta(days=2))]
    session.add(order)
    session.flush()
    return order


def make_interaction(session, *, channel: str = "voice", customer: Customer | None = None,
                     external_ref: str | None = None, actor: str = "test", **extra) -> Interaction:
    interaction = create_interaction(session, channel=channel, actor=actor, external_ref=external_ref,
                                     customer_id=customer.id if customer else None, **extra)
    session.flush()
    return interaction


def totp_code(user: StaffUser, *, step_offset: int = 0) -> str:
    """The authenticator app's current code for ``user`` (enrolled or enrolling)."""
    import pyotp

    totp = pyotp.TOTP(user.totp_secret)
    return totp.generate_otp(totp.timecode(utcnow()) + step_offset)


def login(client, user: StaffUser, password: str = PASSWORD):
    """Sign ``user`` in through the real sign-in form, completing two-factor sign-in the way a person
    would (enrolling with an authenticator, or entering its code) when their role requires it."""
    from app.extensions import db

    response = client.post("/login", data={"email": user.email, "password": password})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    if response.headers["Location"].endswith("/login/verify"):
        db.session.refresh(user)
        user.totp_last_step = None  # tests sign in repeatedly within one 30 s window
        db.session.commit()
        response = client.post("/login/verify", data={"code": totp_code(user)})
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        return response
    from app.auth.twofactor import required_for

    config = client.application.extensions["desk.config"].security
    db.session.refresh(user)
    if required_for(user, config) and not user.has_second_factor:
        assert client.get("/account/2fa").status_code == 200
        db.session.refresh(user)
        enrolled = client.post("/account/2fa", data={"code": totp_code(user)})
        assert enrolled.status_code == 200 and b"recovery-codes" in enrolled.data, enrolled.data[:500]
    return response
