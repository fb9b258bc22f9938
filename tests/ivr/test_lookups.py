"""The database behind the IVR's self-service: numbers keyed as digits, callers hear only their own."""
from __future__ import annotations

from datetime import datetime, timedelta, UTC

import pytest

from app.complaints.models import Complaint
from app.crm.models import Shipment
from ivr.engine import CallerFacts
from ivr.lookups import DatabaseLookups, _digits_match
from tests.factories import make_customer, make_order

AT = datetime(2026, 11, 26, 20, 30, tzinfo=UTC)  # 04:30 next day in Shanghai


@pytest.mark.parametrize("reference, digits, matches", [
    ("CMP-2026-000123", "2026000123", True),
    ("CMP-2026-000123", "000123", True),
    ("CMP-2026-000123", "123", True),
    ("CMP-2026-000123", "23", False),
    ("ORD000045", "45", True),
    ("ORD000045", "0", False),
    ("10023", "10023", True),
    ("10023", "1002", False),
])
def test_digits_match(reference, digits, matches):
    assert _digits_match(reference, digits) is matches


def test_order_status_with_its_latest_shipment_in_the_desk_zone(db_session):
    owner = make_customer(db_session)
    order = make_order(db_session, owner, number="ORD000777", status="shipped", placed_at=AT)
    order.shipments = [Shipment(carrier="SF Express", tracking_number="SF1", status="in_transit", shipped_at=AT,
                                expected_at=AT + timedelta(days=2))]
    db_session.flush()
    lookups = DatabaseLookups(db_session, "Asia/Shanghai")
    found = lookups.lookup("order_status", "777", CallerFacts())
    assert found.fields["number"] == "ORD000777" and found.fields["status"] == "shipped"
    assert found.fields["placed_on"].isoformat() == "2026-11-27"
    assert found.fields["expected_on"].isoformat() == "2026-11-29"
    ship = lookups.lookup("shipment_status", "777", CallerFacts())
    assert ship.fields["carrier"] == "SF Express" and ship.fields["status"] == "in_transit"


def test_an_exact_number_reads_its_latest_shipment(db_session):
    owner = make_customer(db_session)
    order = make_order(db_session, owner, number="10077", status="shipped", placed_at=AT)
    order.shipments = [Shipment(carrier="SF Express", tracking_number="SF1", status="returned", shipped_at=AT,
                                delivered_at=AT + timedelta(days=1)),
                       Shipment(carrier="EMS", tracking_number="EMS2", status="in_transit",
                                shipped_at=AT + timedelta(days=3), expected_at=AT + timedelta(days=5))]
    db_session.flush()
    lookups = DatabaseLookups(db_session, "Asia/Shanghai")
    ship = lookups.lookup("shipment_status", "10077", CallerFacts(known=True, customer_id=owner.id))
    assert ship.fields == {"number": "10077", "status": "in_transit", "carrier": "EMS",
                           "expected_on": (AT + timedelta(days=5, hours=8)).date(), "delivered_on": None}
    assert lookups.lookup("order_status", "10077", CallerFacts(known=True, customer_id=owner.id + 1)) is None


def test_a_recognised_caller_hears_only_their_own_orders(db_session):
    owner, other = make_customer(db_session), make_customer(db_session)
    make_order(db_session, owner, number="55501")
    lookups = DatabaseLookups(db_session)
    assert lookups.lookup("order_status", "55501", CallerFacts(known=True, customer_id=other.id)) is None
    assert lookups.lookup("order_status", "55501", CallerFacts(known=True, customer_id=owner.id)) is not None
    assert lookups.lookup("order_status", "55501", CallerFacts()) is not None  # the number is the key


def test_an_order_without_shipments(db_session):
    make_order(db_session, make_customer(db_session), number="66601")
    lookups = DatabaseLookups(db_session)
    assert lookups.lookup("shipment_status", "66601", CallerFacts()) is None
    assert lookups.lookup("order_status", "66601", CallerFacts()).fields["expected_on"] is None
    assert lookups.lookup("order_status", "99999", CallerFacts()) is None


def _complaint(session, customer, reference: str, state: str) -> Complaint:
    complaint = Complaint(reference=reference, channel="voice", customer_id=customer.id, category="billing",
                          description="d", currency="CNY", level="P3", state=state, received_at=AT,
                          resolve_clock_started_at=AT, regulatory_profile="default", acknowledge_due_at=AT,
                          resolve_due_at=AT + timedelta(days=5))
    session.add(complaint)
    session.flush()
    return complaint


def test_complaint_status_by_the_digits_of_its_reference(db_session):
    customer = make_customer(db_session)
    _complaint(db_session, customer, "CMP-2026-000123", "investigating")
    _complaint(db_session, customer, "CMP-2026-000124", "closed")
    lookups = DatabaseLookups(db_session, "Asia/Shanghai")
    open_one = lookups.lookup("complaint_status", "123", CallerFacts(known=True, customer_id=customer.id))
    assert open_one.fields == {"reference": "CMP-2026-000123", "status": "investigating",
                               "due_on": (AT + timedelta(days=5, hours=8)).date()}
    closed = lookups.lookup("complaint_status", "2026000124", CallerFacts())
    assert closed.fields["status"] == "closed" and closed.fields["due_on"] is None
    stranger = make_customer(db_session)
    assert lookups.lookup("complaint_status", "123", CallerFacts(known=True, customer_id=stranger.id)) is None


@pytest.mark.parametrize("state, is_open", [("investigating", True), ("received", True), ("resolved", False),
                                            ("closed", False), ("rejected", False)])
def test_caller_facts_read_the_customer_and_their_open_complaints_in_one_statement(db_session, state, is_open):
    from sqlalchemy import event

    from app.extensions import db
    from ivr.calls import caller_facts
    from tests.factories import make_interaction

    customer = make_customer(db_session, tier="vip", language="zh")
    _complaint(db_session, customer, "CMP-2026-000777", state)
    call = make_interaction(db_session, customer=customer)
    db_session.commit()
    db_session.refresh(call)
    seen: list[str] = []

    def note(*args):
        seen.append(args[2])

    event.listen(db.engine, "before_cursor_execute", note)
    try:
        facts = caller_facts(db_session, call)
    finally:
        event.remove(db.engine, "before_cursor_execute", note)
    assert facts == CallerFacts(known=True, customer_id=customer.id, tier="vip", open_complaint=is_open,
                                language="zh")
    assert len(seen) == 1


def test_caller_facts_of_a_prospect_an_unknown_or_a_missing_customer(db_session):
    from ivr.calls import caller_facts
    from tests.factories import make_interaction

    prospect = make_customer(db_session, is_prospect=True, language="fr")
    known_in_french = make_customer(db_session, language="fr")
    assert caller_facts(db_session, make_interaction(db_session, customer=prospect)) == CallerFacts(
        customer_id=prospect.id)
    assert caller_facts(db_session, make_interaction(db_session)) == CallerFacts()
    assert caller_facts(db_session, make_interaction(db_session, customer=known_in_french)).language is None
    from app.interactions.models import Interaction

    gone = Interaction(channel="voice", customer_id=2**31 - 1)  # a customer row deleted meanwhile
    assert caller_facts(db_session, gone) == CallerFacts(customer_id=2**31 - 1)
