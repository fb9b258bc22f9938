"""Compensation: redress, fixed rules, goodwill bands placed by tier, agent changes, caps, bad input."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.complaints.compensation import (
    CompensationError,
    CurrencyMismatch,
    FixedClaim,
    GoodwillCapExceeded,
    NegativeAmount,
    OutsideBand,
    ReasonRequired,
    UnknownRule,
    adjust_goodwill,
    check_amount,
    fixed_part,
    format_money,
    goodwill_range,
    propose,
)
from app.complaints.config import CompensationConfig, FixedRule, Text

CONFIG = CompensationConfig()
TIERS = ["small", "ordinary", "major", "vip"]


def proposal(level="P3", tier="ordinary", **kwargs):
    kwargs.setdefault("currency", "CNY")
    return propose(level=level, tier=tier, desk_currency="CNY", config=CONFIG, **kwargs)


@pytest.mark.parametrize("level, tier, goodwill", [
    ("P4", "small", 0), ("P4", "ordinary", 625), ("P4", "major", 1500), ("P4", "vip", 2500),
    ("P3", "small", 2500), ("P3", "ordinary", 4375), ("P3", "major", 7000), ("P3", "vip", 10000),
    ("P2", "small", 10000), ("P2", "ordinary", 15000), ("P2", "major", 22000), ("P2", "vip", 30000),
    ("P1", "small", 30000), ("P1", "ordinary", 60000), ("P1", "major", 102000), ("P1", "vip", 150000),
])
def test_goodwill_banded_by_level_placed_by_tier(level, tier, goodwill):
    result = proposal(level, tier)
    assert result.goodwill_cents == goodwill
    assert result.parts[-1].reason_code == f"goodwill_{level.lower()}"
    assert f"tier {tier}" in result.parts[-1].explanation.en


@given(st.sampled_from(["P1", "P2", "P3", "P4"]), st.sampled_from(TIERS), st.sampled_from(TIERS),
       st.integers(0, 10**7))
def test_tier_never_leaves_the_band_and_redress_ignores_tier(level, tier_a, tier_b, loss):
    a, b = proposal(level, tier_a, proven_loss_cents=loss), proposal(level, tier_b, proven_loss_cents=loss)
    low, high = CONFIG.goodwill_bands_cents[level]
    assert low <= a.goodwill_cents <= high
    assert a.amount_of("redress") == b.amount_of("redress") == loss
    if TIERS.index(tier_a) <= TIERS.index(tier_b):
        assert a.goodwill_cents <= b.goodwill_cents


@pytest.mark.parametrize("claim, amount", [
    (FixedClaim("delivery_delay_per_day", days=0), 0),
    (FixedClaim("delivery_delay_per_day", days=3), 3000),
    (FixedClaim("delivery_delay_per_day", days=20), 20000),
    (FixedClaim("delivery_delay_per_day", days=45), 20000),           # capped at 200
    (FixedClaim("fraud_triple_price", price_cents=10000), 50000),     # 3 x 100 = 300 -> minimum 500
    (FixedClaim("fraud_triple_price", price_cents=30000), 90000),     # 3 x 300 = 900
    (FixedClaim("fraud_triple_price", price_cents=0), 50000),
])
def test_fixed_rules(claim, amount):
    part = fixed_part(claim, CONFIG, "CNY")
    assert part.kind == "fixed" and part.reason_code == claim.rule_code and part.amount_cents == amount
    assert part.explanation.en.startswith(f"fixed {format_money(amount, 'CNY')}")
    assert part.explanation.zh.startswith("固定补偿")


def test_other_rule_kinds():
    config = CompensationConfig(fixed_rules=[
        FixedRule(code="flat_fee", kind="flat", amount_cents=1500, label=Text(en="Flat", zh="固定")),
        FixedRule(code="late", kind="per_day", per_day_cents=500, grace_days=2, label=Text(en="Late", zh="迟")),
    ])
    assert fixed_part(FixedClaim("flat_fee"), config, "CNY").amount_cents == 1500
    assert fixed_part(FixedClaim("late", days=5), config, "CNY").amount_cents == 1500  # 3 days beyond grace, no cap
    assert fixed_part(FixedClaim("late", days=1), config, "CNY").amount_cents == 0


def test_full_proposal_explained_with_reason_codes():
    result = proposal("P2", "vip", proven_loss_cents=12345,
                      fixed=[FixedClaim("delivery_delay_per_day", days=4)])
    assert [(p.kind, p.reason_code, p.amount_cents) for p in result.parts] == [
        ("redress", "proven_loss", 12345), ("fixed", "delivery_delay_per_day", 4000),
        ("goodwill", "goodwill_p2", 30000)]
    assert result.total_cents == 46345
    assert result.explanation("en")[0] == "redress 123.45 CNY: the proven loss, paid back in full"
    assert result.explanation("zh")[0].startswith("赔偿 123.45 CNY")
    record = result.to_dict()
    assert record["total_cents"] == 46345 and record["parts"][2]["reason_code"] == "goodwill_p2"


def test_without_goodwill():
    result = proposal("P1", "vip", proven_loss_cents=100, include_goodwill=False)
    assert result.goodwill_cents == 0 and result.total_cents == 100


@pytest.mark.parametrize("used, expected_range, proposed", [
    (0, (2500, 10000), 4375),
    (295000, (2500, 5000), 4375),     # cap 3,000 leaves 50: top lowered
    (298000, (0, 2000), 2000),        # leaves 20, below the band's bottom: anything up to 20
    (300000, (0, 0), 0),
    (900000, (0, 0), 0),
])
def test_goodwill_cap_per_12_months(used, expected_range, proposed):
    assert goodwill_range("P3", used, CONFIG) == expected_range
    result = proposal("P3", "ordinary", goodwill_used_12m_cents=used)
    assert result.goodwill_cents == proposed
    if expected_range[1] < 10000:
        assert "12-month goodwill cap" in result.parts[-1].explanation.en


def test_agent_changes_goodwill_within_band_with_reason():
    changed = adjust_goodwill(proposal("P3", "small"), 8000, "  long-standing customer, second failure  ")
    assert changed.goodwill_cents == 8000 and changed.adjustment_reason == "long-standing customer, second failure"
    assert "set by the agent" in changed.parts[-1].explanation.en and "坐席" in changed.parts[-1].explanation.zh
    assert len([p for p in changed.parts if p.kind == "goodwill"]) == 1


@pytest.mark.parametrize("amount, reason, error", [
    (8000, "", ReasonRequired), (8000, "   ", ReasonRequired),
    (-1, "why", NegativeAmount), (2499, "why", OutsideBand), (10001, "why", OutsideBand),
    (80.5, "why", CompensationError),
])
def test_agent_change_refused(amount, reason, error):
    original = proposal("P3", "small")
    with pytest.raises(error):
        adjust_goodwill(original, amount, reason)
    assert original.goodwill_cents == 2500  # nothing changed


def test_agent_change_above_cap_refused_but_below_band_allowed_when_capped():
    capped = proposal("P3", "vip", goodwill_used_12m_cents=295000)
    with pytest.raises(GoodwillCapExceeded):
        adjust_goodwill(capped, 6000, "why")
    nearly_used = proposal("P3", "vip", goodwill_used_12m_cents=299000)
    assert adjust_goodwill(nearly_used, 500, "what the cap leaves").goodwill_cents == 500


@pytest.mark.parametrize("kwargs, error", [
    ({"currency": "USD"}, CurrencyMismatch),
    ({"currency": ""}, CurrencyMismatch),
    ({"proven_loss_cents": -100}, NegativeAmount),
    ({"goodwill_used_12m_cents": -1}, NegativeAmount),
    ({"fixed": [FixedClaim("delivery_delay_per_day", days=-2)]}, NegativeAmount),
    ({"fixed": [FixedClaim("fraud_triple_price", price_cents=-100)]}, NegativeAmount),
    ({"fixed": [FixedClaim("no_such_rule")]}, UnknownRule),
    ({"level": "P9"}, CompensationError),
    ({"tier": "gold"}, CompensationError),
])
def test_bad_input_refused(kwargs, error):
    args = {"level": "P3", "tier": "ordinary", **kwargs}
    with pytest.raises(error):
        proposal(**args)


def test_currency_is_case_insensitive_and_money_formats():
    assert proposal(currency="cny").currency == "CNY"
    assert format_money(123456, "CNY") == "1,234.56 CNY" and format_money(-5, "CNY") == "-0.05 CNY"
    assert check_amount(0, "x") == 0
    with pytest.raises(CompensationError):
        check_amount(True, "x")
