"""Customer value rules: RFM quintiles, pyramid, segments, LTV, lifecycle, churn, loyalty."""
from __future__ import annotations

from datetime import datetime, timedelta, UTC

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.crm.config import ChurnRules, CrmConfig, LifecycleRules, LoyaltyRules, TierThresholds, ValueRules
from app.crm.scoring import (
    CustomerFacts, Loyalty, OrderFact, Segment, Stage, Tier, assign_tiers, churn_signals, classify_segment,
    facts_from_orders, format_money, lifecycle_stage, lifetime_value, loyalty_type, quintile_scores,
    rfm_scores, score_customers, tier_cutoffs,
)

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def days_ago(n: float) -> datetime:
    return NOW - timedelta(days=n)


def test_every_reason_has_both_languages():
    facts = [facts_from_orders(i, [OrderFact(days_ago(i), 1000 * i)], now=NOW, window_days=365,
                               csat_avg=4.5, csat_count=1) for i in range(1, 30)]
    run = score_customers(facts + [CustomerFacts(999, is_prospect=True)], CrmConfig(), now=NOW)
    for value in run.values.values():
        explanation = value.explanation()
        for part in explanation.values():
            reasons = part.get("reasons") or part.get("signals") or []
            for reason in reasons:
                assert reason["en"] and reason["zh"] and reason["code"]
                assert reason["en"] != reason["zh"]
    assert run.pyramid.reasons[0].zh


# --- facts -------------------------------------------------------------------------------------------

def test_facts_from_orders_splits_the_window_in_halves_and_ignores_the_future():
    orders = [OrderFact(days_ago(400), 100), OrderFact(days_ago(300), 200), OrderFact(days_ago(100), 300),
              OrderFact(days_ago(1), 400), OrderFact(NOW + timedelta(days=1), 999)]
    facts = facts_from_orders(7, orders, now=NOW, window_days=365, contacts_handled=3)
    assert facts.first_order_at == days_ago(400)
    assert facts.last_order_at == days_ago(1)
    assert (facts.window_orders, facts.window_revenue_cents) == (3, 900)
    assert (facts.earlier_half_orders, facts.earlier_half_revenue_cents) == (1, 200)
    assert (facts.recent_half_orders, facts.recent_half_revenue_cents) == (2, 700)
    assert facts.contacts_handled == 3


def test_facts_of_no_orders():
    facts = facts_from_orders(1, [], now=NOW, window_days=365)
    assert facts.first_order_at is None and facts.window_orders == 0


@pytest.mark.parametrize("cents,currency,text", [
    (0, "CNY", "0.00 CNY"), (123456, "CNY", "1,234.56 CNY"), (-5, "USD", "-0.05 USD")])
def test_format_money(cents, currency, text):
    assert format_money(cents, currency) == text


# --- RFM ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("values,scores", [
    ([10], [5]),
    ([1, 2, 3, 4, 5], [1, 2, 3, 4, 5]),
    ([5, 4, 3, 2, 1], [5, 4, 3, 2, 1]),
    ([7, 7, 7], [5, 5, 5]),
    ([1, 1, 1, 1, 9], [4, 4, 4, 4, 5]),
    (list(range(10)), [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]),
])
def test_quintile_scores_table(values, scores):
    assert quintile_scores(values) == scores


@given(st.lists(st.integers(min_value=-1000, max_value=1000), min_size=1, max_size=200))
def test_quintiles_are_monotone_and_in_range(values):
    scores = quintile_scores(values)
    assert all(1 <= s <= 5 for s in scores)
    pairs = sorted(zip(values, scores, strict=True))
    for (v1, s1), (v2, s2) in zip(pairs, pairs[1:], strict=False):
        assert s1 <= s2
        if v1 == v2:
            assert s1 == s2
    assert scores[values.index(max(values))] == 5


@given(st.lists(st.integers(min_value=0, max_value=10**6), min_size=5, max_size=200, unique=True))
def test_distinct_values_fill_each_quintile_about_evenly(values):
    scores = quintile_scores(values)
    n = len(values)
    for q in range(1, 6):
        assert abs(scores.count(q) - n / 5) <= 1


