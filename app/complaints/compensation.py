"""Compensation proposals (pure): redress, fixed amounts and goodwill, each with a reason code.

- **redress** pays back a proven loss, the same for every customer (no tier involved);
- **fixed** amounts follow configured rules (so much per day late, three times the price with a minimum
  for fraud), computed from facts of the case;
- **goodwill** is banded by the complaint's level; the customer's tier only places it inside the band,
  and a per-customer cap over twelve months limits it. The agent may move it within the band with a reason.

All amounts are integer minor units in one currency, the desk's; anything else is refused before any
arithmetic. Every refusal is a typed CompensationError with a message for the agent.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from app.complaints.config import LEVELS, TIERS, CompensationConfig, FixedRule
from app.complaints.grading import Bilingual

KINDS = ("redress", "fixed", "goodwill")


class CompensationError(ValueError):
    """Refused compensation input; nothing was proposed or changed."""


class NegativeAmount(CompensationError):
    pass


class CurrencyMismatch(CompensationError):
    pass


class OutsideBand(CompensationError):
    pass


class GoodwillCapExceeded(CompensationError):
    pass


class ReasonRequired(CompensationError):
    pass


class UnknownRule(CompensationError):
    pass


def format_money(amount_cents: int, currency: str) -> str:
    """'123.45 CNY' for display in explanations (two decimals: the desk's currencies all have cents)."""
    sign = "-" if amount_cents < 0 else ""
    whole, cents = divmod(abs(amount_cents), 100)
    return f"{sign}{whole:,}.{cents:02d} {currency}"


def check_amount(amount_cents: int, what: str) -> int:
    """``amount_cents`` when it is a non-negative whole number; NegativeAmount or CompensationError otherwise."""
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int):
        raise CompensationError(f"{what}: amount must be a whole number of minor units, got {amount_cents!r}")
    if amount_cents < 0:
        raise NegativeAmount(f"{what}: amount cannot be negative ({amount_cents})")
    return amount_cents


def check_currency(currency: str, expected: str, what: str) -> None:
    """Raise CurrencyMismatch unless ``currency`` is the desk's currency ``expected``."""
    if (currency or "").upper() != expected.upper():
        raise CurrencyMismatch(f"{what}: currency {currency!r} is not the desk's currency {expected!r}")


@dataclass(frozen=True)
class Part:
    kind: str  # redress | fixed | goodwill
    reason_code: str
    amount_cents: int
    explanation: Bilingual


@dataclass(frozen=True)
class FixedClaim:
    """Facts for one fixed rule: days late for ``per_day``, the price for ``multiple_of_price``."""

    rule_code: str
    days: int = 0
    price_cents: int = 0


@dataclass(frozen=True)
class Proposal:
    currency: str
    level: str
    tier: str
    parts: tuple[Part, ...]
    band_cents: tuple[int, int]  # the level's goodwill band
    goodwill_range_cents: tuple[int, int]  # what the agent may choose: the band limited by the 12-month cap
    goodwill_used_12m_cents: int
    adjustment_reason: str = ""

    @property
    def total_cents(self) -> int:
        return sum(p.amount_cents for p in self.parts)

    @property
    def goodwill_cents(self) -> int:
        return sum(p.amount_cents for p in self.parts if p.kind == "goodwill")

    def amount_of(self, kind: str) -> int:
        return sum(p.amount_cents for p in self.parts if p.kind == kind)

    def explanation(self, language: str = "en") -> list[str]:
        return [p.explanation.in_language(language) for p in self.parts]

    def to_dict(self) -> dict:
        """JSON-safe record stored with the proposal and the audit trail."""
        return {
            "currency": self.currency, "level": self.level, "tier": self.tier, "total_cents": self.total_cents,
            "band_cents": list(self.band_cents), "goodwill_range_cents": list(self.goodwill_range_cents),
            "goodwill_used_12m_cents": self.goodwill_used_12m_cents, "adjustment_reason": self.adjustment_reason,
            "parts": [{"kind": p.kind, "reason_code": p.reason_code, "amount_cents": p.amount_cents,
                       "explanation_en": p.explanation.en, "explanation_zh": p.explanation.zh} for p in self.parts],
        }


