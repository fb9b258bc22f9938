"""Validated input shapes shared by the REST API and the CSV import (one set of rules for both).

Phones are normalised to E.164 with the desk's default region, passed as validation context
``{"region": "CN"}``; emails are lower-cased; datetimes must carry a time zone (stored as UTC).
"""
from __future__ import annotations

import re
from datetime import datetime, UTC
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from app.crm.models import ConsentPurpose, CustomerKind, Tier
from app.crm.phones import InvalidPhone, normalise_phone

EMAIL_RE = re.compile(r"^[^@\s<>()\[\],;:\"]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$")
TAG_RE = re.compile(r"^[\w\-]{1,40}$")
Kind = Literal["individual", "business", "distributor", "internal"]
TierName = Literal["vip", "major", "ordinary", "small"]
Stage = Literal["prospect", "new", "active", "at_risk", "lapsed"]
Purpose = Literal["calls", "email", "sms", "marketing", "recording"]
assert set(Kind.__args__) == set(CustomerKind) and set(TierName.__args__) == set(Tier)  # type: ignore[attr-defined]
assert set(Purpose.__args__) == set(ConsentPurpose)  # type: ignore[attr-defined]

MAX_ID = 2**31 - 1  # ids are 32-bit in the database; a larger one can only be "not found"


def normalise_email(raw: str) -> str:
    """Lower-cased, trimmed email; raises ValueError when it is not an address."""
    email = raw.strip().lower()
    if len(email) > 254 or not EMAIL_RE.match(email):
        raise ValueError(f"{raw!r} is not an email address")
    return email


def _region(info: ValidationInfo) -> str:
    return (info.context or {}).get("region", "CN")


def _phones(values: list[str], info: ValidationInfo) -> list[str]:
    out: list[str] = []
    for raw in values:
        try:
            e164 = normalise_phone(raw, _region(info))
        except InvalidPhone as exc:
            raise ValueError(f"phone {raw!r}: {exc.en}") from exc
        if e164 not in out:
            out.append(e164)
    return out


def _tags(values: list[str]) -> list[str]:
    out: list[str] = []
    for tag in values:
        tag = tag.strip().lower()
        if not TAG_RE.match(tag):
            raise ValueError(f"tag {tag!r}: letters, digits, '_' or '-', at most 40")
        if tag not in out:
            out.append(tag)
    return out


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ContactIn(_In):
    name: str = Field(min_length=1, max_length=200)
    role: str | None = Field(default=None, max_length=100)
    phone: str | None = None
    email: str | None = None
    language: Literal["en", "zh"] | None = None
    is_primary: bool = False

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if not value else _phones([value], info)[0]

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        return None if not value else normalise_email(value)


class CustomerIn(_In):
    """A new customer (API POST, CSV row)."""

    name: str = Field(min_length=1, max_length=200)
    kind: Kind = "individual"
    organisation: str | None = Field(default=None, max_length=200)
    language: Literal["en", "zh"] = "en"
    timezone: str | None = Field(default=None, max_length=64)
    is_prospect: bool = False
    phones: list[str] = Field(default_factory=list, max_length=10)
    emails: list[str] = Field(default_factory=list, max_length=10)
    tags: list[str] = Field(default_factory=list, max_length=50)
    consents: dict[Purpose, bool] = Field(default_factory=dict)
    attributes: dict[str, Any] = Field(default_factory=dict)
    contacts: list[ContactIn] = Field(default_factory=list, max_length=50)

    @field_validator("phones")
    @classmethod
    def _phones(cls, values: list[str], info: ValidationInfo) -> list[str]:
        return _phones(values, info)

    @field_validator("emails")
    @classmethod
    def _emails(cls, values: list[str]) -> list[str]:
        return list(dict.fromkeys(normalise_email(v) for v in values))

    @field_validator("tags")
    @classmethod
    def _tags(cls, values: list[str]) -> list[str]:
        return _tags(values)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        if value:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown time zone {value!r}") from exc
        return value or None


class CustomerPatch(CustomerIn):
    """A change to a customer: only the fields given are changed; lists replace the stored lists."""

    name: str | None = Field(default=None, min_length=1, max_length=200)  # type: ignore[assignment]
    kind: Kind | None = None  # type: ignore[assignment]
    language: Literal["en", "zh"] | None = None  # type: ignore[assignment]
    is_prospect: bool | None = None  # type: ignore[assignment]
    phones: list[str] | None = Field(default=None, max_length=10)  # type: ignore[assignment]
    emails: list[str] | None = Field(default=None, max_length=10)  # type: ignore[assignment]
    tags: list[str] | None = Field(default=None, max_length=50)  # type: ignore[assignment]
    consents: dict[Purpose, bool] | None = None  # type: ignore[assignment]
    attributes: dict[str, Any] | None = None  # type: ignore[assignment]
    contacts: list[ContactIn] | None = Field(default=None, max_length=50)  # type: ignore[assignment]

    @field_validator("phones")
    @classmethod
    def _phones(cls, values: list[str] | None, info: ValidationInfo) -> list[str] | None:
        return None if values is None else _phones(values, info)

    @field_validator("emails")
    @classmethod
    def _emails(cls, values: list[str] | None) -> list[str] | None:
        return None if values is None else list(dict.fromkeys(normalise_email(v) for v in values))

    @field_validator("tags")
    @classmethod
    def _tags(cls, values: list[str] | None) -> list[str] | None:
        return None if values is None else _tags(values)


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("datetime needs a time zone, e.g. 2026-05-01T10:00:00+08:00 or ...Z")
    return None if value is None else value.astimezone(UTC)