def test_rfm_scores_recent_frequent_big_spender_is_555():
    facts = [facts_from_orders(i, [OrderFact(days_ago(d), 1000 * i) for d in range(i * 10, 300, 60 - i * 10)],
                               now=NOW, window_days=365) for i in range(1, 6)]
    scores = rfm_scores(facts, now=NOW, window_days=365)
    best = scores[1]  # most recent; customer 5 spends most per order, customer 1 orders most
    assert best.r == 5 and best.recency_days == 10
    assert scores[5].r == 1
    assert max(s.f for s in scores.values()) == 5
    assert best.code == f"R{best.r}F{best.f}M{best.m}"
    assert best.reasons[0].en.startswith("R5: last order 10 days ago")


def test_rfm_no_orders_in_window_scores_ones_with_a_reason():
    old = facts_from_orders(1, [OrderFact(days_ago(500), 100)], now=NOW, window_days=365)
    never = CustomerFacts(2, is_prospect=True)
    scores = rfm_scores([old, never], now=NOW, window_days=365)
    assert (scores[1].r, scores[1].f, scores[1].m) == (1, 1, 1)
    assert scores[1].recency_days == 500 and scores[2].recency_days is None
    assert scores[1].reasons[0].code == "no_orders"


# --- pyramid -----------------------------------------------------------------------------------------

def test_classic_pyramid_on_100_customers():
    revenue = {i: (101 - i) * 1000 for i in range(1, 101)}
    tiers, report = assign_tiers(revenue, TierThresholds(), window_days=365)
    assert [tiers[i].tier for i in (1, 2, 5, 6, 20, 21, 100)] == [
        Tier.VIP, Tier.MAJOR, Tier.MAJOR, Tier.ORDINARY, Tier.ORDINARY, Tier.SMALL, Tier.SMALL]
    assert [r.customers for r in report.rows] == [1, 4, 15, 80]
    assert sum(r.revenue_cents for r in report.rows) == report.total_revenue_cents
    assert report.row(Tier.VIP).revenue_share == pytest.approx(100_000 / sum(revenue.values()))
    assert "rank 1 of 100" in tiers[1].reasons[0].en and "ranks 1–1" in tiers[1].reasons[0].en
    assert "第 1/100" in tiers[1].reasons[0].zh
    assert "ranks 2–5" in tiers[3].reasons[0].en
    assert "the 1%–5% band" in tiers[3].reasons[0].en
    assert report.reasons[0].en.startswith("the top 20% of customers")


@pytest.mark.parametrize("n,cutoffs", [
    (1, (1, 1, 1, 1)), (10, (1, 1, 2, 10)), (100, (1, 5, 20, 100)), (1000, (10, 50, 200, 1000)),
    (0, (0, 0, 0, 0))])
def test_tier_cutoffs(n, cutoffs):
    assert tuple(tier_cutoffs(n, TierThresholds()).values()) == cutoffs


def test_zero_revenue_is_small_and_ties_share_the_higher_tier():
    revenue = {1: 500, 2: 500, 3: 0, 4: 100}
    tiers, report = assign_tiers(revenue, TierThresholds(vip=0.25, major=0.5, ordinary=0.75), window_days=30)
    assert tiers[1].tier == tiers[2].tier == Tier.VIP
    assert tiers[2].reasons[-1].code == "tie"
    assert tiers[3].tier == Tier.SMALL and "no revenue" in tiers[3].reasons[0].en
    assert tiers[4].tier == Tier.ORDINARY
    assert report.row(Tier.MAJOR).customers == 0


def test_empty_population_has_an_empty_pyramid():
    tiers, report = assign_tiers({}, TierThresholds(), window_days=365)
    assert tiers == {} and report.total_customers == 0
    assert all(r.revenue_share == 0 and r.customer_share == 0 for r in report.rows)
    assert report.to_json()["rows"][0]["tier"] == "vip"


@settings(max_examples=80)
@given(st.dictionaries(st.integers(min_value=1, max_value=10**6), st.integers(min_value=0, max_value=10**7),
                       max_size=300))
