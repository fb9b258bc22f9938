"""Value recomputation (SQL facts == pure facts, snapshots, tiers) and follow-up rules."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, UTC

import pytest
from sqlalchemy import func, select

from app.crm import jobs
from app.crm.config import CrmConfig, FollowUpRule
from app.crm.facts import gather_facts
from app.crm.follow_ups import run_follow_ups
from app.crm.models import Customer, CustomerValueSnapshot, Order, ValueRun
from app.crm.scoring import OrderFact, facts_from_orders
from app.crm.service import record_feedback
from app.interactions.models import Interaction
from tests.factories import make_customer, make_interaction, make_order

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def test_sql_facts_match_the_pure_aggregation(db_session):
    rng = random.Random(7)
    ids = []
    for _ in range(12):
        customer = make_customer(db_session)
        for _ in range(rng.randint(0, 8)):
            make_order(db_session, customer, placed_at=NOW - timedelta(days=rng.uniform(-20, 500)),
                       total_cents=rng.randint(100, 90_000),
                       status=rng.choice(["shipped", "shipped", "delivered", "cancelled", "returned"]))
        ids.append(customer.id)
    db_session.flush()
    got = {f.customer_id: f for f in gather_facts(db_session, now=NOW, window_days=365)}
    for customer_id in ids:
        rows = db_session.scalars(select(Order).where(Order.customer_id == customer_id,
                                                      Order.status.not_in(["cancelled", "returned"]))).all()
        pure = facts_from_orders(customer_id, [OrderFact(o.placed_at, o.total_cents) for o in rows], now=NOW,
                                 window_days=365)
        assert got[customer_id] == pure


def test_facts_count_contacts_feedback_and_keep_prospects(db_session):
    customer = make_customer(db_session)
    prospect = make_customer(db_session, is_prospect=True)
    make_interaction(db_session, customer=customer, at=NOW - timedelta(days=3))
    make_interaction(db_session, customer=customer, at=NOW - timedelta(days=400))
    make_interaction(db_session, customer=customer, channel="task", at=NOW - timedelta(days=3))
    record_feedback(db_session, customer.id, "csat", 2, at=NOW - timedelta(days=1))
    record_feedback(db_session, customer.id, "csat", 3, at=NOW - timedelta(days=2))
    record_feedback(db_session, customer.id, "nps", 10, at=NOW - timedelta(days=2))
    db_session.flush()
    facts = {f.customer_id: f for f in gather_facts(db_session, now=NOW, window_days=365)}
    assert facts[customer.id].contacts_handled == 1
    assert (facts[customer.id].csat_avg, facts[customer.id].csat_count) == (2.5, 2)
    assert (facts[customer.id].nps_avg, facts[customer.id].nps_count) == (10.0, 1)
    assert facts[prospect.id].is_prospect and facts[prospect.id].first_order_at is None


def _population(db_session, n=40):
    customers = []
    for i in range(1, n + 1):
        customer = make_customer(db_session, tier="small", is_prospect=(i == 1))
        if i > 1:
            for k in range(i % 4 + 1):
                make_order(db_session, customer, total_cents=1000 * i * i // (i % 4 + 1),
                           placed_at=NOW - timedelta(days=10 + 30 * k))
        customers.append(customer)
    db_session.commit()
    return customers


def test_recompute_stores_snapshots_sets_tiers_and_the_pyramid(db_session, desk_config):
    customers = _population(db_session)
    run = jobs.recompute_values(db_session, desk_config, now=NOW)
    assert run.status == "done" and run.customers == 40 and run.finished_at is not None
    assert db_session.scalar(select(func.count()).select_from(CustomerValueSnapshot)) == 40
    tiers = dict(db_session.execute(select(Customer.id, Customer.tier)).all())
    assert tiers[customers[-1].id] == "vip" and tiers[customers[0].id] == "small"
    assert {row["tier"] for row in run.pyramid["rows"]} == {"vip", "major", "ordinary", "small"}
    assert run.pyramid["reasons"][0]["zh"]
    snapshot = db_session.get(CustomerValueSnapshot, customers[-1].id)
    assert snapshot.peak_tier == "vip" and snapshot.explanation["tier"]["reasons"][0]["en"].startswith("VIP")
    assert snapshot.last_order_at is not None
    assert jobs.latest_run(db_session).id == run.id


def test_recompute_keeps_peak_tier_and_clears_prospect_flag(db_session, desk_config):
    customers = _population(db_session, n=20)
    jobs.recompute_values(db_session, desk_config, now=NOW)
    top = customers[-1]
    make_order(db_session, customers[0], total_cents=50, placed_at=NOW - timedelta(days=1))
    db_session.commit()
    later = NOW + timedelta(days=200)  # top's orders partly left the window
    jobs.recompute_values(db_session, desk_config, now=later)
    assert db_session.get(Customer, customers[0].id).is_prospect is False
    snapshot = db_session.get(CustomerValueSnapshot, top.id)
    assert snapshot.peak_tier == "vip"


def test_failed_run_is_recorded(db_session, desk_config, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(jobs, "gather_facts", broken)
    with pytest.raises(RuntimeError):
        jobs.recompute_values(db_session, desk_config, now=NOW)
    run = db_session.scalar(select(ValueRun))
    assert run.status == "failed" and "database went away" in run.error


def test_request_recompute_runs_the_job(app, db_session, desk_config):
    _population(db_session, n=5)
    app.extensions["desk.jobs"].synchronous = True
    run = jobs.request_recompute(db_session)
    db_session.expire_all()
    assert db_session.get(ValueRun, run.id).status == "done"


@pytest.mark.parametrize("now_local,due", [
    ("2026-06-01T01:59:00+08:00", None),
    ("2026-06-01T02:00:00+08:00", "2026-05-31T18:00:00+00:00"),
    ("2026-06-01T23:59:00+08:00", "2026-05-31T18:00:00+00:00"),
])
def test_nightly_is_due_from_two_in_the_morning_desk_time(now_local, due):
    now = datetime.fromisoformat(now_local).astimezone(UTC)
    moment = jobs.nightly_due_since(now, "Asia/Shanghai")
    assert (moment.isoformat() if moment else None) == due


def test_nightly_tick_runs_once_per_night(app, db_session, desk_config):
    _population(db_session, n=5)
    zone = desk_config.desk.timezone
    night = datetime.combine(datetime(2026, 6, 1).date(), jobs.NIGHTLY_AT,
                             tzinfo=__import__("zoneinfo").ZoneInfo(zone)).astimezone(UTC)
    assert jobs.nightly_tick(now=night - timedelta(minutes=1)) is None
    first = jobs.nightly_tick(now=night + timedelta(minutes=5))
    assert first is not None
    assert db_session.get(ValueRun, first).trigger == "nightly"
    assert jobs.nightly_tick(now=night + timedelta(minutes=10)) is None


# --- follow-ups ---------------------------------------------------------------------------------------------

RULES = [
    FollowUpRule(name="vip_keep_in_touch", kind="not_contacted", tiers=["vip"], days=90,
                 subject_en="Keep in touch", subject_zh="保持联系"),
    FollowUpRule(name="lapsed_major", kind="lapsed", tiers=["major"], action="email",
                 subject_en="Win back", subject_zh="挽回"),
    FollowUpRule(name="after_complaint", kind="after_complaint_closed", days=7,
                 subject_en="After complaint", subject_zh="投诉回访"),
]


class _Config:
    def __init__(self, desk_config):
        self.crm = CrmConfig(follow_ups=RULES)
        self.routing = desk_config.routing
        self.desk = desk_config.desk


def test_vip_not_contacted_for_90_days_gets_one_task(db_session, desk_config):
    quiet = make_customer(db_session, tier="vip", language="zh", created_at=NOW - timedelta(days=400))
    talked = make_customer(db_session, tier="vip", created_at=NOW - timedelta(days=400))
    make_customer(db_session, tier="ordinary", created_at=NOW - timedelta(days=400))
    make_interaction(db_session, customer=talked, at=NOW - timedelta(days=10))
    make_interaction(db_session, customer=quiet, at=NOW - timedelta(days=100))
    db_session.flush()
    config = _Config(desk_config)
    tasks = run_follow_ups(db_session, config, now=NOW)
    assert [t.customer_id for t in tasks] == [quiet.id]
    task = tasks[0]
    assert task.channel == "task" and task.direction == "outbound" and task.subject == "保持联系"
    assert task.attributes["follow_up"] == "vip_keep_in_touch" and task.attributes["action"] == "call"
    assert task.state == "queued" and task.queue == "general"  # routed like any other contact
    assert run_follow_ups(db_session, config, now=NOW) == []  # idempotent the same day


def test_lapsed_major_customer_gets_a_win_back_task_once_per_lapse(db_session, desk_config):
    customer = make_customer(db_session, tier="small", created_at=NOW - timedelta(days=900))
    make_order(db_session, customer, placed_at=NOW - timedelta(days=500))
    db_session.add(CustomerValueSnapshot(customer_id=customer.id, tier="small", r=1, f=1, m=1, segment="standard",
                                         stage="lapsed", loyalty="none", churn_risk="none", peak_tier="major",
                                         peak_tier_at=NOW - timedelta(days=200),
                                         last_order_at=NOW - timedelta(days=500), computed_at=NOW))
    db_session.flush()
    config = _Config(desk_config)
    tasks = run_follow_ups(db_session, config, now=NOW)
    assert [(t.customer_id, t.attributes["was_tier"], t.attributes["action"]) for t in tasks if
            t.attributes["follow_up"] == "lapsed_major"] == [(customer.id, "major", "email")]
    later = run_follow_ups(db_session, config, now=NOW + timedelta(days=1))
    assert all(t.attributes["follow_up"] != "lapsed_major" for t in later)
    assert db_session.scalar(select(func.count()).select_from(Interaction)
                             .where(Interaction.channel == "task")) == 1 + len(later)
