"""Complaint grading (pure): five factors scored 0-3, the level rules, keyword suggestions, explanations.

The desk suggests, the agent decides: ``suggest`` reads the complaint's words, the amount claimed and the
contact history and proposes factor scores with the evidence; ``grade`` turns the scores the agent
confirmed into a level and explains every point and the level in English and Chinese.

Customer tier is accepted by ``grade`` only so the explanation can say that it was ignored: tier moves
routing priority and where goodwill falls in its band, never severity.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from app.complaints.config import FACTORS, LEVELS, GradingConfig, KeywordRule
from app.crm.scoring import LABELS as TIER_NAMES

FACTOR_NAMES = {
    "harm": ("harm", "损害"),
    "financial_loss": ("financial loss", "经济损失"),
    "legal_risk": ("legal or regulatory risk", "法律或监管风险"),
    "repeat_contact": ("repeat contact", "重复联系"),
    "public_exposure": ("public exposure", "公开曝光"),
}
SOURCES = ("agent", "keyword", "amount", "history")


class GradingError(ValueError):
    """A score or factor the rules do not know; nothing was graded."""


@dataclass(frozen=True)
class Bilingual:
    en: str
    zh: str

    def in_language(self, language: str) -> str:
        return self.zh if language == "zh" else self.en


@dataclass(frozen=True)
class FactorInput:
    """One factor as the agent confirmed it: the score, where it came from and the agent's own words."""

    score: int
    source: str = "agent"
    note: str = ""


@dataclass(frozen=True)
class Point:
    """One factor's contribution to the grade, with the rule text that justifies the score."""

    factor: str
    score: int
    source: str
    note: str
    reason: Bilingual


@dataclass(frozen=True)
class Grade:
    level: str
    base_level: str  # before the vulnerable-customer step
    total: int
    points: tuple[Point, ...]
    level_reasons: tuple[Bilingual, ...]
    vulnerable: bool

    @property
    def scores(self) -> dict[str, int]:
        return {p.factor: p.score for p in self.points}

    def explanation(self, language: str = "en") -> list[str]:
        """Every point and the level rule, one line each, in ``language`` ('en' or 'zh')."""
        return [p.reason.in_language(language) for p in self.points] + [
            r.in_language(language) for r in self.level_reasons]

    def to_dict(self) -> dict:
        """A JSON-safe record of the grade, stored with the complaint and its audit trail."""
        return {
            "level": self.level, "base_level": self.base_level, "total": self.total, "vulnerable": self.vulnerable,
            "points": [{"factor": p.factor, "score": p.score, "source": p.source, "note": p.note,
                        "reason_en": p.reason.en, "reason_zh": p.reason.zh} for p in self.points],
            "level_reasons": [{"en": r.en, "zh": r.zh} for r in self.level_reasons],
        }


@dataclass(frozen=True)
class Suggestion:
    """A proposed score for one factor and why: the words matched, the amount or the history."""

    factor: str
    score: int
    source: str
    evidence: tuple[str, ...] = field(default_factory=tuple)
    reason: Bilingual = Bilingual("", "")


# ----------------------------------------------------------------------------------------- scoring
def score_financial_loss(amount_cents: int | None, rules: GradingConfig) -> int:
    """0 for no loss, 1 below the first bound, 2 up to and including the second, 3 above it."""
    if amount_cents is None or amount_cents <= 0:
        return 0
    low, high = rules.financial_loss_bounds_cents
    if amount_cents < low:
        return 1
    return 2 if amount_cents <= high else 3


def score_repeat_contact(prior_contacts: int, *, reopened: bool = False, after_final_response: bool = False) -> int:
    """Repeat contact from the history: 1 on the second contact, 2 from the third or when reopened,
    3 when the customer comes back after a final response."""
    if after_final_response:
        return 3
    if reopened or prior_contacts >= 2:
        return 2
    return 1 if prior_contacts == 1 else 0


def _level_index(level: str) -> int:
    return LEVELS.index(level)


