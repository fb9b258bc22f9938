"""The ``complaints:`` section of config.yaml: categories, grading, deadlines, compensation."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ComplaintCategory(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(pattern=r"^[a-z0-9_]+$")
    label_en: str
    label_zh: str


class ComplaintsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    categories: list[ComplaintCategory] = Field(default_factory=list)
    calendar: str = "default"