# --------------------------------------------------------------------------------------------- parts
def redress_part(proven_loss_cents: int, currency: str) -> Part:
    """Redress for a proven loss: exactly the loss, whoever the customer is."""
    check_amount(proven_loss_cents, "redress")
    money = format_money(proven_loss_cents, currency)
    return Part(kind="redress", reason_code="proven_loss", amount_cents=proven_loss_cents,
                explanation=Bilingual(f"redress {money}: the proven loss, paid back in full",
                                      f"赔偿 {money}：已证实的损失，全额赔付"))


def _fixed_amount(rule: FixedRule, claim: FixedClaim) -> tuple[int, str, str]:
    if rule.kind == "per_day":
        days = max(0, claim.days - rule.grace_days)
        amount = days * rule.per_day_cents
        capped = rule.max_cents is not None and amount > rule.max_cents
        amount = min(amount, rule.max_cents) if rule.max_cents is not None else amount
        note_en = f"{days} day(s) x {rule.per_day_cents} cents" + (" (capped)" if capped else "")
        note_zh = f"{days} 天 x {rule.per_day_cents} 分" + ("（已封顶）" if capped else "")
        return amount, note_en, note_zh
    if rule.kind == "multiple_of_price":
        computed = round(claim.price_cents * rule.multiple)
        amount = max(computed, rule.minimum_cents)
        floor = amount > computed
        note_en = f"{rule.multiple:g} x price {claim.price_cents} cents" + (" (raised to the minimum)" if floor else "")
        note_zh = f"价款 {claim.price_cents} 分 x {rule.multiple:g}" + ("（按最低额）" if floor else "")
        return amount, note_en, note_zh
    return rule.amount_cents, "fixed amount", "固定金额"


def fixed_part(claim: FixedClaim, config: CompensationConfig, currency: str) -> Part:
    """The amount a fixed rule gives for ``claim``. Raises UnknownRule or NegativeAmount."""
    try:
        rule = config.fixed_rule(claim.rule_code)
    except KeyError:
        raise UnknownRule(f"no fixed compensation rule {claim.rule_code!r}") from None
    if claim.days < 0:
        raise NegativeAmount(f"{claim.rule_code}: days cannot be negative ({claim.days})")
    check_amount(claim.price_cents, f"{claim.rule_code} price")
    amount, note_en, note_zh = _fixed_amount(rule, claim)
    money = format_money(amount, currency)
    return Part(kind="fixed", reason_code=rule.code, amount_cents=amount,
                explanation=Bilingual(f"fixed {money}: {rule.label.en} — {note_en}",
                                      f"固定补偿 {money}：{rule.label.zh}——{note_zh}"))


def goodwill_range(level: str, used_12m_cents: int, config: CompensationConfig) -> tuple[int, int]:
    """What goodwill may be for ``level``: the band, its top lowered to what the 12-month cap leaves
    (and anything from zero to that when the cap leaves less than the band's bottom)."""
    low, high = config.goodwill_bands_cents[level]
    remaining = max(0, config.goodwill_cap_12m_cents - used_12m_cents)
    top = min(high, remaining)
    return (low, top) if top >= low else (0, top)


