"""The ``complaints:`` section of config.yaml: categories, grading, deadlines, compensation, approvals.

Every default here is the policy the issue describes, so an empty ``complaints:`` section gives a working desk.
Money is integer minor units (``*_cents``) in the desk's currency (``desk.currency``).
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

LEVELS = ("P1", "P2", "P3", "P4")  # most to least severe
FACTORS = ("harm", "financial_loss", "legal_risk", "repeat_contact", "public_exposure")
TIERS = ("vip", "major", "ordinary", "small")
Level = Literal["P1", "P2", "P3", "P4"]
Factor = Literal["harm", "financial_loss", "legal_risk", "repeat_contact", "public_exposure"]
Tier = Literal["vip", "major", "ordinary", "small"]
APPROVAL_ROLES = ("agent", "team_lead", "complaints_manager", "head_of_service")
ApprovalRole = Literal["agent", "team_lead", "complaints_manager", "head_of_service"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(_Strict):
    """A sentence shown to people, in both desk languages."""

    en: str = Field(min_length=1)
    zh: str = Field(min_length=1)


class ComplaintCategory(_Strict):
    code: str = Field(pattern=r"^[a-z0-9_]+$")
    label_en: str
    label_zh: str
    regulatory_profile: str | None = None  # overrides deadlines.regulatory_profile for this category


# --------------------------------------------------------------------------------------------- grading
def _t(en: str, zh: str) -> Text:
    return Text(en=en, zh=zh)


def _default_factor_levels() -> dict[str, dict[int, Text]]:
    return {
        "harm": {
            0: _t("no harm described", "未描述损害"),
            1: _t("inconvenience", "造成不便"),
            2: _t("distress, or two or more days without service", "造成困扰，或两天以上无法使用服务"),
            3: _t("injury, a safety issue or a data breach", "人身伤害、安全问题或数据泄露"),
        },
        "financial_loss": {
            0: _t("no financial loss", "无经济损失"),
            1: _t("loss under 50", "损失低于 50"),
            2: _t("loss from 50 to 500", "损失 50 至 500"),
            3: _t("loss over 500", "损失超过 500"),
        },
        "legal_risk": {
            0: _t("no legal or regulatory risk", "无法律或监管风险"),
            1: _t("a possible breach of policy or consumer rights", "可能违反政策或侵害消费者权益"),
            2: _t("a threat to go to a regulator or a lawyer", "扬言向监管部门投诉或请律师"),
            3: _t("a regulator complaint or legal action under way, or a likely breach of law",
                  "已向监管部门投诉或已采取法律行动，或可能违法"),
        },
        "repeat_contact": {
            0: _t("first contact about this", "首次就此事联系"),
            1: _t("second contact about this", "第二次就此事联系"),
            2: _t("three or more contacts, or a reopened complaint", "三次或以上联系，或投诉被重新打开"),
            3: _t("escalated after a final response", "在最终答复后升级"),
        },
        "public_exposure": {
            0: _t("no public exposure", "未公开"),
            1: _t("a public post with small reach", "小范围公开发帖"),
            2: _t("a post with large reach, or a press enquiry", "大范围传播的帖子或媒体问询"),
            3: _t("viral, or covered by the press", "广泛传播或已被媒体报道"),
        },
    }


class KeywordRule(_Strict):
    """Words in a complaint that suggest a factor score; the agent confirms or overrides the suggestion.

    English keywords match whole words, case-insensitively ("sue" does not match "issue"); Chinese
    keywords match anywhere in the text (Chinese has no spaces between words)."""

    factor: Factor
    score: int = Field(ge=1, le=3)
    keywords: list[str] = Field(min_length=1)


def _default_keywords() -> list[KeywordRule]:
    k = KeywordRule
    return [
        k(factor="harm", score=3, keywords=[
            "injury", "injured", "hurt", "burned", "burnt", "fire", "exploded", "electric shock", "unsafe",
            "hospital", "data breach", "leaked my data", "受伤", "烧伤", "起火", "爆炸", "触电", "安全隐患", "医院",
            "数据泄露", "信息泄露", "泄露了我的"]),
        k(factor="harm", score=2, keywords=[
            "days without", "no service for", "still not working", "distressed", "upset", "anxious",
            "几天没有", "一直无法使用", "断网", "停机", "焦虑", "非常难受"]),
        k(factor="harm", score=1, keywords=["inconvenient", "inconvenience", "annoying", "不方便", "麻烦"]),
        k(factor="legal_risk", score=3, keywords=[
            "filed a complaint with", "lawsuit", "court", "my lawyer has", "已经起诉", "法院", "已向监管", "已投诉到",
            "已经投诉到"]),
        k(factor="legal_risk", score=2, keywords=[
            "lawyer", "solicitor", "sue", "legal action", "regulator", "ombudsman", "trading standards",
            "consumer council", "律师", "起诉", "法律", "投诉到", "监管", "消协", "消费者协会", "12315", "工商",
            "银保监", "金融监管"]),
        k(factor="legal_risk", score=1, keywords=[
            "my rights", "consumer rights", "illegal", "against the law", "权益", "违法", "不合法"]),
        k(factor="repeat_contact", score=3, keywords=[
            "final response", "escalate", "escalating", "最终答复", "升级投诉"]),
        k(factor="repeat_contact", score=2, keywords=[
            "third time", "many times", "several times", "again and again", "第三次", "多次", "好几次", "反复"]),
        k(factor="repeat_contact", score=1, keywords=[
            "second time", "called before", "already told", "again", "第二次", "再次", "又一次", "之前打过"]),
        k(factor="public_exposure", score=3, keywords=[
            "viral", "trending", "in the news", "newspaper article", "热搜", "上新闻", "被报道", "刷屏"]),
        k(factor="public_exposure", score=2, keywords=[
            "journalist", "reporter", "press", "media", "tv station", "媒体", "记者", "曝光", "电视台"]),
        k(factor="public_exposure", score=1, keywords=[
            "twitter", "facebook", "weibo", "review", "post online", "social media", "微博", "朋友圈", "抖音",
            "小红书", "差评", "发帖"]),
    ]


class GradingConfig(_Strict):
    """Five factors scored 0-3 and the rules that turn them into a level P1-P4."""

    factor_levels: dict[Factor, dict[int, Text]] = Field(default_factory=_default_factor_levels)
    # Financial loss bands in minor units: score 1 below the first bound, 2 up to the second, 3 above it.
    financial_loss_bounds_cents: tuple[int, int] = (5000, 50000)
    critical_factor_score: int = Field(default=3, ge=1, le=3)  # any factor at this score -> P1
    p2_min_total: int = Field(default=6, ge=1, le=15)
    p3_min_total: int = Field(default=3, ge=1, le=15)
    vulnerable_levels_up: int = Field(default=1, ge=0, le=3)
    keywords: list[KeywordRule] = Field(default_factory=_default_keywords)

    @model_validator(mode="after")
    def _consistent(self) -> GradingConfig:
        missing = [f for f in FACTORS if f not in self.factor_levels]
        if missing:
            raise ValueError(f"factor_levels: missing factor(s) {', '.join(missing)}")
        for factor, levels in self.factor_levels.items():
            if sorted(levels) != [0, 1, 2, 3]:
                raise ValueError(f"factor_levels.{factor}: needs a text for each score 0, 1, 2 and 3")
        low, high = self.financial_loss_bounds_cents
        if not 0 < low < high:
            raise ValueError("financial_loss_bounds_cents: needs two increasing positive amounts")
        if self.p3_min_total >= self.p2_min_total:
            raise ValueError("p3_min_total must be below p2_min_total")
        return self


# ------------------------------------------------------------------------------------------- deadlines
Unit = Literal["minutes", "hours", "days", "weeks", "business_hours", "business_days"]


class Duration(_Strict):
    """A span of time; ``business_*`` units count only the complaints calendar's opening hours."""

    amount: int = Field(ge=0)
    unit: Unit

    @property
    def is_business(self) -> bool:
        return self.unit.startswith("business_")


