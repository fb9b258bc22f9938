"""Outbound-webhook events: published once each, only after commit, and without personal data."""
from __future__ import annotations

import json

import pytest

from app.complaints import flows
from app.complaints.compensation import FixedClaim
from tests.complaints.test_flows import new_complaint, walk_to_investigating
from tests.factories import make_customer

PERSONAL = ("Zhou Personal", "zhou@example.cn", "heater", "+86")


def _no_personal_data(payload: dict) -> None:
    text = json.dumps(payload, ensure_ascii=False)
    for fragment in PERSONAL:
        assert fragment not in text
    assert "vulnerable" not in payload and "description" not in payload and "name" not in payload


@pytest.fixture()
def customer(db_session):
    return make_customer(db_session, name="Zhou Personal", email="zhou@example.cn", phone="+8613800000001",
                         tier="small")


def test_intake_and_regrade_publish_complaint_graded(db_session, people, jobs, events, customer):
    complaint = new_complaint(db_session, people, customer=customer, description="my heater sparked",
                              scores={"harm": 1}, vulnerable=True)
    [graded] = events.named("complaint.graded")
    assert graded["complaint_id"] == complaint.id and graded["reference"] == complaint.reference
    assert graded["level"] == complaint.level and graded["previous_level"] is None and graded["cause"] == "intake"
    assert graded["customer_id"] == customer.id and graded["scores"]["harm"] == 1
    _no_personal_data(graded)

    flows.regrade(db_session, complaint.id, {"harm": 3}, reason="burn on the hand", actor_id=people["lead"].id)
    regraded = events.named("complaint.graded")[1]
    assert regraded["cause"] == "regrade" and regraded["level"] == "P1"
    assert regraded["previous_level"] == graded["level"]
    _no_personal_data(regraded)


def test_nothing_is_published_for_a_rolled_back_regrade(db_session, people, jobs, events, customer):
    from app.complaints import service

    complaint = new_complaint(db_session, people, customer=customer, scores={"harm": 1})
    service.regrade(db_session, flows._config(), complaint, {"harm": 2}, reason="r", actor_id=people["lead"].id)
    db_session.rollback()
    assert len(events.named("complaint.graded")) == 1  # the intake's only


def test_self_approved_compensation_is_approved_then_issued(db_session, people, jobs, events, customer):
    complaint = new_complaint(db_session, people, customer=customer, scores={"harm": 1})
    walk_to_investigating(db_session, people, complaint)
    proposal = flows.propose(db_session, complaint.id, actor_id=people["agent"].id, include_goodwill=False,
                             fixed=[FixedClaim("delivery_delay_per_day", days=3)])
    [approved] = events.named("compensation.approved")
    assert approved == {**approved, "complaint_id": complaint.id, "proposal_id": proposal.id, "level": "P4",
                        "currency": "CNY", "total_cents": 3000, "fixed_cents": 3000, "goodwill_cents": 0,
                        "redress_cents": 0, "method": "voucher", "approver_ids": [people["agent"].id],
                        "reference": complaint.reference}
    assert not events.named("compensation.issued")
    issuance = flows.issue(db_session, proposal.id)
    flows.issue(db_session, proposal.id)  # a retried job publishes nothing more
    [issued] = events.named("compensation.issued")
    assert issued["issuance_id"] == issuance.id and issued["amount_cents"] == 3000 and issued["currency"] == "CNY"
    assert issuance.voucher_code not in json.dumps(issued)
    for payload in (approved, issued):
        _no_personal_data(payload)


def test_two_step_approval_publishes_approved_once_with_both_approvers(db_session, people, jobs, events, customer):
    complaint = new_complaint(db_session, people, customer=customer,
                              scores={"harm": 2, "legal_risk": 2, "public_exposure": 2})
    walk_to_investigating(db_session, people, complaint)
    proposal = flows.propose(db_session, complaint.id, actor_id=people["agent"].id, proven_loss_cents=600000)
    assert proposal.status == "awaiting_approval" and not events.named("compensation.approved")
    assert flows.approve(db_session, proposal.id, approver_id=people["head"].id).outcome == "recorded"
    assert not events.named("compensation.approved")
    assert flows.approve(db_session, proposal.id, approver_id=people["head2"].id).outcome == "approved"
    assert flows.approve(db_session, proposal.id, approver_id=people["head2"].id).outcome == "already"
    [approved] = events.named("compensation.approved")
    assert approved["approver_ids"] == sorted([people["head"].id, people["head2"].id])
    assert approved["total_cents"] == proposal.total_cents and approved["redress_cents"] == 600000


def test_webhooks_turn_the_events_into_deliveries(db_session, people, jobs, customer):
    from sqlalchemy import select

    from app.webhooks.models import WebhookDelivery
    from app.webhooks.service import create_endpoint

    create_endpoint(db_session, name="erp", url="https://erp.example/hook", actor="test",
                    event_types=["complaint.graded", "compensation.approved", "compensation.issued"])
    db_session.commit()
    complaint = new_complaint(db_session, people, customer=customer, scores={"harm": 1})
    walk_to_investigating(db_session, people, complaint)
    proposal = flows.propose(db_session, complaint.id, actor_id=people["agent"].id, include_goodwill=False,
                             fixed=[FixedClaim("delivery_delay_per_day", days=1)])
    flows.issue(db_session, proposal.id)
    types = [d.event_type for d in db_session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id))]
    assert types == ["complaint.graded", "compensation.approved", "compensation.issued"]