def _goodwill_part(level: str, tier: str, amount: int, band: tuple[int, int], allowed: tuple[int, int],
                   currency: str, reason: str = "") -> Part:
    money = format_money(amount, currency)
    band_text = f"{format_money(band[0], currency)}–{format_money(band[1], currency)}"
    if reason:
        en = f"goodwill {money}: set by the agent within the {level} band {band_text} — {reason}"
        zh = f"善意补偿 {money}：坐席在 {level} 区间 {band_text} 内调整——{reason}"
    else:
        en = f"goodwill {money}: {level} band {band_text}, placed by customer tier {tier}"
        zh = f"善意补偿 {money}：{level} 区间 {band_text}，按客户等级 {tier} 确定位置"
    if allowed[1] < band[1]:
        en += f"; limited by the 12-month goodwill cap to {format_money(allowed[1], currency)}"
        zh += f"；受 12 个月善意补偿上限限制，最多 {format_money(allowed[1], currency)}"
    return Part(kind="goodwill", reason_code=f"goodwill_{level.lower()}", amount_cents=amount,
                explanation=Bilingual(en, zh))


def propose(*, level: str, tier: str, currency: str, desk_currency: str, config: CompensationConfig,
            proven_loss_cents: int = 0, fixed: Iterable[FixedClaim] = (), goodwill_used_12m_cents: int = 0,
            include_goodwill: bool = True) -> Proposal:
    """The desk's proposal: redress for the proven loss, each fixed claim, and goodwill for the level.

    Goodwill = band low + tier position x (band high - band low), then lowered to what the customer's
    12-month cap leaves. Raises CurrencyMismatch, NegativeAmount, UnknownRule or CompensationError
    (unknown level or tier)."""
    if level not in LEVELS:
        raise CompensationError(f"unknown complaint level {level!r}")
    if tier not in TIERS:
        raise CompensationError(f"unknown customer tier {tier!r}")
    check_currency(currency, desk_currency, "compensation")
    check_amount(goodwill_used_12m_cents, "goodwill used in the last 12 months")
    check_amount(proven_loss_cents, "redress")
    parts: list[Part] = []
    if proven_loss_cents:
        parts.append(redress_part(proven_loss_cents, desk_currency))
    parts.extend(fixed_part(claim, config, desk_currency) for claim in fixed)
    band = config.goodwill_bands_cents[level]
    allowed = goodwill_range(level, goodwill_used_12m_cents, config)
    if include_goodwill:
        placed = band[0] + round(config.tier_position[tier] * (band[1] - band[0]))
        amount = max(allowed[0], min(placed, allowed[1]))
        parts.append(_goodwill_part(level, tier, amount, band, allowed, desk_currency))
    return Proposal(currency=desk_currency, level=level, tier=tier, parts=tuple(parts), band_cents=band,
                    goodwill_range_cents=allowed, goodwill_used_12m_cents=goodwill_used_12m_cents)


def adjust_goodwill(proposal: Proposal, amount_cents: int, reason: str) -> Proposal:
    """The proposal with goodwill set to ``amount_cents`` by the agent, who must give a reason.

    Raises ReasonRequired, NegativeAmount, OutsideBand (outside the level's band) or
    GoodwillCapExceeded (inside the band but beyond what the 12-month cap leaves)."""
    if not (reason or "").strip():
        raise ReasonRequired("changing the proposed goodwill needs a reason")
    check_amount(amount_cents, "goodwill")
    band, allowed = proposal.band_cents, proposal.goodwill_range_cents
    if not band[0] <= amount_cents <= band[1] and not allowed[0] <= amount_cents <= allowed[1]:
        raise OutsideBand(f"goodwill {format_money(amount_cents, proposal.currency)} is outside the {proposal.level} "
                          f"band {format_money(band[0], proposal.currency)}–{format_money(band[1], proposal.currency)}")
    if amount_cents > allowed[1]:
        raise GoodwillCapExceeded(
            f"goodwill {format_money(amount_cents, proposal.currency)} exceeds what the customer's 12-month cap "
            f"leaves ({format_money(allowed[1], proposal.currency)})")
    part = _goodwill_part(proposal.level, proposal.tier, amount_cents, band, allowed, proposal.currency,
                          reason.strip())
    parts = tuple(p for p in proposal.parts if p.kind != "goodwill") + (part,)
    return replace(proposal, parts=parts, adjustment_reason=reason.strip())