def _d(amount: int, unit: str) -> Duration:
    return Duration(amount=amount, unit=unit)


class LevelDeadlines(_Strict):
    acknowledge: Duration
    resolve: Duration
    acknowledge_by: Literal["phone", "any"] = "any"
    resolution_note: Literal["full", "short"] = "full"


def _default_levels() -> dict[str, LevelDeadlines]:
    return {
        "P1": LevelDeadlines(acknowledge=_d(1, "hours"), resolve=_d(2, "business_days"), acknowledge_by="phone"),
        "P2": LevelDeadlines(acknowledge=_d(4, "business_hours"), resolve=_d(5, "business_days")),
        "P3": LevelDeadlines(acknowledge=_d(1, "business_days"), resolve=_d(10, "business_days")),
        "P4": LevelDeadlines(acknowledge=_d(0, "minutes"), resolve=_d(3, "business_days"), resolution_note="short"),
    }


class RegulatoryProfile(_Strict):
    """Outer limits a regulator sets; a level's deadline is never later than these."""

    label: Text
    acknowledge: Duration | None = None
    final_response: Duration


def _default_profiles() -> dict[str, RegulatoryProfile]:
    return {
        "general": RegulatoryProfile(label=_t("General: final response within 8 weeks",
                                              "一般：8 周内最终答复"), final_response=_d(8, "weeks")),
        "cn_banking_insurance": RegulatoryProfile(
            label=_t("China banking and insurance: decision within 15 days", "中国银行业保险业：15 日内作出处理决定"),
            final_response=_d(15, "days")),
    }


