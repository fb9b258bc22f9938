"""The complaints: section validates with clear messages; defaults are the issue's policy."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.complaints.config import ComplaintsConfig, Duration


def test_defaults_are_the_documented_policy():
    config = ComplaintsConfig()
    assert config.compensation.goodwill_bands_cents["P1"] == (30000, 150000)
    assert config.approvals.limits_cents["complaints_manager"] == 100000
    assert config.deadlines.levels["P2"].acknowledge == Duration(amount=4, unit="business_hours")
    assert config.category("delivery_delay").label_zh == "配送延误"
    assert config.compensation.fixed_rule("fraud_triple_price").minimum_cents == 50000
    assert Duration(amount=2, unit="business_days").is_business and not Duration(amount=1, unit="hours").is_business
    with pytest.raises(KeyError):
        config.category("nope")
    with pytest.raises(KeyError):
        config.compensation.fixed_rule("nope")


@pytest.mark.parametrize("raw, message", [
    ({"grading": {"factor_levels": {"harm": {0: {"en": "a", "zh": "b"}}}}}, "missing factor"),
    ({"grading": {"financial_loss_bounds_cents": [500, 100]}}, "increasing"),
    ({"grading": {"p2_min_total": 3, "p3_min_total": 3}}, "p3_min_total"),
    ({"grading": {"keywords": [{"factor": "mood", "score": 1, "keywords": ["x"]}]}}, "factor"),
    ({"deadlines": {"regulatory_profile": "mars"}}, "unknown profile"),
    ({"deadlines": {"levels": {"P1": {"acknowledge": {"amount": 1, "unit": "hours"},
                                      "resolve": {"amount": 1, "unit": "days"}}}}}, "missing level"),
    ({"deadlines": {"alert_fractions": [0.8, 0.5]}}, "alert_fractions"),
    ({"deadlines": {"alert_fractions": [0, 1]}}, "alert_fractions"),
    ({"compensation": {"goodwill_bands_cents": {"P1": [5, 1], "P2": [0, 1], "P3": [0, 1], "P4": [0, 1]}}}, "P1"),
    ({"compensation": {"goodwill_bands_cents": {"P1": [0, 1]}}}, "missing level"),
    ({"compensation": {"tier_position": {"vip": 2}}}, "tier_position"),
    ({"compensation": {"fixed_rules": [{"code": "a", "kind": "flat", "label": {"en": "a", "zh": "a"}}]}},
     "amount_cents"),
    ({"compensation": {"fixed_rules": [{"code": "a", "kind": "flat", "amount_cents": 1,
                                        "label": {"en": "a", "zh": "a"}}] * 2}}, "unique"),
    ({"compensation": {"fixed_rules": [{"code": "a", "kind": "flat", "amount_cents": 1, "categories": ["zzz"],
                                        "label": {"en": "a", "zh": "a"}}]}}, "unknown zzz"),
    ({"approvals": {"limits_cents": {"agent": 500, "team_lead": 100, "complaints_manager": 200,
                                     "head_of_service": 300}}}, "must not decrease"),
    ({"approvals": {"limits_cents": {"agent": 500}}}, "missing role"),
    ({"categories": [{"code": "a", "label_en": "A", "label_zh": "甲"}] * 2}, "unique"),
    ({"categories": [{"code": "a", "label_en": "A", "label_zh": "甲", "regulatory_profile": "mars"}]}, "mars"),
    ({"surprise": 1}, "extra"),
])
def test_bad_config_refused_with_the_key(raw, message):
    with pytest.raises(ValidationError, match=message):
        ComplaintsConfig.model_validate(raw)


def test_category_profile_and_yaml_style_values():
    config = ComplaintsConfig.model_validate({
        "categories": [{"code": "insurance_claim", "label_en": "Insurance claim", "label_zh": "保险理赔",
                        "regulatory_profile": "cn_banking_insurance"}],
        "compensation": {"fixed_rules": []},
        "grading": {"financial_loss_bounds_cents": [1000, 2000]},
    })
    assert config.category("insurance_claim").regulatory_profile == "cn_banking_insurance"
    assert config.grading.financial_loss_bounds_cents == (1000, 2000)
