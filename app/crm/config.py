"""The ``crm:`` section of config.yaml: value tiers, RFM window, follow-up rules."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TierThresholds(BaseModel):
    """The customer pyramid by revenue rank: cumulative shares of customers (top 1% VIP, next 4% major...)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vip: float = Field(default=0.01, gt=0, lt=1)
    major: float = Field(default=0.05, gt=0, lt=1)
    ordinary: float = Field(default=0.20, gt=0, le=1)


class CrmConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    default_country: str = Field(default="CN", pattern=r"^[A-Z]{2}$")
    rfm_window_days: int = Field(default=365, gt=0)
    tiers: TierThresholds = TierThresholds()