def _normalise(scores: Mapping[str, int | FactorInput]) -> dict[str, FactorInput]:
    unknown = sorted(set(scores) - set(FACTORS))
    if unknown:
        raise GradingError(f"unknown grading factor(s): {', '.join(unknown)}")
    result = {}
    for factor in FACTORS:
        value = scores.get(factor, 0)
        item = value if isinstance(value, FactorInput) else FactorInput(score=value)
        if isinstance(item.score, bool) or not isinstance(item.score, int) or not 0 <= item.score <= 3:
            raise GradingError(f"{factor}: score must be a whole number from 0 to 3, got {item.score!r}")
        if item.source not in SOURCES:
            raise GradingError(f"{factor}: unknown score source {item.source!r}")
        result[factor] = item
    return result


def _point(factor: str, item: FactorInput, rules: GradingConfig) -> Point:
    name_en, name_zh = FACTOR_NAMES[factor]
    text = rules.factor_levels[factor][item.score]
    en = f"{name_en} {item.score}/3: {text.en}"
    zh = f"{name_zh} {item.score}/3：{text.zh}"
    if item.note:
        en, zh = f"{en} ({item.source}: {item.note})", f"{zh}（{item.source}：{item.note}）"
    return Point(factor=factor, score=item.score, source=item.source, note=item.note, reason=Bilingual(en, zh))


def _base_level(points: tuple[Point, ...], total: int, rules: GradingConfig) -> tuple[str, Bilingual]:
    critical = [p for p in points if p.score >= rules.critical_factor_score]
    if critical:
        names_en = ", ".join(FACTOR_NAMES[p.factor][0] for p in critical)
        names_zh = "、".join(FACTOR_NAMES[p.factor][1] for p in critical)
        return "P1", Bilingual(f"P1 (critical): {names_en} scored {rules.critical_factor_score}",
                               f"P1（严重）：{names_zh}达到 {rules.critical_factor_score} 分")
    if total >= rules.p2_min_total:
        return "P2", Bilingual(f"P2: total {total} is {rules.p2_min_total} or more",
                               f"P2：总分 {total}，不低于 {rules.p2_min_total}")
    if total >= rules.p3_min_total:
        top = rules.p2_min_total - 1
        return "P3", Bilingual(f"P3: total {total} is from {rules.p3_min_total} to {top}",
                               f"P3：总分 {total}，在 {rules.p3_min_total} 至 {top} 之间")
    return "P4", Bilingual(f"P4: total {total} is below {rules.p3_min_total}",
                           f"P4：总分 {total}，低于 {rules.p3_min_total}")


def grade(scores: Mapping[str, int | FactorInput], rules: GradingConfig, *, vulnerable: bool = False,
          tier: str | None = None) -> Grade:
    """Grade a complaint from its five factor scores (missing factors count 0).

    Level: P1 if any factor reaches ``critical_factor_score``; else P2 / P3 / P4 by total; then a
    vulnerable customer moves up ``vulnerable_levels_up`` levels (never beyond P1). ``tier`` never
    changes the result; it is only named in the explanation. Raises GradingError for an unknown factor,
    a score outside 0-3 or an unknown source."""
    inputs = _normalise(scores)
    points = tuple(_point(factor, inputs[factor], rules) for factor in FACTORS)
    total = sum(p.score for p in points)
    base, reason = _base_level(points, total, rules)
    reasons = [reason]
    level = base
    if vulnerable and rules.vulnerable_levels_up:
        level = LEVELS[max(0, _level_index(base) - rules.vulnerable_levels_up)]
        if level != base:
            reasons.append(Bilingual(f"vulnerable customer: moved up from {base} to {level}",
                                     f"弱势客户：由 {base} 上调至 {level}"))
        else:
            reasons.append(Bilingual(f"vulnerable customer: already at the highest level {base}",
                                     f"弱势客户：已是最高级别 {base}"))
    if tier:
        reasons.append(Bilingual(
            f"customer tier {tier} does not change severity (it sets routing priority and goodwill within a band)",
            f"客户等级 {TIER_NAMES.get(tier, (tier, tier))[1]} 不影响严重程度（只影响路由优先级和补偿区间内的位置）"))
    return Grade(level=level, base_level=base, total=total, points=points, level_reasons=tuple(reasons),
                 vulnerable=vulnerable)


def is_more_severe(level: str, than: str) -> bool:
    """True when ``level`` is more severe than ``than`` (P1 is the most severe)."""
    return _level_index(level) < _level_index(than)


