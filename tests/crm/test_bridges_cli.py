"""What the CRM reads from complaints (360, value facts, follow-ups) and the ``flask crm`` commands."""
from __future__ import annotations

import io
from datetime import datetime, timedelta, UTC

from sqlalchemy import select

from app.auth.tokens import ApiToken
from app.complaints.models import CompensationIssuance, CompensationProposal, Complaint
from app.crm import bridges
from app.crm.config import CrmConfig, FollowUpRule
from app.crm.facts import gather_facts
from app.crm.follow_ups import run_follow_ups
from app.crm.models import Customer, ValueRun
from app.crm.service import customer_360
from tests.factories import make_customer, make_order

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def _complaint(session, customer, *, ref: str, state: str = "investigating", received: datetime = NOW,
               closed_at: datetime | None = None) -> Complaint:
    complaint = Complaint(reference=ref, channel="voice", customer_id=customer.id, category="delivery_delay",
                          description="late", currency="CNY", level="P2", state=state, received_at=received,
                          state_changed_at=received, resolve_clock_started_at=received, regulatory_profile="default",
                          acknowledge_due_at=received + timedelta(days=1), resolve_due_at=received + timedelta(days=10),
                          closed_at=closed_at)
    session.add(complaint)
    session.flush()
    return complaint


def _issue(session, complaint: Complaint, cents: int, *, at: datetime = NOW, key: str = "k1") -> None:
    proposal = CompensationProposal(complaint_id=complaint.id, status="issued", currency="CNY", total_cents=cents,
                                    level="P2", customer_tier="vip")
    session.add(proposal)
    session.flush()
    session.add(CompensationIssuance(idempotency_key=key, proposal_id=proposal.id, complaint_id=complaint.id,
                                     customer_id=complaint.customer_id, method="voucher", amount_cents=cents,
                                     currency="CNY", issued_at=at))
    session.flush()


def test_360_shows_open_complaints_with_deadlines_and_compensation(db_session):
    customer = make_customer(db_session)
    open_one = _complaint(db_session, customer, ref="C-1")
    _complaint(db_session, customer, ref="C-2", state="closed", closed_at=NOW)
    _issue(db_session, open_one, 5000, key="a")
    _issue(db_session, open_one, 2500, key="b", at=NOW + timedelta(hours=1))
    view = customer_360(db_session, customer.id)
    assert [c["reference"] for c in view["complaints"]] == ["C-1"]
    assert view["complaints"][0]["resolve_due_at"].startswith("2026-06-11")
    assert view["compensation"]["total_cents"] == 7500 and view["compensation"]["by_currency"] == {"CNY": 7500}
    assert [i["amount_cents"] for i in view["compensation"]["items"]] == [2500, 5000]
    assert bridges.open_complaints(db_session, customer.id, limit=1)[0]["reference"] == "C-1"


def test_value_facts_count_complaints_and_compensation(db_session):
    customer = make_customer(db_session)
    old = _complaint(db_session, customer, ref="C-1", state="closed", received=NOW - timedelta(days=500),
                     closed_at=NOW - timedelta(days=490))
    recent = _complaint(db_session, customer, ref="C-2", received=NOW - timedelta(days=3))
    _issue(db_session, old, 999, key="old", at=NOW - timedelta(days=480))
    _issue(db_session, recent, 3000, key="new", at=NOW - timedelta(days=1))
    facts = {f.customer_id: f for f in gather_facts(db_session, now=NOW, window_days=365)}[customer.id]
    assert (facts.open_complaints, facts.complaints_in_window, facts.compensation_cents) == (1, 1, 3000)


def test_after_complaint_closed_follow_up(db_session, desk_config):
    customer = make_customer(db_session, created_at=NOW - timedelta(days=400))
    complaint = _complaint(db_session, customer, ref="C-9", state="closed", received=NOW - timedelta(days=20),
                           closed_at=NOW - timedelta(days=7, hours=3))
    _complaint(db_session, customer, ref="C-10", state="closed", received=NOW - timedelta(days=40),
               closed_at=NOW - timedelta(days=30))

    class Config:
        crm = CrmConfig(follow_ups=[FollowUpRule(name="after", kind="after_complaint_closed", days=7,
                                                 subject_en="After", subject_zh="回访")])
        routing = desk_config.routing
        desk = desk_config.desk

    tasks = run_follow_ups(db_session, Config, now=NOW)
    assert [(t.customer_id, t.attributes["complaint_id"]) for t in tasks] == [(customer.id, complaint.id)]
    assert run_follow_ups(db_session, Config, now=NOW + timedelta(days=1)) == []


# --- CLI -------------------------------------------------------------------------------------------------------

def test_cli_recompute_follow_ups_and_tokens(app, db_session):
    make_order(db_session, make_customer(db_session))
    db_session.commit()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["crm", "recompute"])
    assert result.exit_code == 0 and "1 customers" in result.output and "vip" in result.output
    assert db_session.scalar(select(ValueRun.status)) == "done"
    result = runner.invoke(args=["crm", "follow-ups"])
    assert result.exit_code == 0 and "follow-up task(s) created" in result.output
    result = runner.invoke(args=["crm", "token-create", "erp", "--scope", "customers:read"])
    assert result.exit_code == 0 and "desk_" in result.output
    token_id = db_session.scalar(select(ApiToken.id))
    assert runner.invoke(args=["crm", "token-create", "erp", "--scope", "bogus"]).exit_code != 0
    assert runner.invoke(args=["crm", "token-revoke", str(token_id)]).exit_code == 0
    assert runner.invoke(args=["crm", "token-revoke", str(token_id)]).exit_code != 0


def test_cli_import_and_export(app, db_session, tmp_path):
    customers = tmp_path / "customers.csv"
    customers.write_text("name,phones,emails\nLi Na,13800138000,li@example.cn\nBad,12,\n", encoding="utf-8")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["crm", "import-customers", str(customers)])
    assert result.exit_code == 0 and "1 imported, 1 rejected" in result.output and "line 3, phones" in result.output
    customer_id = db_session.scalar(select(Customer.id))
    orders = tmp_path / "orders.csv"
    orders.write_text(f"number,customer_id,placed_at,total\nX1,{customer_id},2026-05-01,12.50\n", encoding="utf-8")
    result = runner.invoke(args=["crm", "import-orders", str(orders)])
    assert result.exit_code == 0 and "1 imported" in result.output
    bad = tmp_path / "bad.csv"
    bad.write_text("nope\n1\n", encoding="utf-8")
    assert runner.invoke(args=["crm", "import-orders", str(bad)]).exit_code == 1
    exported = runner.invoke(args=["crm", "export-customers"]).output
    assert "Li Na" in exported and "+8613800138000" in exported
    assert "X1" in runner.invoke(args=["crm", "export-orders"]).output
    assert io.StringIO(exported).readline().startswith("id,tier")
