"""The Interaction every channel shares, and its append-only event log."""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import UTCDateTime, utcnow
from app.extensions import db
from app.interactions.states import State


class Channel(StrEnum):
    VOICE = "voice"
    EMAIL = "email"
    CHAT = "chat"
    TASK = "task"  # follow-ups and other outbound work


class Interaction(db.Model):
    __tablename__ = "interactions"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(8))
    direction: Mapped[str] = mapped_column(String(8), default="inbound")
    state: Mapped[str] = mapped_column(String(20), default=State.NEW, index=True)
    # Provider key (CallSid, Message-ID, chat session id): unique per channel so retries store once.
    external_ref: Mapped[str | None] = mapped_column(String(255))
    # indexed with state_changed_at below: a customer's latest contacts (routing's preferred agent)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"))
    queue: Mapped[str | None] = mapped_column(String(64), index=True)
    language: Mapped[str] = mapped_column(String(8), default="en")
    subject: Mapped[str | None] = mapped_column(Text)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"), index=True)
    # The moment that orders this contact among equals; survives rejects, transfers, callbacks, IVR re-entry.
    routing_age_origin: Mapped[datetime | None] = mapped_column(UTCDateTime)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    priority_reasons: Mapped[list] = mapped_column(JSON, default=list)
    required_skills: Mapped[list] = mapped_column(JSON, default=list)
    attributes: Mapped[dict] = mapped_column(JSON, default=dict)  # IVR path, collected digits, ...
    disposition: Mapped[str | None] = mapped_column(String(64))
    notes: Mapped[str | None] = mapped_column(Text)
    recording_url: Mapped[str | None] = mapped_column(String(500))
    recording_duration_s: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    state_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)

    events: Mapped[list[InteractionEvent]] = relationship(
        back_populates="interaction", order_by="InteractionEvent.id", cascade="all, delete-orphan",
        passive_deletes=True)

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        UniqueConstraint("channel", "external_ref"),
        Index("ix_interactions_waiting", "state", "queue", "routing_age_origin"),
        Index("ix_interactions_customer_recent", "customer_id", "state_changed_at"),
    )


class InteractionEvent(db.Model):
    """One row per state change (and other notable facts). Rows are never updated or deleted."""

    __tablename__ = "interaction_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    interaction_id: Mapped[int] = mapped_column(ForeignKey("interactions.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32), default="transition")
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str | None] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(255), default="")
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    interaction: Mapped[Interaction] = relationship(back_populates="events")

    __table_args__ = (Index("ix_interaction_events_interaction", "interaction_id", "id"),)


class AppendOnlyViolation(Exception):
    """Someone tried to change or delete an event-log row."""


@event.listens_for(InteractionEvent, "before_update")
def _refuse_update(mapper, connection, target):  # pragma: no branch - a guard, always raises
    raise AppendOnlyViolation("interaction events are append-only")


@event.listens_for(InteractionEvent, "before_delete")
def _refuse_delete(mapper, connection, target):
    raise AppendOnlyViolation("interaction events are append-only")
