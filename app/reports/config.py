"""The ``reports:`` section of config.yaml: KPI thresholds, the wallboard's refresh and staffing defaults."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StaffingDefaults(_Strict):
    interval_min: int = Field(default=30, gt=0, le=24 * 60)
    shrinkage: float = Field(default=0.30, ge=0, lt=1)  # breaks, training, absence: scheduled but not on the phones
    max_agents: int = Field(default=2000, gt=0)


class ReportsConfig(_Strict):
    short_abandon_s: float = Field(default=5, ge=0)  # a caller who leaves sooner is counted apart
    fcr_window_days: int = Field(default=7, gt=0)  # another contact within this undoes first-contact resolution
    default_sl_within_s: int = Field(default=20, gt=0)  # for contacts whose queue is no longer configured
    wallboard_refresh_s: float = Field(default=5, gt=0)  # the wallboard refreshes at least this often
    wallboard_debounce_s: float = Field(default=0.3, ge=0)  # at most one push per this after a change
    staffing: StaffingDefaults = StaffingDefaults()
