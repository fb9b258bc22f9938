"""The complaint workflow against the database: intake to closure, approvals, issuance, alerts."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.complaints import flows, payouts, service
from app.complaints.approvals import FourEyesViolation, NotAuthorised
from app.complaints.compensation import CurrencyMismatch, FixedClaim, OutsideBand
from app.complaints.models import (
    AuditTrailImmutable,
    CompensationIssuance,
    ComplaintAlert,
    ComplaintApproval,
    ComplaintApprover,
    ComplaintEvent,
    ComplaintNotice,
)
from app.complaints.states import InvalidComplaintTransition
from app.crm import bridges
from tests.factories import make_customer, make_interaction, make_order


def new_complaint(db_session, people, *, tier="ordinary", language="en", channel="voice", **fields):
    customer = fields.pop("customer", None) or make_customer(db_session, tier=tier, language=language,
                                                             email="c@example.com")
    defaults = {"channel": channel, "customer_id": customer.id, "category": "delivery_delay",
                "description": "Parcel is a week late", "actor_id": people["agent"].id}
    defaults.update(fields)
    return flows.raise_complaint(db_session, **defaults)


def kinds(db_session, complaint):
    return [(e.kind, e.to_state) for e in service.audit_trail(db_session, complaint.id)]


def test_intake_grades_sets_deadlines_and_acknowledges_in_customer_language(db_session, people, jobs, desk_config):
    complaint = new_complaint(db_session, people, language="zh", channel="email",
                              description="快递晚了一周，我要投诉到消协", amount_claimed_cents=8000)
    assert complaint.reference == f"CMP-{100000 + complaint.id}"
    assert complaint.factor_scores["legal_risk"] == 2 and complaint.factor_scores["financial_loss"] == 2
    assert complaint.level == "P3"  # total 4
    assert complaint.state == "acknowledged" and complaint.acknowledged_at is not None
    assert complaint.resolve_due_at > complaint.received_at
    notice = db_session.scalar(select(ComplaintNotice).where(ComplaintNotice.kind == "acknowledgement"))
    assert notice.language == "zh" and complaint.reference in notice.subject and notice.channel == "email"
    assert "最终答复" in notice.body
    assert [k for k, _ in kinds(db_session, complaint)] == ["received", "transition"]
    assert ("check_sla_job", "sla") in [(c[0], c[2]) for c in jobs.calls]
    assert ("send_notice_job", (notice.id,), "email") in [c[:3] for c in jobs.calls]  # after the commit


def test_agent_scores_override_suggestions_and_tier_does_not_raise(db_session, people, jobs):
    vip = new_complaint(db_session, people, tier="vip", description="late", scores={"harm": 1})
    small = new_complaint(db_session, people, tier="small", description="late", scores={"harm": 1})
    assert vip.level == small.level == "P4"
    assert vip.grade_explanation["points"][0]["source"] == "agent"


def test_p1_raised_by_email_waits_for_a_phone_acknowledgement(db_session, people, jobs):
    complaint = new_complaint(db_session, people, channel="email", description="the heater caught fire")
    assert complaint.level == "P1" and complaint.state == "received"
    flows.acknowledge(db_session, complaint.id, actor_id=people["agent"].id)
    assert complaint.state == "acknowledged"


def test_prefill_from_interaction(db_session, people, jobs):
    customer = make_customer(db_session, language="zh")
    interaction = make_interaction(db_session, channel="chat", customer=customer, subject="破损", language="zh")
    fields = service.prefill_from_interaction(db_session, interaction.id)
    assert fields == {"interaction_id": interaction.id, "channel": "chat", "customer_id": customer.id,
                      "language": "zh", "description": "破损"}
    complaint = flows.raise_complaint(db_session, category="loss_or_damage", actor_id=people["agent"].id, **fields)
    assert complaint.interaction_id == interaction.id and complaint.channel == "chat"


@pytest.mark.parametrize("change, message", [
    ({"category": "weather"}, "category"),
    ({"description": "  "}, "description"),
    ({"channel": "pigeon"}, "channel"),
    ({"amount_claimed_cents": -5}, "negative"),
    ({"currency": "USD"}, "currency"),
    ({"evidence": [{"name": "", "size": 1}]}, "evidence"),
    ({"customer_id": 99999}, "customer"),
    ({"scores": {"harm": 7}}, "score"),
])
def test_bad_intake_refused_and_nothing_added(db_session, people, jobs, change, message):
    customer = make_customer(db_session)
    fields = {"channel": "voice", "customer_id": customer.id, "category": "billing", "description": "x",
              "actor_id": people["agent"].id, **change}
    with pytest.raises(service.IntakeInvalid, match=message):
        flows.raise_complaint(db_session, **fields)
    db_session.rollback()
    assert db_session.scalar(select(func.count()).select_from(service.Complaint)) == 0


def test_order_must_belong_to_customer(db_session, people, jobs):
    other = make_customer(db_session)
    order = make_order(db_session, other)
    with pytest.raises(service.IntakeInvalid, match="order"):
        new_complaint(db_session, people, order_id=order.id)


def test_regrade_needs_reason_and_is_audited(db_session, people, jobs):
    complaint = new_complaint(db_session, people, scores={"harm": 1})
    with pytest.raises(service.ComplaintError):
        flows.regrade(db_session, complaint.id, {"harm": 3}, reason=" ", actor_id=people["lead"].id)
    old_due = complaint.resolve_due_at
    flows.regrade(db_session, complaint.id, {"harm": 3}, reason="customer was burned", actor_id=people["lead"].id)
    assert complaint.level == "P1" and complaint.resolve_due_at < old_due
    event = db_session.scalar(select(ComplaintEvent).where(ComplaintEvent.kind == "regrade"))
    assert event.note == "customer was burned" and event.data["changes"]["harm"] == [1, 3]
    assert event.data["from_level"] == "P4" and event.data["to_level"] == "P1"


def walk_to_investigating(db_session, people, complaint):
    flows.move(db_session, complaint.id, "investigating", actor_id=people["agent"].id, note="looking into it")


def test_full_journey_small_amount_self_approved_to_closed(db_session, people, jobs, app):
    complaint = new_complaint(db_session, people, tier="vip", scores={"harm": 1})
    walk_to_investigating(db_session, people, complaint)
    proposal = flows.propose(db_session, complaint.id, actor_id=people["agent"].id,
                             fixed=[FixedClaim("delivery_delay_per_day", days=2)], include_goodwill=False,
                             response_note="sorry for the delay")
    assert proposal.total_cents == 2000 and proposal.status == "approved"  # within the agent's 50
    assert ("issue_compensation_job", (proposal.id,)) in [(c[0], c[1]) for c in jobs.calls]
    issuance = flows.issue(db_session, proposal.id)
    again = flows.issue(db_session, proposal.id)
    assert again.id == issuance.id and issuance.voucher_code.startswith("V")
    assert db_session.scalar(select(func.count()).select_from(CompensationIssuance)) == 1
    assert complaint.state == "compensation_issued"
    flows.resolve(db_session, complaint.id, actor_id=people["agent"].id, note="voucher sent")
    flows.close(db_session, complaint.id, actor_id=people["agent"].id)
    assert complaint.state == "closed" and complaint.closed_at is not None
    states = [s for k, s in kinds(db_session, complaint) if k == "transition"]
    assert states == ["acknowledged", "investigating", "response_proposed", "approved", "compensation_issued",
                      "resolved", "closed"]
    notices = [n.kind for n in db_session.scalars(select(ComplaintNotice).where(
        ComplaintNotice.recipient_kind == "customer").order_by(ComplaintNotice.id))]
    assert notices == ["acknowledgement", "status_investigating", "issuance", "resolution", "survey"]
    survey = db_session.scalar(select(ComplaintNotice).where(ComplaintNotice.kind == "survey"))
    assert f"/portal/surveys/complaint/{complaint.reference}" in survey.body
    # the CRM's follow-up rule finds the closure through its bridge
    window = (complaint.closed_at - timedelta(minutes=1), complaint.closed_at + timedelta(minutes=1))
    assert bridges.recently_closed_complaints(db_session, *window) == [(complaint.id, complaint.customer_id)]


def test_approval_chain_four_eyes_and_limits(db_session, people, jobs):
    complaint = new_complaint(db_session, people, tier="small", owner_id=people["lead"].id,
                              scores={"harm": 2, "legal_risk": 2, "public_exposure": 2})
    assert complaint.level == "P2"
    walk_to_investigating(db_session, people, complaint)
    proposal = flows.propose(db_session, complaint.id, actor_id=people["agent"].id, proven_loss_cents=20000)
    assert proposal.total_cents == 30000 and proposal.status == "awaiting_approval"  # 200 redress + 100 goodwill
    assert complaint.state == "awaiting_approval"
    with pytest.raises(FourEyesViolation):  # the owner handled the case
        flows.approve(db_session, proposal.id, approver_id=people["lead"].id)
    db_session.rollback()
    with pytest.raises(NotAuthorised):  # 300 is above a team lead's 250
        flows.approve(db_session, proposal.id, approver_id=people["lead2"].id)
    db_session.rollback()
    db_session.add(ComplaintApprover(staff_id=people["lead2"].id, approval_role="complaints_manager"))
    db_session.commit()
    result = flows.approve(db_session, proposal.id, approver_id=people["lead2"].id, note="fair")
    assert result.outcome == "approved" and complaint.state == "approved"
    assert flows.approve(db_session, proposal.id, approver_id=people["lead2"].id).outcome == "already"
    assert flows.approve(db_session, proposal.id, approver_id=people["head"].id).outcome == "already"
    assert db_session.scalar(select(func.count()).select_from(ComplaintApproval)) == 1
    assert [c[0] for c in jobs.calls].count("issue_compensation_job") == 1


def test_two_approvers_above_top_limit(db_session, people, jobs):
    complaint = new_complaint(db_session, people, tier="small", scores={"harm": 3})
    walk_to_investigating(db_session, people, complaint)
    proposal = flows.propose(db_session, complaint.id, actor_id=people["agent"].id, proven_loss_cents=600000)
    assert flows.approve(db_session, proposal.id, approver_id=people["head"].id).outcome == "recorded"
    assert flows.approve(db_session, proposal.id, approver_id=people["head"].id).outcome == "already"
    assert complaint.state == "awaiting_approval"
    assert flows.approve(db_session, proposal.id, approver_id=people["head2"].id).outcome == "approved"
    assert complaint.state == "approved"


def test_concurrent_duplicate_approval_counts_once(db_session, people, jobs, app):
    """Two requests by the same approver that both passed the checks: the unique constraint keeps one."""
    complaint = new_complaint(db_session, people, tier="small", scores={"harm": 1})
    walk_to_investigating(db_session, people, complaint)
    proposal = flows.propose(db_session, complaint.id, actor_id=people["agent"].id, goodwill_cents=2500,
                             adjustment_reason="max for P4", proven_loss_cents=5000)
    assert proposal.status == "awaiting_approval"
    # the other request's row is already committed when this one flushes
    db_session.add(ComplaintApproval(proposal_id=proposal.id, approver_id=people["lead"].id,
                                     approval_role="team_lead"))
    db_session.commit()
    db_session.expire_all()
    result = flows.approve(db_session, proposal.id, approver_id=people["lead"].id)
    assert result.outcome == "already"  # DuplicateApproval seen in the rules


def test_decline_sends_back_with_reason(db_session, people, jobs):
    complaint = new_complaint(db_session, people, scores={"harm": 2, "legal_risk": 2, "public_exposure": 2})
    walk_to_investigating(db_session, people, complaint)
    proposal = flows.propose(db_session, complaint.id, actor_id=people["agent"].id)
    with pytest.raises(payouts.PayoutError):
        flows.decline(db_session, proposal.id, approver_id=people["lead"].id, note="")
    db_session.rollback()
    flows.decline(db_session, proposal.id, approver_id=people["lead"].id, note="check the courier's report first")
    assert proposal.status == "declined" and complaint.state == "response_proposed"
    revised = flows.propose(db_session, complaint.id, actor_id=people["agent"].id, goodwill_cents=10000,
                            adjustment_reason="courier confirmed the delay")
    assert revised.goodwill_cents == 10000 and revised.status == "awaiting_approval"


def test_bad_compensation_refused_nothing_changed(db_session, people, jobs):
    complaint = new_complaint(db_session, people, scores={"harm": 1})
    walk_to_investigating(db_session, people, complaint)
    with pytest.raises(OutsideBand):
        flows.propose(db_session, complaint.id, actor_id=people["agent"].id, goodwill_cents=999999,
                      adjustment_reason="generous")
    db_session.rollback()
    assert complaint.state == "investigating" and not complaint.proposals
    with pytest.raises(payouts.PayoutError):
        flows.propose(db_session, complaint.id, actor_id=people["agent"].id, method="cash")
    db_session.rollback()
    complaint.currency = "USD"
    with pytest.raises(CurrencyMismatch):
        flows.propose(db_session, complaint.id, actor_id=people["agent"].id)
    db_session.rollback()


def test_out_of_order_transitions_refused(db_session, people, jobs):
    complaint = new_complaint(db_session, people, scores={"harm": 1})
    with pytest.raises(InvalidComplaintTransition):
        flows.move(db_session, complaint.id, "closed", actor_id=people["agent"].id)
    db_session.rollback()
    with pytest.raises(payouts.PayoutError):
        flows.propose(db_session, complaint.id, actor_id=people["agent"].id)
    db_session.rollback()
    with pytest.raises(InvalidComplaintTransition, match="note"):
        flows.reject(db_session, complaint.id, actor_id=people["agent"].id, reasons=" ")
    db_session.rollback()
    assert complaint.state == "acknowledged"


def test_reject_then_reopen_within_window(db_session, people, jobs):
    complaint = new_complaint(db_session, people, language="zh", scores={"harm": 1})
    flows.reject(db_session, complaint.id, actor_id=people["agent"].id, reasons="产品已过保修期")
    notice = db_session.scalar(select(ComplaintNotice).where(ComplaintNotice.kind == "rejection"))
    assert "产品已过保修期" in notice.body and "30 天" in notice.body
    flows.reopen(db_session, complaint.id, note="customer sent the warranty card", actor="customer:1")
    assert complaint.state == "investigating" and complaint.reopen_count == 1 and complaint.final_response_at is None
    assert service.open_complaint_level(db_session, complaint.customer_id) == "P4"
    flows.reject(db_session, complaint.id, actor_id=people["agent"].id, reasons="card is forged")
    assert service.open_complaint_level(db_session, complaint.customer_id) is None


def test_reopen_after_window_refused(db_session, people, jobs):
    complaint = new_complaint(db_session, people, scores={"harm": 1})
    flows.reject(db_session, complaint.id, actor_id=people["agent"].id, reasons="no fault found")
    complaint.final_response_at = complaint.final_response_at - timedelta(days=31)
    db_session.commit()
    with pytest.raises(InvalidComplaintTransition, match="30 days"):
        flows.reopen(db_session, complaint.id, note="late", actor_id=people["agent"].id)


def test_audit_trail_cannot_be_edited(db_session, people, jobs):
    complaint = new_complaint(db_session, people, scores={"harm": 1})
    event = service.audit_trail(db_session, complaint.id)[0]
    event.note = "rewritten history"
    with pytest.raises(AuditTrailImmutable):
        db_session.flush()
    db_session.rollback()
    db_session.delete(service.audit_trail(db_session, complaint.id)[0])
    with pytest.raises(AuditTrailImmutable):
        db_session.flush()
    db_session.rollback()


def test_sla_alerts_raised_once_to_owner_and_supervisors(db_session, people, jobs):
    received = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)  # Friday 09:00 Shanghai
    complaint = new_complaint(db_session, people, channel="email", scores={"harm": 2, "legal_risk": 2,
                                                                           "public_exposure": 2}, at=received)
    assert complaint.level == "P2" and complaint.state == "acknowledged"
    # 5 business days (Mon-Fri 09-18, Sat 10-16): Sat 28, Mon 30, Tue 1, Wed 2, Thu 3 -> Thu 18:00 Shanghai
    assert complaint.resolve_due_at == datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    assert flows.check_sla(db_session, complaint.id, now=received + timedelta(hours=1)) == 0
    assert flows.check_sla(db_session, complaint.id, now=complaint.resolve_due_at) == 3
    assert flows.check_sla(db_session, complaint.id, now=complaint.resolve_due_at + timedelta(hours=1)) == 0
    alerts = db_session.scalars(select(ComplaintAlert).order_by(ComplaintAlert.id)).all()
    assert [a.name for a in alerts] == ["50%", "80%", "breach"]
    staff_notices = db_session.scalars(select(ComplaintNotice).where(ComplaintNotice.recipient_kind == "staff")).all()
    recipients = {n.recipient_id for n in staff_notices}
    assert recipients == {people[k].id for k in ("agent", "lead", "lead2", "head", "head2")}
    assert {n.channel for n in staff_notices} == {"console", "email"}
    rows = service.at_risk(db_session, flows._config(), now=complaint.resolve_due_at)
    assert rows[0]["complaint"].id == complaint.id and rows[0]["breached"]


def test_sweep_and_schedule(db_session, people, jobs):
    received = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
    complaint = new_complaint(db_session, people, scores={"harm": 1}, at=received)
    assert flows.sweep_sla(db_session, now=received + timedelta(days=30)) == 3
    assert flows.sweep_sla(db_session, now=received + timedelta(days=30)) == 0
    assert service.find_by_reference(db_session, complaint.reference).id == complaint.id
    assert service.find_by_reference(db_session, str(100000 + complaint.id)).id == complaint.id
    assert service.find_by_reference(db_session, "nope") is None


def _race(monkeypatch, app, other_click) -> list:
    """Start ``other_click`` on another thread, with its own session, just after the first request
    passed its checks. On SQLite it runs to the end at once; on PostgreSQL it waits on the proposal's
    row lock until the first request commits -- both are real races. ``_finish`` joins the thread and
    returns the other click's outcome."""
    import threading

    from sqlalchemy.orm import Session as SASession

    from app.extensions import db

    real_check = payouts.check_approval
    race: dict = {"threads": [], "outcomes": []}

    def run_other() -> None:
        with app.app_context(), SASession(db.engine) as other:
            race["outcomes"].append(other_click(other).outcome)

    def check_then_other_click(*args, **kwargs):
        result = real_check(*args, **kwargs)
        monkeypatch.setattr(payouts, "check_approval", real_check)
        thread = threading.Thread(target=run_other, daemon=True)
        thread.start()
        thread.join(timeout=1.0)
        race["threads"].append(thread)
        return result

    monkeypatch.setattr(payouts, "check_approval", check_then_other_click)
    return race


