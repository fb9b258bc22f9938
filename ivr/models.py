"""Voice tables: webhook receipts (Twilio retries answered once) and each agent's voice device."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import UTCDateTime, utcnow
from app.extensions import db


class VoiceWebhookReceipt(db.Model):
    """The answer given to one Twilio webhook, keyed by CallSid and event.

    Twilio retries a webhook it got no answer to; the retry finds this row and gets the same TwiML
    without changing anything again. The row is written in the same transaction as the change it
    answers, so an answer is stored exactly when its change is."""

    __tablename__ = "voice_webhook_receipts"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_sid: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer, default=200)
    body: Mapped[str] = mapped_column(Text)
    interaction_id: Mapped[int | None] = mapped_column(ForeignKey("interactions.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("call_sid", "event"),)


class AgentVoiceDevice(db.Model):
    """Where an agent takes calls: the browser softphone (default) or their own phone number."""

    __tablename__ = "agent_voice_devices"

    staff_user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"), primary_key=True)
    device: Mapped[str] = mapped_column(String(16), default="browser")  # browser | phone
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
