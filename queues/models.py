"""Routing's rows: offers (leased reservations), agents' routing state, and each waiting contact's entry.

The database is the source of truth; the router's in-memory engine (``queues.engine``) is rebuilt from
these rows at start, so killing the router loses nothing.

- ``Offer``: one reservation of a contact for an agent, with a lease (``expires_at``) and a ``version``
  for compare-and-swap answers. At most one *pending* offer per interaction, enforced by a partial
  unique index on PostgreSQL and SQLite alike.
- ``AgentState``: presence (offline | available | break | wrap_up) and what routing needs to order and
  protect agents (idle since, missed offers in a row, back-off). Load is never stored: it is derived
  from the agent's offered and connected interactions.
- ``QueueEntry``: when a contact entered its current queue (escalation steps and overflow count from
  here; its place in line is ``Interaction.routing_age_origin``), and a preferred agent it is held for.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import UTCDateTime, utcnow
from app.extensions import db

OFFER_STATUSES = ("pending", "accepted", "rejected", "expired", "rescinded")
PRESENCES = ("offline", "available", "break", "wrap_up")


class Offer(db.Model):
    __tablename__ = "routing_offers"

    id: Mapped[int] = mapped_column(primary_key=True)
    interaction_id: Mapped[int] = mapped_column(ForeignKey("interactions.id", ondelete="CASCADE"), index=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    queue: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(8))
    # The waiting state the contact returns to when the offer is not taken (queued or callback_pending).
    from_state: Mapped[str] = mapped_column(String(20), default="queued")
    cost: Mapped[int] = mapped_column(Integer, default=0)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    priority_reasons: Mapped[list] = mapped_column(JSON, default=list)
    trace: Mapped[dict] = mapped_column(JSON, default=dict)  # why this agent, who was excluded and why
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cause: Mapped[str | None] = mapped_column(String(32))  # reject | no_answer | disconnect | rescind reason
    version: Mapped[int] = mapped_column(Integer, default=1)

    __table_args__ = (
        Index("uq_routing_offers_one_pending", "interaction_id", unique=True,
              postgresql_where=text("status = 'pending'"), sqlite_where=text("status = 'pending'")),
        Index("ix_routing_offers_pending_expiry", "status", "expires_at"),
    )


class AgentState(db.Model):
    __tablename__ = "routing_agent_states"

    agent_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"), primary_key=True)
    presence: Mapped[str] = mapped_column(String(16), default="offline")
    reason: Mapped[str | None] = mapped_column(String(64))
    since: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    wrap_up_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    idle_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    missed_offers: Mapped[int] = mapped_column(Integer, default=0)
    backoff_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class QueueEntry(db.Model):
    __tablename__ = "routing_queue_entries"

    interaction_id: Mapped[int] = mapped_column(ForeignKey("interactions.id", ondelete="CASCADE"),
                                                primary_key=True)
    queue: Mapped[str] = mapped_column(String(64))
    enqueued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    preferred_agent_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    preferred_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(String(500))  # a transfer's note for whoever takes it next
    overflowed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # max wait passed; never again