# ------------------------------------------------------------------------------------- suggestions
@lru_cache(maxsize=512)
def _pattern(keyword: str) -> re.Pattern[str]:
    """Whole-word, case-insensitive for ASCII keywords; plain substring for Chinese (no word spaces)."""
    if keyword.isascii():
        words = r"\s+".join(re.escape(w) for w in keyword.split())
        return re.compile(rf"(?<![A-Za-z0-9]){words}(?![A-Za-z0-9])", re.IGNORECASE)
    return re.compile(re.escape(keyword))


# The non-ASCII characters whose lower case does not hold the ASCII letter IGNORECASE matches them to
# ('İ' lowers to two characters, 'ı' and 'ſ' match i and s); text with one is searched without a pre-check.
_CASE_TWINS = re.compile("[\u0130\u0131\u017f]")


def _may_match(keyword: str, text: str, lowered: str | None) -> bool:
    """A quick necessary condition for ``_pattern(keyword)`` to find something in ``text``: each word of
    an ASCII keyword occurs in the lower-cased text (``lowered``; None: no pre-check), a Chinese keyword
    occurs as it is. Substring checks instead of a regex scan of the whole text per keyword."""
    if not keyword.isascii():
        return keyword in text
    return lowered is None or all(word in lowered for word in keyword.lower().split())


def matched_keywords(text: str, keywords: list[str]) -> list[str]:
    """The keywords found in ``text``, matched as grading matches them (also used by email intake rules)."""
    text = text or ""
    lowered = text.lower() if not _CASE_TWINS.search(text) else None
    return [keyword for keyword in keywords
            if keyword and _may_match(keyword, text, lowered) and _pattern(keyword).search(text)]


def _keyword_suggestions(text: str, keywords: list[KeywordRule], rules: GradingConfig) -> list[Suggestion]:
    found: list[Suggestion] = []
    for rule in keywords:
        matched = tuple(k for k in rule.keywords if _pattern(k).search(text))
        if not matched:
            continue
        name_en, name_zh = FACTOR_NAMES[rule.factor]
        level_text = rules.factor_levels[rule.factor][rule.score]
        quoted = ", ".join(f"'{m}'" for m in matched)
        found.append(Suggestion(
            factor=rule.factor, score=rule.score, source="keyword", evidence=matched,
            reason=Bilingual(f"{name_en} {rule.score}/3 suggested by the words {quoted} ({level_text.en})",
                             f"{name_zh} {rule.score}/3，依据词语 {quoted}（{level_text.zh}）")))
    return found


def suggest(text: str, rules: GradingConfig, *, amount_claimed_cents: int | None = None, prior_contacts: int = 0,
            reopened: bool = False, after_final_response: bool = False) -> dict[str, Suggestion]:
    """The strongest suggestion per factor from the text, the amount claimed and the history.

    Only factors with something to suggest appear. The agent confirms each before ``grade``."""
    candidates = _keyword_suggestions(text or "", rules.keywords, rules)
    money = score_financial_loss(amount_claimed_cents, rules)
    if money:
        level_text = rules.factor_levels["financial_loss"][money]
        candidates.append(Suggestion(
            factor="financial_loss", score=money, source="amount", evidence=(str(amount_claimed_cents),),
            reason=Bilingual(f"financial loss {money}/3 from the amount claimed ({level_text.en})",
                             f"经济损失 {money}/3，依据索赔金额（{level_text.zh}）")))
    repeat = score_repeat_contact(prior_contacts, reopened=reopened, after_final_response=after_final_response)
    if repeat:
        level_text = rules.factor_levels["repeat_contact"][repeat]
        candidates.append(Suggestion(
            factor="repeat_contact", score=repeat, source="history", evidence=(f"prior_contacts={prior_contacts}",),
            reason=Bilingual(f"repeat contact {repeat}/3 from the contact history ({level_text.en})",
                             f"重复联系 {repeat}/3，依据联系记录（{level_text.zh}）")))
    best: dict[str, Suggestion] = {}
    for item in candidates:
        current = best.get(item.factor)
        if current is None or item.score > current.score:
            best[item.factor] = item
    return best


def changed_factors(old: Grade, new: Grade) -> dict[str, tuple[int, int]]:
    """Factors whose score differs between two grades: {factor: (old, new)} for the regrade audit entry."""
    before, after = old.scores, new.scores
    return {f: (before[f], after[f]) for f in FACTORS if before[f] != after[f]}