def test_pyramid_invariants(revenue):
    tiers, report = assign_tiers(revenue, TierThresholds(), window_days=365)
    order = {t: i for i, t in enumerate((Tier.VIP, Tier.MAJOR, Tier.ORDINARY, Tier.SMALL))}
    items = sorted(revenue.items(), key=lambda kv: kv[1])
    for (a, ra), (b, rb) in zip(items, items[1:], strict=False):
        assert order[tiers[a].tier] >= order[tiers[b].tier]  # more revenue never a lower tier
        if ra == rb:
            assert tiers[a].tier == tiers[b].tier
    assert sum(r.customers for r in report.rows) == len(revenue)
    assert sum(r.revenue_cents for r in report.rows) == sum(revenue.values())
    if report.total_revenue_cents:
        assert sum(r.revenue_share for r in report.rows) == pytest.approx(1.0)
    assert all(tiers[c].tier == Tier.SMALL for c, r in revenue.items() if r == 0)


def test_tier_thresholds_must_grow():
    with pytest.raises(ValueError, match="vip < major < ordinary"):
        TierThresholds(vip=0.1, major=0.05, ordinary=0.2)


# --- segments and LTV --------------------------------------------------------------------------------

RULES = ValueRules(margin_rate=0.3, cost_per_contact_cents=1000, ltv_horizon_years=2, growth_ratio=1.5)


@pytest.mark.parametrize("name,facts,tier,stage,segment", [
    ("prospect", CustomerFacts(1, is_prospect=True, contacts_handled=5), Tier.SMALL, Stage.PROSPECT,
     Segment.STANDARD),
    ("vip costing too much", CustomerFacts(1, window_revenue_cents=10_000, contacts_handled=2,
                                           compensation_cents=2_000), Tier.VIP, Stage.ACTIVE, Segment.BZC),
    ("profitable vip", CustomerFacts(1, window_revenue_cents=100_000, contacts_handled=2), Tier.VIP,
     Stage.ACTIVE, Segment.MVC),
    ("profitable major", CustomerFacts(1, window_revenue_cents=100_000), Tier.MAJOR, Stage.ACTIVE, Segment.MVC),
    ("growing", CustomerFacts(1, window_revenue_cents=50_000, earlier_half_revenue_cents=20_000,
                              recent_half_revenue_cents=30_000), Tier.ORDINARY, Stage.ACTIVE, Segment.MGC),
    ("flat", CustomerFacts(1, window_revenue_cents=40_000, earlier_half_revenue_cents=20_000,
                           recent_half_revenue_cents=20_000), Tier.ORDINARY, Stage.ACTIVE, Segment.STANDARD),
    ("new ordinary", CustomerFacts(1, window_revenue_cents=40_000, recent_half_revenue_cents=40_000),
     Tier.ORDINARY, Stage.NEW, Segment.MGC),
    ("new small", CustomerFacts(1, window_revenue_cents=400, recent_half_revenue_cents=400), Tier.SMALL,
     Stage.NEW, Segment.STANDARD),
    ("break even is not below zero", CustomerFacts(1, window_revenue_cents=10_000, contacts_handled=3),
     Tier.SMALL, Stage.ACTIVE, Segment.STANDARD),
])
def test_segments_table(name, facts, tier, stage, segment):
    result = classify_segment(facts, tier, stage, RULES)
    assert result.segment == segment, name
    assert result.net_value_cents == result.margin_cents - result.cost_to_serve_cents
    assert result.reasons[0].code == "segment" and result.reasons[1].code == "net_value"


def test_bzc_explanation_names_the_costs():
    result = classify_segment(CustomerFacts(1, window_revenue_cents=10_000, contacts_handled=2,
                                            compensation_cents=2_000), Tier.VIP, Stage.ACTIVE, RULES)
    assert result.cost_to_serve_cents == 4_000 and result.margin_cents == 3_000
    assert "2 contacts" in result.reasons[1].en and "20.00 CNY compensation" in result.reasons[1].en
    assert "= -10.00 CNY" in result.reasons[1].en


