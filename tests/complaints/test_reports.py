"""Report figures against values computed by hand from a small, fixed history."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.complaints import payouts, reports, service
from app.complaints.compensation import FixedClaim
from tests.factories import make_customer, make_interaction, make_staff

T0 = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)  # Monday 10:00 Shanghai
START, END = T0, T0 + timedelta(days=28)


@pytest.fixture()
def history(db_session, desk_config):
    agent = make_staff(db_session, role="agent")
    vip = make_customer(db_session, tier="vip")
    small = make_customer(db_session, tier="small")
    old = service.raise_complaint(db_session, desk_config, channel="email", customer_id=small.id,
                                  category="billing", description="wrong bill", scores={"harm": 1},
                                  actor_id=agent.id, at=T0 - timedelta(days=40))  # before the period
    a = service.raise_complaint(db_session, desk_config, channel="voice", customer_id=vip.id,
                                category="delivery_delay", description="late", scores={"harm": 1},
                                actor_id=agent.id, at=T0 + timedelta(hours=1))
    b = service.raise_complaint(db_session, desk_config, channel="email", customer_id=small.id,
                                category="delivery_delay", description="late again",
                                scores={"harm": 2, "legal_risk": 1},
                                actor_id=agent.id, at=T0 + timedelta(days=1))
    c = service.raise_complaint(db_session, desk_config, channel="chat", customer_id=vip.id,
                                category="billing", description="double charge", scores={"harm": 3},
                                actor_id=agent.id, at=T0 + timedelta(days=2))
    c.root_cause = "payment_gateway"
    # a: resolved after 2 hours with a 20.00 fixed amount (self-approved) issued
    service.transition(db_session, desk_config, a, "investigating", actor="t", at=a.received_at)
    proposal = payouts.propose_compensation(db_session, desk_config, a, actor_id=agent.id, include_goodwill=False,
                                            fixed=[FixedClaim("delivery_delay_per_day", days=2)],
                                            at=a.received_at + timedelta(hours=1))
    payouts.issue(db_session, desk_config, proposal.id, at=a.received_at + timedelta(hours=1))
    service.resolve(db_session, desk_config, a, actor_id=agent.id, note="ok", at=a.received_at + timedelta(hours=2))
    # b: rejected after 20 days (P3 deadline is 10 business days: late)
    service.reject(db_session, desk_config, b, actor_id=agent.id, reasons="no fault",
                   at=b.received_at + timedelta(days=20))
    for n in range(37):  # 40 inbound contacts with the three complaints' own calls/chats counted below
        make_interaction(db_session, channel="voice", at=T0 + timedelta(hours=n))
    make_interaction(db_session, channel="task", at=T0 + timedelta(hours=3))  # outbound task: not a contact
    make_interaction(db_session, channel="voice", at=T0 - timedelta(days=3))  # before the period
    for n in range(3):
        make_interaction(db_session, channel="email", at=T0 + timedelta(days=5, hours=n))
    db_session.commit()
    return {"old": old, "a": a, "b": b, "c": c}


def test_volumes(db_session, history):
    figures = reports.volumes(db_session, START, END)
    assert figures["category"] == {"billing": 1, "delivery_delay": 2}
    assert figures["level"] == {"P1": 1, "P3": 1, "P4": 1}
    assert figures["channel"] == {"chat": 1, "email": 1, "voice": 1}
    assert figures["root_cause"] == {"payment_gateway": 1, "unknown": 2}


def test_timeliness(db_session, history):
    figures = reports.timeliness(db_session, START, END)
    # acknowledged at once for a (voice) and b (email); c is P1 by chat: waits for a phone acknowledgement
    assert figures["acknowledge"] == {"count": 2, "mean_hours": 0.0, "within_deadline": 2, "within_percent": 100.0}
    # a answered in 2 h (on time), b in 480 h (late)
    assert figures["resolve"] == {"count": 2, "mean_hours": 241.0, "within_deadline": 1, "within_percent": 50.0}
    assert figures["open_overdue"] == 1  # c


def test_compensation_by_type_and_tier(db_session, history):
    figures = reports.compensation(db_session, START, END)
    assert figures == {"count": 1, "total_cents": 2000, "by_type_cents": {"redress": 0, "fixed": 2000, "goodwill": 0},
                       "by_tier_cents": {"vip": 2000}}


def test_repeat_rate_and_contacts(db_session, history):
    # b (small: 'old' 41 days earlier) and c (vip: a one day earlier) are repeats; a is not.
    assert reports.repeat_rate(db_session, START, END) == {"complaints": 3, "repeats": 2, "percent": 66.7}
    assert reports.per_thousand_contacts(db_session, START, END) == {"complaints": 3, "contacts": 40,
                                                                    "per_thousand": 75.0}
    summary = reports.summary(db_session, None, start=START, end=END)
    assert summary["repeat"]["repeats"] == 2


def test_empty_period(db_session):
    assert reports.timeliness(db_session, START, END)["resolve"]["mean_hours"] is None
    assert reports.repeat_rate(db_session, START, END)["percent"] is None
    assert reports.per_thousand_contacts(db_session, START, END)["per_thousand"] is None
