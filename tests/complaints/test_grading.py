"""Grading defaults: factor scores -> level, vulnerable step, tier never raising severity, keywords."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.complaints.config import FACTORS, GradingConfig, KeywordRule
from app.complaints.grading import (
    FactorInput,
    GradingError,
    changed_factors,
    grade,
    is_more_severe,
    score_financial_loss,
    score_repeat_contact,
    suggest,
)

RULES = GradingConfig()


def scores(harm=0, money=0, legal=0, repeat=0, public=0):
    return {"harm": harm, "financial_loss": money, "legal_risk": legal, "repeat_contact": repeat,
            "public_exposure": public}


@pytest.mark.parametrize("given_scores, vulnerable, level", [
    (scores(), False, "P4"),
    (scores(harm=1, money=1), False, "P4"),             # total 2 < 3
    (scores(harm=1, money=1, legal=1), False, "P3"),    # total 3
    (scores(2, 2, 1), False, "P3"),                     # total 5
    (scores(2, 2, 1, 1), False, "P2"),                  # total 6
    (scores(2, 2, 2, 2, 2), False, "P2"),               # total 10, no factor at 3
    (scores(harm=3), False, "P1"),                      # any factor at 3, total only 3
    (scores(public=3), False, "P1"),
    (scores(money=3, legal=3), False, "P1"),
    (scores(), True, "P3"),                             # vulnerable: P4 -> P3
    (scores(1, 1, 1), True, "P2"),                      # P3 -> P2
    (scores(2, 2, 2), True, "P1"),                      # P2 -> P1
    (scores(harm=3), True, "P1"),                       # P1 stays P1
])
def test_level_rules(given_scores, vulnerable, level):
    assert grade(given_scores, RULES, vulnerable=vulnerable).level == level


@given(st.fixed_dictionaries({f: st.integers(0, 3) for f in FACTORS}), st.booleans(),
       st.sampled_from(["vip", "major", "ordinary", "small"]))
def test_tier_never_changes_severity(values, vulnerable, tier):
    without = grade(values, RULES, vulnerable=vulnerable)
    with_tier = grade(values, RULES, vulnerable=vulnerable, tier=tier)
    assert with_tier.level == without.level
    assert with_tier.total == without.total
    assert any(f"tier {tier} does not change severity" in r.en for r in with_tier.level_reasons)
    named = {"vip": "VIP 客户", "major": "主要客户", "ordinary": "普通客户", "small": "小客户"}[tier]
    assert any(f"客户等级 {named} 不影响严重程度" in r.zh for r in with_tier.level_reasons)  # the tier by name


@given(st.fixed_dictionaries({f: st.integers(0, 3) for f in FACTORS}))
def test_vulnerable_is_never_less_severe_and_at_most_one_step(values):
    plain, vulnerable = grade(values, RULES), grade(values, RULES, vulnerable=True)
    assert not is_more_severe(plain.level, vulnerable.level)
    order = ["P1", "P2", "P3", "P4"]
    assert order.index(plain.level) - order.index(vulnerable.level) == (0 if plain.level == "P1" else 1)


@given(st.fixed_dictionaries({f: st.integers(0, 3) for f in FACTORS}))
def test_every_point_is_explained_in_both_languages(values):
    result = grade(values, RULES)
    assert [p.factor for p in result.points] == list(FACTORS)
    assert result.total == sum(values.values())
    english, chinese = result.explanation("en"), result.explanation("zh")
    assert len(english) == len(chinese) == len(FACTORS) + 1
    for point, line in zip(result.points, english, strict=False):
        assert f"{point.score}/3" in line


def test_explanation_names_agent_note_and_level_reason():
    result = grade({"harm": FactorInput(2, note="no internet for 3 days"), "legal_risk": 1}, RULES)
    lines = result.explanation("en")
    assert "harm 2/3: distress, or two or more days without service (agent: no internet for 3 days)" in lines
    assert lines[-1] == "P3: total 3 is from 3 to 5"
    assert result.explanation("zh")[0].startswith("损害 2/3")
    assert result.to_dict()["points"][0]["note"] == "no internet for 3 days"


def test_critical_and_vulnerable_reasons():
    result = grade(scores(harm=3, public=3), RULES, vulnerable=True)
    assert result.level_reasons[0].en == "P1 (critical): harm, public exposure scored 3"
    assert result.level_reasons[1].en == "vulnerable customer: already at the highest level P1"
    assert "P4: total 0 is below 3" in grade({}, RULES).explanation()
    assert grade(scores(3, 3, 3, 3, 3), RULES).to_dict()["level"] == "P1"


@pytest.mark.parametrize("bad", [{"mood": 1}, {"harm": 4}, {"harm": -1}, {"harm": True}, {"harm": 1.5},
                                 {"harm": FactorInput(1, source="rumour")}])
def test_bad_scores_refused(bad):
    with pytest.raises(GradingError):
        grade(bad, RULES)


def test_configured_rules_change_thresholds():
    rules = GradingConfig(p2_min_total=8, p3_min_total=4, critical_factor_score=3, vulnerable_levels_up=0)
    assert grade(scores(2, 2, 2), rules).level == "P3"
    assert grade(scores(1, 1, 1), rules, vulnerable=True).level == "P4"
    assert len(grade(scores(1, 1, 1), rules, vulnerable=True).level_reasons) == 1


@pytest.mark.parametrize("amount, score", [
    (None, 0), (0, 0), (-5, 0), (1, 1), (4999, 1), (5000, 2), (50000, 2), (50001, 3), (10**9, 3)])
def test_financial_loss_bands(amount, score):
    assert score_financial_loss(amount, RULES) == score


@pytest.mark.parametrize("prior, reopened, after_final, score", [
    (0, False, False, 0), (1, False, False, 1), (2, False, False, 2), (7, False, False, 2),
    (0, True, False, 2), (1, False, True, 3), (0, True, True, 3)])
def test_repeat_contact_from_history(prior, reopened, after_final, score):
    assert score_repeat_contact(prior, reopened=reopened, after_final_response=after_final) == score


@pytest.mark.parametrize("text, expected", [
    ("I will talk to my lawyer", {"legal_risk": 2}),
    ("我要投诉到消协", {"legal_risk": 2}),
    ("已经起诉了", {"legal_risk": 3}),
    ("This ISSUE is annoying", {"harm": 1}),           # 'sue' inside 'issue' is not a word
    ("我要找媒体曝光", {"public_exposure": 2}),
    ("it went viral on weibo", {"public_exposure": 3}),  # the strongest wins
    ("the heater caught fire and my son was injured", {"harm": 3}),
    ("已经是第三次打电话了", {"repeat_contact": 2}),
    ("calling again, second time", {"repeat_contact": 1}),
    ("I am not happy with the colour", {}),
    ("Legal   Action will follow", {"legal_risk": 2}),    # spaces between words may vary
])
def test_keyword_suggestions(text, expected):
    found = suggest(text, RULES)
    assert {f: s.score for f, s in found.items()} == expected
    for item in found.values():
        assert item.source == "keyword" and item.evidence
        assert item.reason.en and item.reason.zh


def test_suggestions_from_amount_and_history_and_keywords_combine():
    found = suggest("second time I call", RULES, amount_claimed_cents=60000, prior_contacts=2)
    assert found["financial_loss"].score == 3 and found["financial_loss"].source == "amount"
    assert found["repeat_contact"].score == 2 and found["repeat_contact"].source == "history"
    assert "索赔金额" in found["financial_loss"].reason.zh and "联系记录" in found["repeat_contact"].reason.zh
    assert suggest("", RULES) == {}


def test_custom_keyword_rules():
    rules = GradingConfig(keywords=[KeywordRule(factor="legal_risk", score=3, keywords=["GDPR"])])
    assert suggest("this breaches gdpr", rules)["legal_risk"].score == 3
    assert suggest("lawyer", rules) == {}


def test_changed_factors_for_regrade_audit():
    old, new = grade(scores(1, 1, 1), RULES), grade(scores(1, 2, 1, 3), RULES)
    assert changed_factors(old, new) == {"financial_loss": (1, 2), "repeat_contact": (0, 3)}
    assert changed_factors(old, old) == {}


def test_is_more_severe():
    assert is_more_severe("P1", "P2") and not is_more_severe("P3", "P3") and not is_more_severe("P4", "P1")


_KEYWORDS = ["complaint", "charged twice", "Refund", "late", "投诉", "退款", "k", "is", "ski", ""]


@given(text=st.text(alphabet="abcdeiklnoprstuwCIKLS \n\t-İıſK投诉退款", max_size=60),
       keywords=st.lists(st.sampled_from(_KEYWORDS), max_size=6))
def test_keywords_match_as_a_search_of_each_keyword_pattern(text, keywords):
    # the substring pre-check only saves regex scans: the answer is each keyword's pattern searched in turn
    from app.complaints.grading import _pattern, matched_keywords

    assert matched_keywords(text, keywords) == [k for k in keywords if k and _pattern(k).search(text)]


def test_letters_that_match_ascii_only_ignoring_case_still_count():
    from app.complaints.grading import matched_keywords

    # 'ı' and 'ſ' match i and s ignoring case, though their lower case is not i or s; 'İ' lowers to two chars
    assert matched_keywords("a SKI trıp, ſki, İn", ["ski", "trip", "in"]) == ["ski", "trip", "in"]
