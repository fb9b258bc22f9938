"""Reports' own tables: the agent presence history (for occupancy and time in state), the staffing
forecast and the agents' scheduled shifts."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column

from app.db import UTCDateTime, utcnow
from app.extensions import db


class AgentPresenceLog(db.Model):
    """One row per presence change of an agent (append-only): a span runs from its row to the next.

    Written by the routing service in the transaction that changes the presence."""

    __tablename__ = "agent_presence_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"))
    presence: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_agent_presence_log_agent_at", "agent_id", "occurred_at"),)


class PresenceLogImmutable(Exception):
    """Someone tried to change or delete a presence history row."""


@event.listens_for(AgentPresenceLog, "before_update")
def _refuse_update(mapper, connection, target):
    raise PresenceLogImmutable("agent presence history is append-only")


class StaffingForecast(db.Model):
    """Expected contacts and handle time for one queue and interval (the input to Erlang C)."""

    __tablename__ = "staffing_forecasts"

    id: Mapped[int] = mapped_column(primary_key=True)
    queue: Mapped[str] = mapped_column(String(64))
    interval_start: Mapped[datetime] = mapped_column(UTCDateTime)
    interval_min: Mapped[int] = mapped_column(Integer)
    contacts: Mapped[int] = mapped_column(Integer)
    aht_s: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        UniqueConstraint("queue", "interval_start"),
        CheckConstraint("contacts >= 0 and aht_s > 0 and interval_min > 0", name="forecast_positive"),
    )


class ScheduledShift(db.Model):
    """An agent rostered on a queue (or on every queue when ``queue`` is empty) from start to end."""

    __tablename__ = "scheduled_shifts"

    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"), index=True)
    queue: Mapped[str | None] = mapped_column(String(64))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (CheckConstraint("ends_at > starts_at", name="shift_ends_after_start"),)