class DeadlinesConfig(_Strict):
    levels: dict[Level, LevelDeadlines] = Field(default_factory=_default_levels)
    regulatory_profile: str = "general"
    regulatory_profiles: dict[str, RegulatoryProfile] = Field(default_factory=_default_profiles)
    alert_fractions: list[float] = Field(default_factory=lambda: [0.5, 0.8, 1.0])

    @model_validator(mode="after")
    def _consistent(self) -> DeadlinesConfig:
        missing = [lv for lv in LEVELS if lv not in self.levels]
        if missing:
            raise ValueError(f"levels: missing level(s) {', '.join(missing)}")
        if self.regulatory_profile not in self.regulatory_profiles:
            raise ValueError(f"regulatory_profile: unknown profile {self.regulatory_profile!r}")
        fractions = self.alert_fractions
        if any(not 0 < f <= 1 for f in fractions) or fractions != sorted(set(fractions)):
            raise ValueError("alert_fractions: increasing fractions in (0, 1], e.g. [0.5, 0.8, 1.0]")
        return self


# ---------------------------------------------------------------------------------------- compensation
class FixedRule(_Strict):
    """A fixed amount computed from facts of the case, with its own reason code.

    kinds: ``per_day`` (per_day_cents x days beyond grace_days, up to max_cents), ``multiple_of_price``
    (multiple x price, at least minimum_cents, e.g. three times the price with a minimum for fraud),
    ``flat`` (amount_cents)."""

    code: str = Field(pattern=r"^[a-z0-9_]+$")
    kind: Literal["per_day", "multiple_of_price", "flat"]
    label: Text
    categories: list[str] = Field(default_factory=list)  # categories it is suggested for; empty = any
    per_day_cents: int = Field(default=0, ge=0)
    grace_days: int = Field(default=0, ge=0)
    max_cents: int | None = Field(default=None, ge=0)
    multiple: float = Field(default=0, ge=0)
    minimum_cents: int = Field(default=0, ge=0)
    amount_cents: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _kind_has_amounts(self) -> FixedRule:
        needed = {"per_day": self.per_day_cents, "multiple_of_price": self.multiple, "flat": self.amount_cents}
        if not needed[self.kind]:
            field = {"per_day": "per_day_cents", "multiple_of_price": "multiple", "flat": "amount_cents"}[self.kind]
            raise ValueError(f"fixed rule {self.code!r} of kind {self.kind} needs {field} above 0")
        return self