@pytest.mark.parametrize("facts,window,ltv", [
    (CustomerFacts(1, window_orders=4, window_revenue_cents=100_000), 365, 60_000),
    (CustomerFacts(1, window_orders=4, window_revenue_cents=100_000, contacts_handled=5), 365, 50_000),
    (CustomerFacts(1, window_orders=2, window_revenue_cents=50_000), 730, 15_000),
    (CustomerFacts(1, contacts_handled=1), 365, -2_000),
])
def test_lifetime_value_table(facts, window, ltv):
    result = lifetime_value(facts, window_days=window, rules=RULES)
    assert result.ltv_cents == ltv
    assert result.reasons[0].en.startswith("LTV")


@given(st.integers(0, 10**7), st.integers(0, 10**7), st.integers(0, 100), st.integers(1, 100))
def test_ltv_grows_with_revenue_and_falls_with_contacts(revenue, extra, contacts, orders):
    base = lifetime_value(CustomerFacts(1, window_orders=orders, window_revenue_cents=revenue,
                                        contacts_handled=contacts), window_days=365, rules=RULES)
    more = lifetime_value(CustomerFacts(1, window_orders=orders, window_revenue_cents=revenue + extra,
                                        contacts_handled=contacts), window_days=365, rules=RULES)
    busier = lifetime_value(CustomerFacts(1, window_orders=orders, window_revenue_cents=revenue,
                                          contacts_handled=contacts + 1), window_days=365, rules=RULES)
    assert more.ltv_cents >= base.ltv_cents >= busier.ltv_cents


# --- lifecycle ---------------------------------------------------------------------------------------

LIFE = LifecycleRules(new_days=90, at_risk_after_days=180, lapsed_after_days=365)


@pytest.mark.parametrize("first,last,prospect,stage", [
    (None, None, False, Stage.PROSPECT),
    (10, 5, True, Stage.PROSPECT),
    (10, 5, False, Stage.NEW),
    (89, 89, False, Stage.NEW),
    (90, 1, False, Stage.ACTIVE),
    (400, 179, False, Stage.ACTIVE),
    (400, 180, False, Stage.AT_RISK),
    (400, 364, False, Stage.AT_RISK),
    (400, 365, False, Stage.LAPSED),
    (200, 200, False, Stage.AT_RISK),
])
def test_lifecycle_table(first, last, prospect, stage):
    facts = CustomerFacts(1, is_prospect=prospect, first_order_at=None if first is None else days_ago(first),
                          last_order_at=None if last is None else days_ago(last))
    result = lifecycle_stage(facts, now=NOW, rules=LIFE)
    assert result.stage == stage
    assert result.reasons[0].code == "stage"


def test_lifecycle_rules_must_be_ordered():
    with pytest.raises(ValueError, match="at_risk_after_days"):
        LifecycleRules(at_risk_after_days=400, lapsed_after_days=365)


# --- churn -------------------------------------------------------------------------------------------

CHURN = ChurnRules(falling_frequency_ratio=0.5, low_csat_max=2.5, repeated_complaints_min=2)


@pytest.mark.parametrize("facts,codes,level", [
    (CustomerFacts(1), [], "none"),
    (CustomerFacts(1, earlier_half_orders=4, recent_half_orders=2), ["falling_frequency"], "low"),
    (CustomerFacts(1, earlier_half_orders=4, recent_half_orders=3), [], "none"),
    (CustomerFacts(1, earlier_half_orders=1, recent_half_orders=0), [], "none"),
    (CustomerFacts(1, open_complaints=1, complaints_in_window=1), ["open_complaint"], "low"),
    (CustomerFacts(1, open_complaints=1, complaints_in_window=2), ["open_complaint", "repeated_complaints"],
     "medium"),
    (CustomerFacts(1, csat_avg=2.5, csat_count=2), ["low_csat"], "low"),
    (CustomerFacts(1, csat_avg=2.6, csat_count=2), [], "none"),
    (CustomerFacts(1, csat_avg=1.0, csat_count=0), [], "none"),
    (CustomerFacts(1, earlier_half_orders=2, recent_half_orders=0, open_complaints=2, complaints_in_window=3,
                   csat_avg=1.0, csat_count=1),
     ["falling_frequency", "open_complaint", "repeated_complaints", "low_csat"], "high"),
])
def test_churn_signals_table(facts, codes, level):
    result = churn_signals(facts, CHURN)
    assert result.codes == codes and result.level == level
    assert all(s.en and s.zh for s in result.signals)


