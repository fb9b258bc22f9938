"""Customer value, pure: RFM quintiles, the revenue pyramid, MVC/MGC/BZC, LTV, lifecycle, churn, loyalty.

No I/O: inputs are ``CustomerFacts`` (aggregates the job reads with SQL, or ``facts_from_orders`` builds
from a list of orders), outputs are frozen dataclasses. Every result carries ``reasons``: bilingual
(en + zh) sentences saying *why*, stored with the score so the console can show them. Thresholds come
from ``CrmConfig`` (config.yaml ``crm:``), never from constants here.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from collections.abc import Iterable, Mapping, Sequence

from app.crm.config import ChurnRules, CrmConfig, LifecycleRules, LoyaltyRules, TierThresholds, ValueRules

DAYS_PER_YEAR = 365


class Tier(StrEnum):
    VIP = "vip"
    MAJOR = "major"
    ORDINARY = "ordinary"
    SMALL = "small"


class Segment(StrEnum):
    MVC = "mvc"  # most valuable customers
    MGC = "mgc"  # most growth potential
    BZC = "bzc"  # below zero: costs to serve exceed the margin
    STANDARD = "standard"


class Stage(StrEnum):
    PROSPECT = "prospect"
    NEW = "new"
    ACTIVE = "active"
    AT_RISK = "at_risk"
    LAPSED = "lapsed"


class Loyalty(StrEnum):
    NONE = "none"
    LATENT = "latent"
    INERTIA = "inertia"
    TRUE = "true"


TIER_ORDER = (Tier.VIP, Tier.MAJOR, Tier.ORDINARY, Tier.SMALL)
LABELS: dict[str, tuple[str, str]] = {
    Tier.VIP: ("VIP", "VIP 客户"), Tier.MAJOR: ("major", "主要客户"),
    Tier.ORDINARY: ("ordinary", "普通客户"), Tier.SMALL: ("small", "小客户"),
    Segment.MVC: ("most valuable (MVC)", "最有价值客户（MVC）"),
    Segment.MGC: ("most growth potential (MGC)", "最具成长性客户（MGC）"),
    Segment.BZC: ("below zero (BZC)", "负值客户（BZC）"),
    Segment.STANDARD: ("standard", "一般客户"),
    Stage.PROSPECT: ("prospect", "潜在客户"), Stage.NEW: ("new", "新客户"),
    Stage.ACTIVE: ("active", "活跃客户"), Stage.AT_RISK: ("at risk", "有流失风险"),
    Stage.LAPSED: ("lapsed", "已流失"),
    Loyalty.NONE: ("no loyalty", "无忠诚"), Loyalty.LATENT: ("latent loyalty", "潜在忠诚"),
    Loyalty.INERTIA: ("inertia loyalty", "惰性忠诚"), Loyalty.TRUE: ("true loyalty", "真正忠诚"),
}


@dataclass(frozen=True)
class Reason:
    """One explanation sentence in both languages, with a stable machine code."""

    code: str
    en: str
    zh: str


@dataclass(frozen=True)
class OrderFact:
    placed_at: datetime
    total_cents: int


@dataclass(frozen=True)
class CustomerFacts:
    """What value is computed from, for one customer. Window counts cover ``rfm_window_days`` up to now;
    the window's earlier and recent halves show the trend."""

    customer_id: int
    is_prospect: bool = False
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None
    window_orders: int = 0
    window_revenue_cents: int = 0
    earlier_half_orders: int = 0
    recent_half_orders: int = 0
    earlier_half_revenue_cents: int = 0
    recent_half_revenue_cents: int = 0
    contacts_handled: int = 0
    compensation_cents: int = 0
    csat_avg: float | None = None
    csat_count: int = 0
    nps_avg: float | None = None
    nps_count: int = 0
    open_complaints: int = 0
    complaints_in_window: int = 0


