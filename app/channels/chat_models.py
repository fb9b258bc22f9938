"""Web chat: one ChatSession per chat Interaction, and its messages (never lost, never stored twice)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import UTCDateTime, utcnow
from app.extensions import db
from app.interactions.models import Interaction


class ChatSession(db.Model):
    __tablename__ = "chat_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    interaction_id: Mapped[int] = mapped_column(ForeignKey("interactions.id", ondelete="CASCADE"), unique=True)
    # The customer's browser keeps the token to resume after a network drop; only its hash is stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"), index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("customer_accounts.id", ondelete="SET NULL"),
                                                   index=True)
    visitor_name: Mapped[str] = mapped_column(String(120))
    visitor_email: Mapped[str] = mapped_column(String(254))
    topic: Mapped[str] = mapped_column(String(64))
    origin: Mapped[str] = mapped_column(String(255), default="")
    mode: Mapped[str] = mapped_column(String(12), default="live")  # live | offline (out of hours)
    customer_read_upto: Mapped[int] = mapped_column(Integer, default=0)  # last message id the customer saw
    agent_read_upto: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[str | None] = mapped_column(String(32))
    case_interaction_id: Mapped[int | None] = mapped_column(ForeignKey("interactions.id", ondelete="SET NULL"))

    # Loaded with the chat: every message event needs the interaction's agent and state.
    interaction: Mapped[Interaction] = relationship(foreign_keys=[interaction_id], lazy="joined")

    @property
    def agent_id(self) -> int | None:
        """The agent the chat's interaction is with (what a message event is addressed to)."""
        return self.interaction.agent_id


class ChatMessage(db.Model):
    """A chat line. ``client_id`` is chosen by the sender's device: a resend after a drop hits the unique
    constraint and is answered with the stored row instead of a second copy."""

    __tablename__ = "chat_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    chat_id: Mapped[int] = mapped_column(ForeignKey("chat_sessions.id", ondelete="CASCADE"))
    sender: Mapped[str] = mapped_column(String(10))  # customer | agent | system
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    client_id: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text, default="")
    attachment_id: Mapped[int | None] = mapped_column(ForeignKey("portal_attachments.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("chat_id", "sender", "client_id"),
        Index("ix_chat_messages_thread", "chat_id", "id"),
    )
