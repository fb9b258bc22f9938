"""The ``crm:`` section of config.yaml: value tiers, RFM window, value rules, custom attributes, follow-ups.

Every threshold that decides a customer's tier, segment, lifecycle stage, churn signals or loyalty type
lives here, so the explanation stored with each score can be traced to one key of config.yaml.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TierThresholds(_Strict):
    """The customer pyramid by revenue rank: cumulative shares of customers (top 1% VIP, next 4% major...)."""

    vip: float = Field(default=0.01, gt=0, lt=1)
    major: float = Field(default=0.05, gt=0, lt=1)
    ordinary: float = Field(default=0.20, gt=0, le=1)

    @model_validator(mode="after")
    def _cumulative(self) -> TierThresholds:
        if not self.vip < self.major < self.ordinary:
            raise ValueError("tiers: cumulative shares must grow: vip < major < ordinary "
                             f"(got {self.vip}, {self.major}, {self.ordinary})")
        return self


class ValueRules(_Strict):
    """Money side of value: margin on revenue and the costs to serve (contacts handled, compensation paid)."""

    margin_rate: float = Field(default=0.30, gt=0, le=1)
    cost_per_contact_cents: int = Field(default=800, ge=0)
    ltv_horizon_years: float = Field(default=3.0, gt=0, le=50)
    # MGC: revenue in the recent half of the window at least this many times the earlier half.
    growth_ratio: float = Field(default=1.5, gt=1)


class LifecycleRules(_Strict):
    new_days: int = Field(default=90, gt=0)
    at_risk_after_days: int = Field(default=180, gt=0)
    lapsed_after_days: int = Field(default=365, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> LifecycleRules:
        if self.at_risk_after_days >= self.lapsed_after_days:
            raise ValueError("lifecycle.at_risk_after_days must be below lifecycle.lapsed_after_days")
        return self


class LoyaltyRules(_Strict):
    """Attitude (CSAT 1-5, NPS 0-10) crossed with behaviour (repeat purchase) gives the loyalty type."""

    csat_positive_min: float = Field(default=4.0, ge=1, le=5)
    nps_positive_min: float = Field(default=9.0, ge=0, le=10)
    repeat_min_orders: int = Field(default=2, ge=2)


class ChurnRules(_Strict):
    # Falling frequency: recent-half orders at most this share of the earlier half's (which had >= 2).
    falling_frequency_ratio: float = Field(default=0.5, ge=0, lt=1)
    low_csat_max: float = Field(default=2.5, ge=1, le=5)
    repeated_complaints_min: int = Field(default=2, ge=2)


class CustomAttribute(_Strict):
    """A field the desk adds to every customer (stored in ``Customer.attributes``)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    type: Literal["text", "integer", "boolean", "date", "choice"] = "text"
    choices: list[str] = Field(default_factory=list)
    required: bool = False
    label_en: str = ""
    label_zh: str = ""

    @model_validator(mode="after")
    def _choices_for_choice(self) -> CustomAttribute:
        if (self.type == "choice") != bool(self.choices):
            raise ValueError(f"custom_attributes.{self.name}: 'choices' is required for type choice "
                             "and only allowed there")
        return self


FollowUpKind = Literal["not_contacted", "after_complaint_closed", "lapsed"]


class FollowUpRule(_Strict):
    """A reminder to keep in touch: creates a ``task`` Interaction routed like any other contact.

    - ``not_contacted``: customers of ``tiers`` with no interaction for ``days``;
    - ``after_complaint_closed``: ``days`` after a complaint of theirs was closed;
    - ``lapsed``: customers of ``tiers`` whose lifecycle stage is lapsed.
    """

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    kind: FollowUpKind
    tiers: list[Literal["vip", "major", "ordinary", "small"]] = Field(default_factory=list)
    days: int = Field(default=0, ge=0)
    action: Literal["call", "email"] = "call"
    queue: str | None = None
    subject_en: str
    subject_zh: str

    @model_validator(mode="after")
    def _needs(self) -> FollowUpRule:
        if self.kind in ("not_contacted", "after_complaint_closed") and self.days <= 0:
            raise ValueError(f"follow_ups.{self.name}.days: must be > 0 for kind {self.kind}")
        if self.kind in ("not_contacted", "lapsed") and not self.tiers:
            raise ValueError(f"follow_ups.{self.name}.tiers: name at least one tier for kind {self.kind}")
        return self


def _default_follow_ups() -> list[FollowUpRule]:
    return [
        FollowUpRule(name="vip_keep_in_touch", kind="not_contacted", tiers=["vip"], days=90, action="call",
                     subject_en="Keep in touch: VIP customer not contacted for 90 days",
                     subject_zh="保持联系：VIP 客户已 90 天未联系"),
        FollowUpRule(name="after_complaint", kind="after_complaint_closed", days=7, action="call",
                     subject_en="Follow up 7 days after the complaint was closed",
                     subject_zh="投诉结案 7 天后回访"),
        FollowUpRule(name="lapsed_major", kind="lapsed", tiers=["major"], action="email",
                     subject_en="Win back: lapsed major customer",
                     subject_zh="挽回：流失的重要客户"),
    ]


class CrmConfig(_Strict):
    default_country: str = Field(default="CN", pattern=r"^[A-Z]{2}$")
    rfm_window_days: int = Field(default=365, gt=1)
    tiers: TierThresholds = TierThresholds()
    value: ValueRules = ValueRules()
    lifecycle: LifecycleRules = LifecycleRules()
    loyalty: LoyaltyRules = LoyaltyRules()
    churn: ChurnRules = ChurnRules()
    custom_attributes: list[CustomAttribute] = Field(default_factory=list)
    follow_ups: list[FollowUpRule] = Field(default_factory=_default_follow_ups)
    import_batch_size: int = Field(default=500, gt=0, le=10000)

    @model_validator(mode="after")
    def _known_region(self) -> CrmConfig:
        import phonenumbers

        if self.default_country not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"default_country: {self.default_country!r} is not a region phonenumbers knows")
        return self

    @model_validator(mode="after")
    def _unique_names(self) -> CrmConfig:
        for label, names in (("custom_attributes", [a.name for a in self.custom_attributes]),
                             ("follow_ups", [r.name for r in self.follow_ups])):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"{label}: duplicate names {duplicates}")
        return self


def check_follow_up_queues(config) -> None:
    """Cross-section check (app.config.CROSS_CHECKS): a follow-up rule's queue must be a routing queue."""
    known = {queue.name for queue in config.routing.queues}
    for rule in config.crm.follow_ups:
        if rule.queue is not None and rule.queue not in known:
            raise ValueError(f"crm.follow_ups.{rule.name}.queue: unknown queue {rule.queue!r}")