def facts_from_orders(customer_id: int, orders: Iterable[OrderFact], *, now: datetime, window_days: int,
                      **others: Any) -> CustomerFacts:
    """Aggregate a list of orders into ``CustomerFacts`` exactly as the SQL in ``jobs`` does.

    An order is in the window when ``now - window_days < placed_at <= now``; it is in the recent half
    when ``placed_at > now - window_days / 2``. Orders after ``now`` are ignored."""
    start, middle = now - timedelta(days=window_days), now - timedelta(days=window_days / 2)
    past = [o for o in orders if o.placed_at <= now]
    in_window = [o for o in past if o.placed_at > start]
    recent = [o for o in in_window if o.placed_at > middle]
    earlier = [o for o in in_window if o.placed_at <= middle]
    return CustomerFacts(
        customer_id=customer_id,
        first_order_at=min((o.placed_at for o in past), default=None),
        last_order_at=max((o.placed_at for o in past), default=None),
        window_orders=len(in_window), window_revenue_cents=sum(o.total_cents for o in in_window),
        earlier_half_orders=len(earlier), recent_half_orders=len(recent),
        earlier_half_revenue_cents=sum(o.total_cents for o in earlier),
        recent_half_revenue_cents=sum(o.total_cents for o in recent), **others)


def format_money(cents: int, currency: str) -> str:
    sign = "-" if cents < 0 else ""
    whole, minor = divmod(abs(cents), 100)
    return f"{sign}{whole:,}.{minor:02d} {currency}"


def _pct(share: float) -> str:
    return f"{share * 100:.1f}%".replace(".0%", "%")


# --- RFM ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RfmScore:
    recency_days: int | None
    frequency: int
    monetary_cents: int
    r: int
    f: int
    m: int
    reasons: tuple[Reason, ...] = ()

    @property
    def code(self) -> str:
        return f"R{self.r}F{self.f}M{self.m}"


def quintile_scores(values: Sequence[float]) -> list[int]:
    """Score each value 1-5 by quintile, higher value -> higher score; equal values score equally.

    score = ceil(5 * (number of values <= v) / n): the top value always scores 5, and a value beats
    at least as many others as every value with a lower score."""
    ordered = sorted(values)
    n = len(ordered)
    return [max(1, math.ceil(5 * bisect.bisect_right(ordered, v) / n)) for v in values]


def rfm_scores(facts: Sequence[CustomerFacts], *, now: datetime, window_days: int,
               currency: str = "CNY") -> dict[int, RfmScore]:
    """RFM 1-5 by quintile among customers who ordered in the window; others score R1 F1 M1."""
    buyers = [f for f in facts if f.window_orders > 0 and f.last_order_at is not None]
    recency = [(now - f.last_order_at).days for f in buyers]  # type: ignore[operator]
    r_scores = quintile_scores([-d for d in recency])
    f_scores = quintile_scores([f.window_orders for f in buyers])
    m_scores = quintile_scores([f.window_revenue_cents for f in buyers])
    result: dict[int, RfmScore] = {}
    for i, f in enumerate(buyers):
        spent = format_money(f.window_revenue_cents, currency)
        reasons = (
            Reason("recency", f"R{r_scores[i]}: last order {recency[i]} days ago",
                   f"R{r_scores[i]}：最近一次下单在 {recency[i]} 天前"),
            Reason("frequency", f"F{f_scores[i]}: {f.window_orders} orders in the last {window_days} days",
                   f"F{f_scores[i]}：最近 {window_days} 天内下单 {f.window_orders} 次"),
            Reason("monetary", f"M{m_scores[i]}: {spent} spent "
                               f"in the last {window_days} days",
                   f"M{m_scores[i]}：最近 {window_days} 天内消费 {spent}"),
            Reason("quintile", f"scores are quintiles among the {len(buyers)} customers who ordered "
                               "in the window (5 = best fifth)",
                   f"评分为窗口期内下单的 {len(buyers)} 位客户中的五分位（5 = 最好的五分之一）"),
        )
        result[f.customer_id] = RfmScore(recency[i], f.window_orders, f.window_revenue_cents,
                                         r_scores[i], f_scores[i], m_scores[i], reasons)
    for f in facts:
        if f.customer_id not in result:
            result[f.customer_id] = RfmScore(
                None if f.last_order_at is None else (now - f.last_order_at).days, 0, 0, 1, 1, 1,
                (Reason("no_orders", f"R1 F1 M1: no orders in the last {window_days} days",
                        f"R1 F1 M1：最近 {window_days} 天内没有订单"),))
    return result