def _default_fixed_rules() -> list[FixedRule]:
    return [
        FixedRule(code="delivery_delay_per_day", kind="per_day", per_day_cents=1000, grace_days=0, max_cents=20000,
                  categories=["delivery_delay"],
                  label=_t("Late delivery: 10 per day late, up to 200", "延迟交付：每延迟一天 10，最多 200")),
        FixedRule(code="fraud_triple_price", kind="multiple_of_price", multiple=3, minimum_cents=50000,
                  label=_t("Fraud: three times the price, at least 500", "欺诈：价款的三倍，最低 500")),
    ]


def _default_bands() -> dict[str, tuple[int, int]]:
    return {"P4": (0, 2500), "P3": (2500, 10000), "P2": (10000, 30000), "P1": (30000, 150000)}


def _default_tier_position() -> dict[str, float]:
    return {"small": 0.0, "ordinary": 0.25, "major": 0.6, "vip": 1.0}


class CompensationConfig(_Strict):
    goodwill_bands_cents: dict[Level, tuple[int, int]] = Field(default_factory=_default_bands)
    # Where inside its level's band a customer's goodwill falls (0 = bottom, 1 = top); tier never picks the band.
    tier_position: dict[Tier, float] = Field(default_factory=_default_tier_position)
    goodwill_cap_12m_cents: int = Field(default=300000, ge=0)
    fixed_rules: list[FixedRule] = Field(default_factory=_default_fixed_rules)

    @model_validator(mode="after")
    def _consistent(self) -> CompensationConfig:
        for level in LEVELS:
            if level not in self.goodwill_bands_cents:
                raise ValueError(f"goodwill_bands_cents: missing level {level}")
            low, high = self.goodwill_bands_cents[level]
            if not 0 <= low <= high:
                raise ValueError(f"goodwill_bands_cents.{level}: needs 0 <= low <= high, got [{low}, {high}]")
        for tier in TIERS:
            position = self.tier_position.get(tier)
            if position is None or not 0 <= position <= 1:
                raise ValueError(f"tier_position.{tier}: needs a number from 0 to 1")
        codes = [r.code for r in self.fixed_rules]
        if len(codes) != len(set(codes)):
            raise ValueError("fixed_rules: codes must be unique")
        return self

    def fixed_rule(self, code: str) -> FixedRule:
        for rule in self.fixed_rules:
            if rule.code == code:
                return rule
        raise KeyError(code)


def _default_limits() -> dict[str, int]:
    return {"agent": 5000, "team_lead": 25000, "complaints_manager": 100000, "head_of_service": 500000}


class ApprovalsConfig(_Strict):
    """Who may approve how much. Above the highest single limit, two distinct approvers of the top role."""

    limits_cents: dict[ApprovalRole, int] = Field(default_factory=_default_limits)
    # The desk's staff roles map to an approval role unless a person is granted another one.
    staff_role_map: dict[Literal["agent", "supervisor", "admin"], ApprovalRole] = Field(
        default_factory=lambda: {"agent": "agent", "supervisor": "team_lead", "admin": "head_of_service"})

    @model_validator(mode="after")
    def _increasing(self) -> ApprovalsConfig:
        missing = [r for r in APPROVAL_ROLES if r not in self.limits_cents]
        if missing:
            raise ValueError(f"limits_cents: missing role(s) {', '.join(missing)}")
        values = [self.limits_cents[r] for r in APPROVAL_ROLES]
        if values != sorted(values) or values[0] < 0:
            raise ValueError("limits_cents: limits must not decrease from agent to head_of_service")
        return self


