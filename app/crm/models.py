"""Customers and their orders: the CRM core every channel identifies contacts against."""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import UTCDateTime, utcnow
from app.extensions import db


class CustomerKind(StrEnum):
    INDIVIDUAL = "individual"
    BUSINESS = "business"
    DISTRIBUTOR = "distributor"
    INTERNAL = "internal"


class Tier(StrEnum):
    VIP = "vip"
    MAJOR = "major"
    ORDINARY = "ordinary"
    SMALL = "small"


class Customer(db.Model):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), default=CustomerKind.INDIVIDUAL)
    organisation: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(8), default="en")
    timezone: Mapped[str | None] = mapped_column(String(64))
    tier: Mapped[str] = mapped_column(String(16), default=Tier.SMALL)
    is_prospect: Mapped[bool] = mapped_column(default=False)
    attributes: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    phones: Mapped[list[CustomerPhone]] = relationship(
        back_populates="customer", cascade="all, delete-orphan", lazy="selectin")
    emails: Mapped[list[CustomerEmail]] = relationship(
        back_populates="customer", cascade="all, delete-orphan", lazy="selectin")
    orders: Mapped[list[Order]] = relationship(back_populates="customer", cascade="all, delete-orphan")


class CustomerPhone(db.Model):
    __tablename__ = "customer_phones"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    e164: Mapped[str] = mapped_column(String(20), index=True)
    label: Mapped[str] = mapped_column(String(20), default="mobile")

    customer: Mapped[Customer] = relationship(back_populates="phones")
    __table_args__ = (UniqueConstraint("customer_id", "e164"),)


class CustomerEmail(db.Model):
    __tablename__ = "customer_emails"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254), index=True)  # stored lower-cased

    customer: Mapped[Customer] = relationship(back_populates="emails")
    __table_args__ = (UniqueConstraint("customer_id", "email"),)


class Order(db.Model):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    placed_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    status: Mapped[str] = mapped_column(String(24), default="placed")
    total_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="CNY")

    customer: Mapped[Customer] = relationship(back_populates="orders")
    lines: Mapped[list[OrderLine]] = relationship(back_populates="order", cascade="all, delete-orphan")
    shipments: Mapped[list[Shipment]] = relationship(back_populates="order", cascade="all, delete-orphan")

    # The 360 view's "latest orders of this customer": an index range read backwards, not a sort of every
    # order a wholesaler ever placed.
    __table_args__ = (Index("ix_orders_customer_placed", "customer_id", "placed_at"),)


class OrderLine(db.Model):
    __tablename__ = "order_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    sku: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    unit_price_cents: Mapped[int] = mapped_column(BigInteger)

    order: Mapped[Order] = relationship(back_populates="lines")


class Shipment(db.Model):
    __tablename__ = "shipments"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    carrier: Mapped[str] = mapped_column(String(64))
    tracking_number: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(24), default="in_transit")
    shipped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    order: Mapped[Order] = relationship(back_populates="shipments")


# --- additions for customer value, consent, tags, organisation contacts, merges (issue 3) ------------

class ConsentPurpose(StrEnum):
    CALLS = "calls"
    EMAIL = "email"
    SMS = "sms"
    MARKETING = "marketing"
    RECORDING = "recording"


class CustomerConsent(db.Model):
    """Whether the customer agreed to be contacted for a purpose; absent means not asked (treated as no
    for marketing, as yes for service contact they started themselves)."""

    __tablename__ = "customer_consents"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(16))
    granted: Mapped[bool] = mapped_column(default=False)
    source: Mapped[str] = mapped_column(String(32), default="agent")  # agent | portal | import | api
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("customer_id", "purpose"),)


class CustomerTag(db.Model):
    __tablename__ = "customer_tags"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    tag: Mapped[str] = mapped_column(String(40), index=True)

    __table_args__ = (UniqueConstraint("customer_id", "tag"),)


class CustomerContact(db.Model):
    """A person at an organisation customer (business, distributor, internal). Calls from the contact's
    phone identify the organisation, with the contact named."""

    __tablename__ = "customer_contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str | None] = mapped_column(String(100))
    phone_e164: Mapped[str | None] = mapped_column(String(20), index=True)
    email: Mapped[str | None] = mapped_column(String(254), index=True)  # stored lower-cased
    language: Mapped[str | None] = mapped_column(String(8))
    is_primary: Mapped[bool] = mapped_column(default=False)


class CustomerValueSnapshot(db.Model):
    """The latest computed value of one customer, with the explanation shown to agents (one row each)."""

    __tablename__ = "customer_value_snapshots"

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    tier: Mapped[str] = mapped_column(String(16))
    r: Mapped[int] = mapped_column(Integer)
    f: Mapped[int] = mapped_column(Integer)
    m: Mapped[int] = mapped_column(Integer)
    segment: Mapped[str] = mapped_column(String(16))
    stage: Mapped[str] = mapped_column(String(16), index=True)
    loyalty: Mapped[str] = mapped_column(String(16))
    churn_risk: Mapped[str] = mapped_column(String(8))
    churn_signals: Mapped[list] = mapped_column(JSON, default=list)
    revenue_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    net_value_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    ltv_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    # The highest tier held recently: a customer whose revenue left the window is 'small' now, yet the
    # 'lapsed major customer' follow-up needs to know they were major.
    peak_tier: Mapped[str] = mapped_column(String(16))
    peak_tier_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_order_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    explanation: Mapped[dict] = mapped_column(JSON, default=dict)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ValueRun(db.Model):
    """One recomputation of every customer's value (a job row the UI can show progress from)."""

    __tablename__ = "crm_value_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(12), default="running")  # running | done | failed
    trigger: Mapped[str] = mapped_column(String(16), default="on_demand")  # nightly | on_demand
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    customers: Mapped[int] = mapped_column(Integer, default=0)
    pyramid: Mapped[dict] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)


class CustomerMerge(db.Model):
    """Audit of a merge: which duplicate was folded into which customer, by whom, and what it held."""

    __tablename__ = "customer_merges"

    id: Mapped[int] = mapped_column(primary_key=True)
    survivor_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    merged_customer_id: Mapped[int] = mapped_column(Integer)  # the row no longer exists
    merged_name: Mapped[str] = mapped_column(String(200))
    moved: Mapped[dict] = mapped_column(JSON, default=dict)  # table -> rows moved
    actor: Mapped[str] = mapped_column(String(64))
    merged_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CustomerFeedback(db.Model):
    """A survey answer: CSAT 1-5 or NPS 0-10 ("how likely to recommend"). Attitude for the loyalty type
    and a churn signal; written by whichever channel runs the survey through ``crm.service.record_feedback``."""

    __tablename__ = "customer_feedback"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # csat | nps
    score: Mapped[int] = mapped_column(Integer)
    interaction_id: Mapped[int | None] = mapped_column(ForeignKey("interactions.id", ondelete="SET NULL"))
    comment: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