# --- the pyramid ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TierResult:
    tier: Tier
    rank: int | None
    of: int
    revenue_cents: int
    reasons: tuple[Reason, ...] = ()


@dataclass(frozen=True)
class PyramidRow:
    tier: Tier
    customers: int
    revenue_cents: int
    customer_share: float
    revenue_share: float


@dataclass(frozen=True)
class PyramidReport:
    rows: tuple[PyramidRow, ...]
    total_customers: int
    total_revenue_cents: int
    reasons: tuple[Reason, ...] = ()

    def row(self, tier: Tier | str) -> PyramidRow:
        return next(r for r in self.rows if r.tier == tier)

    def to_json(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


def tier_cutoffs(n: int, thresholds: TierThresholds) -> dict[Tier, int]:
    """The last rank (1-based, inclusive) of each tier among ``n`` ranked customers."""
    return {Tier.VIP: math.ceil(n * thresholds.vip), Tier.MAJOR: math.ceil(n * thresholds.major),
            Tier.ORDINARY: math.ceil(n * thresholds.ordinary), Tier.SMALL: n}


def _tier_for_rank(rank: int, cutoffs: Mapping[Tier, int]) -> Tier:
    return next(t for t in TIER_ORDER if rank <= cutoffs[t])


def assign_tiers(revenue_by_customer: Mapping[int, int], thresholds: TierThresholds, *,
                 window_days: int, currency: str = "CNY") -> tuple[dict[int, TierResult], PyramidReport]:
    """Rank customers by revenue (highest first) and cut the pyramid at the cumulative shares.

    Promises: equal revenue gives an equal tier (the higher one at a boundary); zero revenue is always
    small; a customer with more revenue never has a lower tier. Ties in rank order break by id."""
    n = len(revenue_by_customer)
    cutoffs = tier_cutoffs(n, thresholds)
    ordered = sorted(revenue_by_customer.items(), key=lambda item: (-item[1], item[0]))
    shares = {Tier.VIP: thresholds.vip, Tier.MAJOR: thresholds.major, Tier.ORDINARY: thresholds.ordinary,
              Tier.SMALL: 1.0}
    results: dict[int, TierResult] = {}
    previous: tuple[int, Tier] | None = None
    for position, (customer_id, revenue) in enumerate(ordered, start=1):
        tier = _tier_for_rank(position, cutoffs) if revenue > 0 else Tier.SMALL
        if previous is not None and revenue == previous[0] and revenue > 0:
            tier = previous[1]
        previous = (revenue, tier)
        results[customer_id] = TierResult(tier, position, n, revenue, _tier_reasons(
            tier, position, n, revenue, cutoffs, shares, window_days, currency))
    return results, _pyramid(results, n)


def _tier_reasons(tier: Tier, rank: int, n: int, revenue: int, cutoffs: Mapping[Tier, int],
                  shares: Mapping[Tier, float], window_days: int, currency: str) -> tuple[Reason, ...]:
    money = format_money(revenue, currency)
    en_label, zh_label = LABELS[tier]
    if revenue <= 0:
        return (Reason("tier", f"{en_label}: no revenue in the last {window_days} days",
                       f"{zh_label}：最近 {window_days} 天内没有消费"),)
    index = TIER_ORDER.index(tier)
    first = 1 if index == 0 else cutoffs[TIER_ORDER[index - 1]] + 1
    upper = _pct(shares[tier])
    lower = "" if index == 0 else _pct(shares[TIER_ORDER[index - 1]])
    band_en = f"top {upper}" if index == 0 else f"the {lower}–{upper} band"
    band_zh = f"前 {upper}" if index == 0 else f"{lower}–{upper} 区间"
    reasons = [Reason("tier", f"{en_label}: rank {rank} of {n} by revenue ({money} in the last {window_days} "
                              f"days); {en_label} is {band_en} of customers, ranks {first}–{cutoffs[tier]}",
                      f"{zh_label}：按收入排名第 {rank}/{n}（最近 {window_days} 天 {money}）；"
                      f"{zh_label}为客户{band_zh}，即第 {first}–{cutoffs[tier]} 名")]
    if rank > cutoffs[tier]:
        reasons.append(Reason("tie", "same revenue as the customer ranked just above, so the same tier",
                              "与排名紧邻其上的客户收入相同，因此层级相同"))
    return tuple(reasons)


def _pyramid(results: Mapping[int, TierResult], n: int) -> PyramidReport:
    total = sum(r.revenue_cents for r in results.values())
    rows = []
    for tier in TIER_ORDER:
        members = [r for r in results.values() if r.tier == tier]
        revenue = sum(r.revenue_cents for r in members)
        rows.append(PyramidRow(tier, len(members), revenue, len(members) / n if n else 0.0,
                               revenue / total if total else 0.0))
    top = [r for r in rows if r.tier != Tier.SMALL]
    top_customers = sum(r.customer_share for r in top)
    top_revenue = sum(r.revenue_share for r in top)
    reason = Reason("pareto", f"the top {_pct(top_customers)} of customers (VIP, major, ordinary) bring "
                              f"{_pct(top_revenue)} of revenue",
                    f"前 {_pct(top_customers)} 的客户（VIP、主要、普通）贡献了 {_pct(top_revenue)} 的收入")
    return PyramidReport(tuple(rows), n, total, (reason,))


# --- MVC / MGC / BZC and lifetime value ---------------------------------------------------------------

@dataclass(frozen=True)
class SegmentResult:
    segment: Segment
    margin_cents: int
    cost_to_serve_cents: int
    net_value_cents: int
    reasons: tuple[Reason, ...] = ()


def classify_segment(facts: CustomerFacts, tier: Tier, stage: Stage, rules: ValueRules, *,
                     currency: str = "CNY") -> SegmentResult:
    """BZC when contacts handled and compensation paid cost more than the margin earned (checked first:
    an unprofitable VIP is still below zero); MVC for profitable VIP and major customers; MGC when revenue
    grew by ``growth_ratio`` between the window's halves, or a new customer already buys in the top
    tiers' manner; standard otherwise."""
    margin = round(facts.window_revenue_cents * rules.margin_rate)
    cost = facts.contacts_handled * rules.cost_per_contact_cents + facts.compensation_cents
    net = margin - cost
    money = lambda cents: format_money(cents, currency)  # noqa: E731
    m, c, n, rate = money(margin), money(cost), money(net), _pct(rules.margin_rate)
    paid = money(facts.compensation_cents)
    ledger = Reason("net_value",
                    f"margin {m} ({rate} of revenue) minus costs to serve {c} ({facts.contacts_handled} contacts, "
                    f"{paid} compensation) = {n}",
                    f"毛利 {m}（收入的 {rate}）减去服务成本 {c}（{facts.contacts_handled} 次联系，补偿 {paid}）= {n}")

    def result(segment: Segment, en: str, zh: str) -> SegmentResult:
        en_label, zh_label = LABELS[segment]
        return SegmentResult(segment, margin, cost, net,
                             (Reason("segment", f"{en_label}: {en}", f"{zh_label}：{zh}"), ledger))

    if stage == Stage.PROSPECT:
        return result(Segment.STANDARD, "a prospect, not yet a buyer", "潜在客户，尚未购买")
    if net < 0:
        return result(Segment.BZC, "serving this customer costs more than the margin earned",
                      "服务该客户的成本超过其带来的毛利")
    if tier in (Tier.VIP, Tier.MAJOR):
        return result(Segment.MVC, f"a profitable {LABELS[tier][0]} customer",
                      f"盈利的{LABELS[tier][1]}")
    earlier, recent = facts.earlier_half_revenue_cents, facts.recent_half_revenue_cents
    if earlier > 0 and recent >= rules.growth_ratio * earlier:
        return result(Segment.MGC, f"revenue grew from {money(earlier)} to {money(recent)} between the "
                                   f"halves of the window (at least ×{rules.growth_ratio:g})",
                      f"收入在窗口期前后两半从 {money(earlier)} 增长到 {money(recent)}（至少 ×{rules.growth_ratio:g}）")
    if stage == Stage.NEW and tier == Tier.ORDINARY:
        return result(Segment.MGC, "a new customer already in the ordinary tier",
                      "新客户已进入普通客户层级")
    return result(Segment.STANDARD, "profitable, without the growth or rank of MVC/MGC",
                  "有盈利，但未达到 MVC/MGC 的排名或增长")


@dataclass(frozen=True)
class LtvResult:
    ltv_cents: int
    annual_margin_cents: int
    annual_cost_cents: int
    reasons: tuple[Reason, ...] = ()


def lifetime_value(facts: CustomerFacts, *, window_days: int, rules: ValueRules,
                   currency: str = "CNY") -> LtvResult:
    """Simple LTV: (yearly margin - yearly cost to serve) x horizon years, from the window's pace.

    yearly margin = average order value x orders per year x margin rate. May be negative (a BZC)."""
    per_year = DAYS_PER_YEAR / window_days
    annual_margin = round(facts.window_revenue_cents * per_year * rules.margin_rate)
    annual_cost = round((facts.contacts_handled * rules.cost_per_contact_cents + facts.compensation_cents)
                        * per_year)
    ltv = round((annual_margin - annual_cost) * rules.ltv_horizon_years)
    aov = facts.window_revenue_cents // facts.window_orders if facts.window_orders else 0
    orders_per_year = facts.window_orders * per_year
    v, a, c = format_money(ltv, currency), format_money(aov, currency), format_money(annual_cost, currency)
    rate, years = _pct(rules.margin_rate), f"{rules.ltv_horizon_years:g}"
    return LtvResult(ltv, annual_margin, annual_cost, (Reason(
        "ltv", f"LTV {v}: ({a} per order × {orders_per_year:.1f} orders a year × {rate} margin − {c} yearly "
               f"cost to serve) × {years} years",
        f"客户终身价值 {v}：（每单 {a} × 每年 {orders_per_year:.1f} 单 × 毛利率 {rate} − 每年服务成本 {c}）"
        f"× {years} 年"),))


# --- lifecycle, churn, loyalty -------------------------------------------------------------------------

@dataclass(frozen=True)
class LifecycleResult:
    stage: Stage
    reasons: tuple[Reason, ...] = ()


def lifecycle_stage(facts: CustomerFacts, *, now: datetime, rules: LifecycleRules) -> LifecycleResult:
    """prospect (never ordered) -> new (first order within new_days) -> active -> at risk (no order for
    at_risk_after_days) -> lapsed (no order for lapsed_after_days)."""
    def result(stage: Stage, en: str, zh: str) -> LifecycleResult:
        return LifecycleResult(stage, (Reason("stage", f"{LABELS[stage][0]}: {en}", f"{LABELS[stage][1]}：{zh}"),))

    if facts.is_prospect or facts.first_order_at is None or facts.last_order_at is None:
        return result(Stage.PROSPECT, "no order yet", "尚无订单")
    since_last = (now - facts.last_order_at).days
    since_first = (now - facts.first_order_at).days
    if since_last >= rules.lapsed_after_days:
        return result(Stage.LAPSED, f"last order {since_last} days ago (lapsed after {rules.lapsed_after_days})",
                      f"最近一次下单在 {since_last} 天前（超过 {rules.lapsed_after_days} 天视为流失）")
    if since_last >= rules.at_risk_after_days:
        return result(Stage.AT_RISK, f"last order {since_last} days ago (at risk after "
                                     f"{rules.at_risk_after_days})",
                      f"最近一次下单在 {since_last} 天前（超过 {rules.at_risk_after_days} 天视为有流失风险）")
    if since_first < rules.new_days:
        return result(Stage.NEW, f"first order {since_first} days ago (new for {rules.new_days} days)",
                      f"首次下单在 {since_first} 天前（{rules.new_days} 天内为新客户）")
    return result(Stage.ACTIVE, f"last order {since_last} days ago", f"最近一次下单在 {since_last} 天前")


@dataclass(frozen=True)
class ChurnResult:
    level: str  # none | low | medium | high: by the number of signals
    signals: tuple[Reason, ...] = ()

    @property
    def codes(self) -> list[str]:
        return [s.code for s in self.signals]


CHURN_LEVELS = ("none", "low", "medium", "high")


def churn_signals(facts: CustomerFacts, rules: ChurnRules) -> ChurnResult:
    """Signals: falling frequency, open complaints, repeated complaints, low CSAT. Level by their count."""
    signals = []
    earlier, recent = facts.earlier_half_orders, facts.recent_half_orders
    if earlier >= 2 and recent <= rules.falling_frequency_ratio * earlier:
        signals.append(Reason("falling_frequency", f"orders fell from {earlier} to {recent} between the halves "
                                                   "of the window",
                              f"订单数在窗口期前后两半从 {earlier} 降到 {recent}"))
    if facts.open_complaints > 0:
        signals.append(Reason("open_complaint", f"{facts.open_complaints} complaint(s) still open",
                              f"仍有 {facts.open_complaints} 个投诉未结案"))
    if facts.complaints_in_window >= rules.repeated_complaints_min:
        signals.append(Reason("repeated_complaints", f"{facts.complaints_in_window} complaints in the window",
                              f"窗口期内投诉 {facts.complaints_in_window} 次"))
    if facts.csat_avg is not None and facts.csat_count > 0 and facts.csat_avg <= rules.low_csat_max:
        signals.append(Reason("low_csat", f"average CSAT {facts.csat_avg:.1f}/5 over {facts.csat_count} "
                                          f"survey(s) (low at {rules.low_csat_max:g} or below)",
                              f"{facts.csat_count} 次调查平均满意度 {facts.csat_avg:.1f}/5"
                              f"（{rules.low_csat_max:g} 及以下为低）"))
    return ChurnResult(CHURN_LEVELS[min(len(signals), 3)], tuple(signals))


@dataclass(frozen=True)
class LoyaltyResult:
    loyalty: Loyalty
    attitude_positive: bool
    repeat_buyer: bool
    reasons: tuple[Reason, ...] = ()


def loyalty_type(facts: CustomerFacts, rules: LoyaltyRules) -> LoyaltyResult:
    """Attitude x behaviour: true (likes us and buys again), latent (likes us, does not repeat), inertia
    (repeats without liking us), none. Attitude is positive when there is at least one survey measure
    and every measure present meets its threshold; no answers count as not positive."""
    measures: list[tuple[bool, Reason]] = []
    if facts.csat_avg is not None and facts.csat_count > 0:
        ok = facts.csat_avg >= rules.csat_positive_min
        measures.append((ok, Reason("csat", f"average CSAT {facts.csat_avg:.1f}/5 "
                                            f"({'meets' if ok else 'below'} {rules.csat_positive_min:g})",
                                    f"平均满意度 {facts.csat_avg:.1f}/5（{'达到' if ok else '低于'} "
                                    f"{rules.csat_positive_min:g}）")))
    if facts.nps_avg is not None and facts.nps_count > 0:
        ok = facts.nps_avg >= rules.nps_positive_min
        measures.append((ok, Reason("nps", f"average recommend score {facts.nps_avg:.1f}/10 "
                                           f"({'meets' if ok else 'below'} {rules.nps_positive_min:g})",
                                    f"平均推荐分 {facts.nps_avg:.1f}/10（{'达到' if ok else '低于'} "
                                    f"{rules.nps_positive_min:g}）")))
    positive = bool(measures) and all(ok for ok, _ in measures)
    repeat = facts.window_orders >= rules.repeat_min_orders
    loyalty = {(True, True): Loyalty.TRUE, (True, False): Loyalty.LATENT,
               (False, True): Loyalty.INERTIA, (False, False): Loyalty.NONE}[(positive, repeat)]
    attitude = [r for _, r in measures] or [Reason("no_survey", "no survey answers yet", "尚无调查回复")]
    behaviour = Reason("repeat", f"{facts.window_orders} order(s) in the window "
                                 f"({'repeat buyer' if repeat else 'not a repeat buyer'}: "
                                 f"{rules.repeat_min_orders}+ needed)",
                       f"窗口期内 {facts.window_orders} 单（{'重复购买' if repeat else '非重复购买'}："
                       f"需要 {rules.repeat_min_orders} 单以上）")
    en_label, zh_label = LABELS[loyalty]
    summary = Reason("loyalty", f"{en_label}: attitude {'positive' if positive else 'not positive'}, "
                                f"{'repeat' if repeat else 'no repeat'} purchase",
                     f"{zh_label}：态度{'积极' if positive else '不积极'}，{'有' if repeat else '无'}重复购买")
    return LoyaltyResult(loyalty, positive, repeat, (summary, *attitude, behaviour))


# --- the whole population ----------------------------------------------------------------------------

@dataclass(frozen=True)
class CustomerValue:
    customer_id: int
    rfm: RfmScore
    tier: TierResult
    segment: SegmentResult
    ltv: LtvResult
    lifecycle: LifecycleResult
    churn: ChurnResult
    loyalty: LoyaltyResult
    computed_at: datetime

    def summary(self) -> dict[str, Any]:
        """The short form other domains read (routing priority, grading, compensation)."""
        return {"tier": str(self.tier.tier), "rfm": self.rfm.code, "r": self.rfm.r, "f": self.rfm.f,
                "m": self.rfm.m, "segment": str(self.segment.segment), "ltv_cents": self.ltv.ltv_cents,
                "stage": str(self.lifecycle.stage), "churn_risk": self.churn.level,
                "churn_signals": self.churn.codes, "loyalty": str(self.loyalty.loyalty)}

    def explanation(self) -> dict[str, Any]:
        """Every part's numbers and reasons, JSON-ready, as stored in the value snapshot."""
        return {"rfm": _flat(self.rfm), "tier": _flat(self.tier), "segment": _flat(self.segment),
                "ltv": _flat(self.ltv), "lifecycle": _flat(self.lifecycle), "churn": _flat(self.churn),
                "loyalty": _flat(self.loyalty)}


@dataclass(frozen=True)
class ValueRun:
    values: dict[int, CustomerValue]
    pyramid: PyramidReport
    computed_at: datetime
    notes: list[str] = field(default_factory=list)


def score_customers(facts: Sequence[CustomerFacts], config: CrmConfig, *, now: datetime,
                    currency: str = "CNY") -> ValueRun:
    """Score a whole population (ranks and quintiles are relative, so they need everyone at once).

    Prospects are scored but not ranked in the pyramid (they would inflate 'top 1% of customers')."""
    window = config.rfm_window_days
    rfm = rfm_scores(facts, now=now, window_days=window, currency=currency)
    ranked = {f.customer_id: f.window_revenue_cents for f in facts if not _is_prospect(f)}
    tiers, pyramid = assign_tiers(ranked, config.tiers, window_days=window, currency=currency)
    values: dict[int, CustomerValue] = {}
    for f in facts:
        stage = lifecycle_stage(f, now=now, rules=config.lifecycle)
        tier = tiers.get(f.customer_id) or TierResult(Tier.SMALL, None, len(ranked), 0, (Reason(
            "tier", "small: a prospect, not ranked by revenue", "小客户：潜在客户，不参与收入排名"),))
        values[f.customer_id] = CustomerValue(
            f.customer_id, rfm[f.customer_id], tier,
            classify_segment(f, tier.tier, stage.stage, config.value, currency=currency),
            lifetime_value(f, window_days=window, rules=config.value, currency=currency),
            stage, churn_signals(f, config.churn), loyalty_type(f, config.loyalty), now)
    return ValueRun(values, pyramid, now)


def _is_prospect(facts: CustomerFacts) -> bool:
    return facts.is_prospect or facts.first_order_at is None


def _flat(part: Any) -> dict[str, Any]:
    """One result as JSON-ready data; ``dataclasses.asdict`` is generic and several times slower, which
    shows at 100,000 customers a night."""
    out: dict[str, Any] = {}
    for name, value in vars(part).items():
        if isinstance(value, tuple):  # reasons / signals
            value = [{"code": r.code, "en": r.en, "zh": r.zh} for r in value]
        elif isinstance(value, StrEnum):
            value = str(value)
        out[name] = value
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, StrEnum):
        return str(value)
    return value