def _default_categories() -> list[ComplaintCategory]:
    c = ComplaintCategory
    return [
        c(code="product_quality", label_en="Product quality", label_zh="产品质量"),
        c(code="delivery_delay", label_en="Delivery delay", label_zh="配送延误"),
        c(code="loss_or_damage", label_en="Loss or damage", label_zh="丢失或损坏"),
        c(code="billing", label_en="Billing", label_zh="账单计费"),
        c(code="staff_conduct", label_en="Staff conduct", label_zh="员工态度"),
        c(code="privacy", label_en="Privacy", label_zh="隐私"),
        c(code="other", label_en="Other", label_zh="其他"),
    ]


class RootCause(_Strict):
    """Why a complaint happened, as found by the investigation (for the reports)."""

    code: str = Field(pattern=r"^[a-z0-9_]+$")
    label_en: str
    label_zh: str


def _default_root_causes() -> list[RootCause]:
    r = RootCause
    return [
        r(code="carrier", label_en="Carrier or courier", label_zh="承运商或快递"),
        r(code="warehouse", label_en="Warehouse or packing", label_zh="仓储或包装"),
        r(code="product_defect", label_en="Product defect", label_zh="产品缺陷"),
        r(code="supplier", label_en="Supplier", label_zh="供应商"),
        r(code="billing_system", label_en="Billing system error", label_zh="计费系统错误"),
        r(code="process_gap", label_en="Process gap", label_zh="流程缺陷"),
        r(code="staff_error", label_en="Staff error", label_zh="员工失误"),
        r(code="communication", label_en="Miscommunication", label_zh="沟通不当"),
        r(code="customer_expectation", label_en="Customer expectation (no fault found)",
          label_zh="客户预期（未发现过错）"),
        r(code="other", label_en="Other", label_zh="其他"),
    ]


class EmailIntakeRule(_Strict):
    """When a new inbound email (not a reply on an existing case) becomes a complaint. Every condition
    given must hold, and a rule needs at least one; the first matching rule wins and is named on the
    complaint's audit trail. Keywords match like grading keywords: English as whole words, any case;
    Chinese anywhere in the text."""

    name: str = Field(pattern=r"^[a-z0-9_]+$", max_length=64)
    mailboxes: list[str] = Field(default_factory=list)  # ``email.mailboxes`` names the message arrived in
    addresses: list[str] = Field(default_factory=list)  # any of these among its To, Cc or Delivered-To
    subject_keywords: list[str] = Field(default_factory=list)  # any of these in the subject
    keywords: list[str] = Field(default_factory=list)  # any of these in the subject or the text body
    category: str

    @field_validator("addresses")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            if "@" not in address or " " in address.strip():
                raise ValueError(f"{address!r} is not an email address")
        return [address.strip().lower() for address in value]

    @model_validator(mode="after")
    def _has_a_condition(self) -> EmailIntakeRule:
        if not (self.mailboxes or self.addresses or self.subject_keywords or self.keywords):
            raise ValueError(f"rule {self.name!r} needs at least one of mailboxes, addresses, subject_keywords, "
                             "keywords (it would match every email)")
        if any(not word.strip() for word in self.subject_keywords + self.keywords):
            raise ValueError(f"rule {self.name!r}: keywords must not be blank")
        return self


class EmailIntakeConfig(_Strict):
    enabled: bool = True
    rules: list[EmailIntakeRule] = Field(default_factory=list)
    max_description_chars: int = Field(default=20000, ge=100, le=200000)  # the email's text, cut to this


EVIDENCE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain")