# --- loyalty -----------------------------------------------------------------------------------------

LOYAL = LoyaltyRules(csat_positive_min=4.0, nps_positive_min=9, repeat_min_orders=2)


@pytest.mark.parametrize("csat,nps,orders,loyalty", [
    (4.5, None, 3, Loyalty.TRUE),
    (4.0, 9.0, 2, Loyalty.TRUE),
    (4.5, None, 1, Loyalty.LATENT),
    (None, 10.0, 0, Loyalty.LATENT),
    (3.0, None, 5, Loyalty.INERTIA),
    (None, None, 5, Loyalty.INERTIA),
    (4.5, 6.0, 5, Loyalty.INERTIA),
    (2.0, None, 1, Loyalty.NONE),
    (None, None, 0, Loyalty.NONE),
])
def test_loyalty_table(csat, nps, orders, loyalty):
    facts = CustomerFacts(1, window_orders=orders, csat_avg=csat, csat_count=0 if csat is None else 2,
                          nps_avg=nps, nps_count=0 if nps is None else 1)
    result = loyalty_type(facts, LOYAL)
    assert result.loyalty == loyalty
    assert result.reasons[0].code == "loyalty"
    if csat is None and nps is None:
        assert result.reasons[1].code == "no_survey"


@given(st.one_of(st.none(), st.floats(1, 5)), st.one_of(st.none(), st.floats(0, 10)), st.integers(0, 50))
def test_loyalty_is_the_attitude_behaviour_matrix(csat, nps, orders):
    facts = CustomerFacts(1, window_orders=orders, csat_avg=csat, csat_count=int(csat is not None),
                          nps_avg=nps, nps_count=int(nps is not None))
    result = loyalty_type(facts, LOYAL)
    assert result.repeat_buyer == (orders >= 2)
    assert (result.loyalty in (Loyalty.TRUE, Loyalty.LATENT)) == result.attitude_positive
    assert (result.loyalty in (Loyalty.TRUE, Loyalty.INERTIA)) == result.repeat_buyer


# --- whole population --------------------------------------------------------------------------------

def test_score_customers_covers_everyone_and_leaves_prospects_out_of_the_ranking():
    facts = [facts_from_orders(i, [OrderFact(days_ago(10 * i), 10_000 * i)], now=NOW, window_days=365)
             for i in range(1, 11)]
    facts.append(CustomerFacts(50, is_prospect=True, contacts_handled=1))
    run = score_customers(facts, CrmConfig(), now=NOW)
    assert set(run.values) == {f.customer_id for f in facts}
    assert run.pyramid.total_customers == 10
    prospect = run.values[50]
    assert prospect.tier.tier == Tier.SMALL and prospect.tier.rank is None
    assert prospect.lifecycle.stage == Stage.PROSPECT
    assert run.values[10].tier.tier == Tier.VIP
    summary = run.values[10].summary()
    assert summary["tier"] == "vip" and summary["segment"] == "mvc" and summary["rfm"].startswith("R")
    stored = run.values[10].explanation()
    assert stored["tier"]["tier"] == "vip" and isinstance(stored["rfm"]["reasons"], list)


def test_config_defaults_and_validation():
    config = CrmConfig()
    assert config.tiers.vip == 0.01 and [r.name for r in config.follow_ups][0] == "vip_keep_in_touch"
    with pytest.raises(ValueError, match="default_country"):
        CrmConfig(default_country="QQ")
    with pytest.raises(ValueError, match="duplicate"):
        CrmConfig(custom_attributes=[{"name": "a"}, {"name": "a"}])
    with pytest.raises(ValueError, match="choices"):
        CrmConfig(custom_attributes=[{"name": "size", "type": "choice"}])
    with pytest.raises(ValueError, match="days"):
        CrmConfig(follow_ups=[{"name": "x", "kind": "not_contacted", "tiers": ["vip"], "subject_en": "a",
                               "subject_zh": "b"}])
    with pytest.raises(ValueError, match="tiers"):
        CrmConfig(follow_ups=[{"name": "x", "kind": "lapsed", "subject_en": "a", "subject_zh": "b"}])
