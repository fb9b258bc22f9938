"""The ``security:`` section of config.yaml."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SecurityConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    require_2fa_roles: list[Literal["agent", "supervisor", "admin"]] = Field(
        default_factory=lambda: ["supervisor", "admin"])
    totp_issuer: str = "Service Desk"
    recovery_codes: int = Field(default=10, ge=4, le=20)
    audit_retention_days: int = Field(default=730, ge=30)