class ComplaintsConfig(_Strict):
    categories: list[ComplaintCategory] = Field(default_factory=_default_categories)
    root_causes: list[RootCause] = Field(default_factory=_default_root_causes)
    # Customer notices and staff alerts are emailed from this mailbox (``email.mailboxes``); None: the first.
    notice_mailbox: str | None = None
    calendar: str = "default"
    reference_prefix: str = Field(default="CMP", pattern=r"^[A-Z]{2,6}$")
    reopen_within_days: int = Field(default=30, ge=0)
    evidence_max_files: int = Field(default=10, ge=0)
    evidence_max_bytes: int = Field(default=10 * 1024 * 1024, gt=0)  # per file
    # Types staff may upload; the bytes are checked, not the browser's word. Choose from EVIDENCE_TYPES.
    evidence_types: list[str] = Field(default_factory=lambda: ["image/png", "image/jpeg", "image/gif",
                                                               "image/webp", "application/pdf"])
    # Closing sends a satisfaction survey (follow-up calls are the CRM's ``after_complaint_closed`` rule).
    survey_path: str = "/portal/surveys/complaint/{reference}"
    grading: GradingConfig = GradingConfig()
    deadlines: DeadlinesConfig = DeadlinesConfig()
    compensation: CompensationConfig = CompensationConfig()
    approvals: ApprovalsConfig = ApprovalsConfig()
    email_intake: EmailIntakeConfig = EmailIntakeConfig()

    @model_validator(mode="after")
    def _consistent(self) -> ComplaintsConfig:
        codes = [c.code for c in self.categories]
        if len(codes) != len(set(codes)):
            raise ValueError("categories: codes must be unique")
        names = [rule.name for rule in self.email_intake.rules]
        for index, rule in enumerate(self.email_intake.rules):
            if rule.category not in codes:
                raise ValueError(f"email_intake.rules.{index}.category: unknown category {rule.category!r} "
                                 f"(categories has {', '.join(codes)})")
            if rule.name in names[:index]:
                raise ValueError(f"email_intake.rules.{index}.name: {rule.name!r} is used by another rule")
        for category in self.categories:
            profile = category.regulatory_profile
            if profile is not None and profile not in self.deadlines.regulatory_profiles:
                raise ValueError(f"categories.{category.code}.regulatory_profile: unknown profile {profile!r}")
        causes = [c.code for c in self.root_causes]
        if len(causes) != len(set(causes)):
            raise ValueError("root_causes: codes must be unique")
        unknown_types = [t for t in self.evidence_types if t not in EVIDENCE_TYPES]
        if unknown_types:
            raise ValueError(f"evidence_types: unsupported {', '.join(unknown_types)}; choose from "
                             f"{', '.join(EVIDENCE_TYPES)}")
        for rule in self.compensation.fixed_rules:
            unknown = [c for c in rule.categories if codes and c not in codes]
            if unknown:
                raise ValueError(f"compensation.fixed_rules.{rule.code}.categories: unknown {', '.join(unknown)}")
        return self

    def root_cause(self, code: str) -> RootCause:
        for cause in self.root_causes:
            if cause.code == code:
                return cause
        raise KeyError(code)

    def category(self, code: str) -> ComplaintCategory:
        for category in self.categories:
            if category.code == code:
                return category
        raise KeyError(code)


def check_email_intake_mailboxes(config) -> None:
    """Cross-check (``app.config.CROSS_CHECKS``): email intake rules name configured mailboxes."""
    known = [m.name for m in config.email.mailboxes]
    for index, rule in enumerate(config.complaints.email_intake.rules):
        for name in rule.mailboxes:
            if name not in known:
                raise ValueError(f"complaints.email_intake.rules.{index}.mailboxes: unknown mailbox {name!r} "
                                 f"(email.mailboxes has {', '.join(known) or 'none'})")


def check_notice_mailbox(config) -> None:
    """Cross-check (``app.config.CROSS_CHECKS``): the notice mailbox is one of ``email.mailboxes``."""
    name = config.complaints.notice_mailbox
    if name and name not in [m.name for m in config.email.mailboxes]:
        raise ValueError(f"complaints.notice_mailbox: unknown mailbox {name!r}")