def _finish(race: dict) -> list[str]:
    for thread in race["threads"]:
        thread.join(timeout=30)
        assert not thread.is_alive()
    return race["outcomes"]


def _awaiting(db_session, people):
    complaint = new_complaint(db_session, people, tier="small", scores={"harm": 1})
    walk_to_investigating(db_session, people, complaint)
    proposal = flows.propose(db_session, complaint.id, actor_id=people["agent"].id, proven_loss_cents=10000)
    assert proposal.status == "awaiting_approval"
    return complaint, proposal


def test_same_approver_double_click_in_flight_counts_once(db_session, people, jobs, app, monkeypatch):
    complaint, proposal = _awaiting(db_session, people)
    lead_id, proposal_id = people["lead"].id, proposal.id
    race = _race(monkeypatch, app, lambda other: flows.approve(other, proposal_id, approver_id=lead_id))
    result = flows.approve(db_session, proposal_id, approver_id=lead_id)
    assert sorted([result.outcome, *_finish(race)]) == ["already", "approved"]
    db_session.expire_all()
    assert db_session.scalar(select(func.count()).select_from(ComplaintApproval)) == 1
    approved = [e for e in service.audit_trail(db_session, complaint.id) if e.to_state == "approved"]
    assert len(approved) == 1


def test_two_supervisors_at_once_approve_once(db_session, people, jobs, app, monkeypatch):
    complaint, proposal = _awaiting(db_session, people)
    lead2_id, proposal_id = people["lead2"].id, proposal.id
    race = _race(monkeypatch, app, lambda other: flows.approve(other, proposal_id, approver_id=lead2_id))
    result = flows.approve(db_session, proposal_id, approver_id=people["lead"].id)
    assert sorted([result.outcome, *_finish(race)]) == ["already", "approved"]
    db_session.expire_all()
    approved = [e for e in service.audit_trail(db_session, complaint.id) if e.to_state == "approved"]
    assert len(approved) == 1
    assert [c[0] for c in jobs.calls].count("issue_compensation_job") == 1