class OrderLineIn(_In):
    sku: str = Field(min_length=1, max_length=64)
    description: str = Field(default="", max_length=2000)
    quantity: int = Field(default=1, ge=1, le=1_000_000)
    unit_price_cents: int = Field(ge=0, le=10**13)


class ShipmentIn(_In):
    carrier: str = Field(min_length=1, max_length=64)
    tracking_number: str = Field(min_length=1, max_length=64)
    status: Literal["pending", "in_transit", "out_for_delivery", "delivered", "returned", "lost"] = "in_transit"
    shipped_at: datetime | None = None
    delivered_at: datetime | None = None
    expected_at: datetime | None = None

    _aware = field_validator("shipped_at", "delivered_at", "expected_at")(classmethod(lambda cls, v: _aware(v)))


class OrderIn(_In):
    customer_id: int = Field(gt=0, le=MAX_ID)
    number: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_\-./]+$")
    placed_at: datetime
    status: Literal["placed", "paid", "shipped", "delivered", "cancelled", "returned"] = "placed"
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    total_cents: int | None = Field(default=None, ge=0, le=10**13)
    lines: list[OrderLineIn] = Field(default_factory=list, max_length=500)
    shipments: list[ShipmentIn] = Field(default_factory=list, max_length=20)

    _aware = field_validator("placed_at")(classmethod(lambda cls, v: _aware(v)))

    @model_validator(mode="after")
    def _total(self) -> OrderIn:
        from_lines = sum(line.quantity * line.unit_price_cents for line in self.lines)
        if self.total_cents is None:
            if not self.lines:
                raise ValueError("give total_cents or at least one line")
            self.total_cents = from_lines
        elif self.lines and self.total_cents != from_lines:
            raise ValueError(f"total_cents {self.total_cents} differs from the lines' sum {from_lines}")
        return self


class CustomerQuery(_In):
    page: int = Field(default=1, ge=1, le=100_000)
    per_page: int = Field(default=25, ge=1, le=200)
    q: str | None = Field(default=None, max_length=100)
    tier: TierName | None = None
    kind: Kind | None = None
    stage: Stage | None = None
    tag: str | None = Field(default=None, max_length=40)
    phone: str | None = None
    email: str | None = None
    prospect: bool | None = None

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if not value else _phones([value], info)[0]

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        return None if not value else value.strip().lower()


class OrderQuery(_In):
    page: int = Field(default=1, ge=1, le=100_000)
    per_page: int = Field(default=25, ge=1, le=200)
    customer_id: int | None = Field(default=None, gt=0, le=MAX_ID)
    status: str | None = Field(default=None, max_length=24)
    placed_from: datetime | None = None
    placed_to: datetime | None = None

    _aware = field_validator("placed_from", "placed_to")(classmethod(lambda cls, v: _aware(v)))


class IdentifyQuery(_In):
    phone: str | None = Field(default=None, max_length=64)
    email: str | None = Field(default=None, max_length=254)
    account_id: int | None = Field(default=None, gt=0, le=MAX_ID)
    create_prospect: bool = False

    @model_validator(mode="after")
    def _something(self) -> IdentifyQuery:
        if not (self.phone or self.email or self.account_id):
            raise ValueError("give phone, email or account_id")
        return self


def describe_errors(exc: ValidationError) -> list[dict[str, str]]:
    """pydantic errors as [{field, message}] for 422 bodies and CSV reports."""
    out = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(body)"
        message = err["msg"].removeprefix("Value error, ")
        out.append({"field": field, "message": message})
    return out


# --- read API for integrations: interactions and complaints (issue 10) --------------------------------------

Channel = Literal["voice", "email", "chat", "task"]
InteractionState = Literal["new", "ivr", "queued", "offered", "connected", "wrap_up", "closed", "abandoned",
                           "voicemail", "callback_pending"]
ComplaintStateName = Literal["received", "acknowledged", "investigating", "response_proposed", "awaiting_approval",
                             "approved", "compensation_issued", "resolved", "closed", "rejected", "reopened"]
ComplaintLevel = Literal["P1", "P2", "P3", "P4"]


class InteractionQuery(_In):
    page: int = Field(default=1, ge=1, le=100_000)
    per_page: int = Field(default=25, ge=1, le=200)
    customer_id: int | None = Field(default=None, gt=0, le=MAX_ID)
    channel: Channel | None = None
    state: InteractionState | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None

    _aware = field_validator("created_from", "created_to")(classmethod(lambda cls, v: _aware(v)))


class ComplaintQuery(_In):
    page: int = Field(default=1, ge=1, le=100_000)
    per_page: int = Field(default=25, ge=1, le=200)
    customer_id: int | None = Field(default=None, gt=0, le=MAX_ID)
    state: ComplaintStateName | None = None
    level: ComplaintLevel | None = None
    open: bool | None = None  # true: not resolved, closed or rejected
