"""Email channel tables: the raw store (with its quarantine), threads, messages, attachments,
templates, undeliverable addresses and IMAP progress."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    DDL,
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from app.db import UTCDateTime, utcnow
from app.extensions import db
from app.interactions.models import Interaction


class InboundStatus:
    PENDING = "pending"  # stored, not yet processed (or processing crashed mid-way: retried)
    PROCESSED = "processed"
    QUARANTINED = "quarantined"
    DUPLICATE = "duplicate"  # only for the CLI/HTTP reply; never stored


class InboundEmail(db.Model):
    """Every message as received, stored before anything tries to understand it.

    (mailbox, message_key) is unique in the database: the key is the Message-ID, or a hash of the
    sender and the raw bytes when there is none, so a message fetched twice (two pollers racing,
    a provider retrying) is stored once."""

    __tablename__ = "email_inbound"

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(64))
    message_key: Mapped[str] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(16))  # imap | http | cli
    source_ref: Mapped[str | None] = mapped_column(String(64))  # IMAP "uidvalidity:uid"
    raw: Mapped[bytes] = deferred(mapped_column(LargeBinary))
    raw_size: Mapped[int] = mapped_column(BigInteger)
    raw_sha256: Mapped[str] = mapped_column(String(64))
    headers_only: Mapped[bool] = mapped_column(default=False)  # too big to store: the rest stays on the server
    status: Mapped[str] = mapped_column(String(12), default=InboundStatus.PENDING, index=True)
    quarantine_reason: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    released_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))

    __table_args__ = (UniqueConstraint("mailbox", "message_key"),)


class EmailThread(db.Model):
    """The email side of a case: one per email Interaction."""

    __tablename__ = "email_threads"

    id: Mapped[int] = mapped_column(primary_key=True)
    interaction_id: Mapped[int] = mapped_column(ForeignKey("interactions.id", ondelete="CASCADE"), unique=True)
    mailbox: Mapped[str] = mapped_column(String(64))
    customer_address: Mapped[str] = mapped_column(String(254), index=True)
    cc: Mapped[list] = mapped_column(JSON, default=list)  # lower-cased addresses allowed to use the case tag
    subject: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    messages: Mapped[list[EmailMessage]] = relationship(back_populates="thread", order_by="EmailMessage.id")
    # Not read: declared so one flush writes a case before its thread and messages (the unit of work orders
    # tables by relationships), as an ingest batch does, adding its new cases with reserved ids.
    interaction: Mapped[Interaction] = relationship()


class EmailMessage(db.Model):
    """One message in a thread, inbound (parsed) or outbound (an agent's reply, an acknowledgement)."""

    __tablename__ = "email_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    thread_id: Mapped[int] = mapped_column(ForeignKey("email_threads.id", ondelete="CASCADE"), index=True)
    interaction_id: Mapped[int] = mapped_column(ForeignKey("interactions.id", ondelete="CASCADE"), index=True)
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("email_inbound.id", ondelete="SET NULL"),
                                                   unique=True)
    direction: Mapped[str] = mapped_column(String(3))  # in | out
    kind: Mapped[str] = mapped_column(String(12))  # customer | bounce | reply | ack | alert
    mailbox: Mapped[str] = mapped_column(String(64))
    message_id: Mapped[str | None] = mapped_column(String(255), index=True)
    in_reply_to: Mapped[str | None] = mapped_column(String(255))
    references: Mapped[list] = mapped_column(JSON, default=list)
    from_address: Mapped[str] = mapped_column(String(254), default="")
    from_name: Mapped[str] = mapped_column(String(254), default="")
    to: Mapped[list] = mapped_column(JSON, default=list)
    cc: Mapped[list] = mapped_column(JSON, default=list)
    recipient: Mapped[str | None] = mapped_column(String(254))  # outbound: the primary To (rate limits)
    subject: Mapped[str] = mapped_column(Text, default="")
    text_body: Mapped[str] = mapped_column(Text, default="")
    html_body: Mapped[str | None] = mapped_column(Text)  # as received; sanitised when shown
    language: Mapped[str] = mapped_column(String(8), default="en")
    is_automatic: Mapped[bool] = mapped_column(default=False)
    images_allowed: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(12), default="received")
    # received | scheduled | sending | sent | cancelled | failed | bounced
    send_after: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    details: Mapped[dict] = mapped_column(JSON, default=dict)  # bounce report, delivery failure
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the Date header / when we sent it
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    thread: Mapped[EmailThread] = relationship(back_populates="messages")
    interaction: Mapped[Interaction] = relationship()  # not read: orders the flush (see EmailThread)
    attachments: Mapped[list[EmailAttachment]] = relationship(
        back_populates="message", cascade="all, delete-orphan", order_by="EmailAttachment.id")

    __table_args__ = (
        Index("ix_email_messages_autoreply", "recipient", "kind", "created_at"),
        Index("ix_email_messages_status_due", "status", "send_after"),
    )


class EmailAttachment(db.Model):
    """An attachment of an inbound message: its metadata, and where its bytes are -- in the message's raw
    bytes (``InboundEmail.raw``, stored before parsing: the one copy), at MIME section ``mime_part``,
    decoded when staff download it (``attachments.attachment_content``).

    ``content`` holds the decoded bytes only in rows stored before attachments were kept in the raw
    message alone; it is read when there is no ``mime_part``."""

    __tablename__ = "email_attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("email_messages.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(127))
    size_bytes: Mapped[int] = mapped_column(BigInteger)  # decoded
    content_id: Mapped[str | None] = mapped_column(String(255))  # for cid: images in HTML
    inline: Mapped[bool] = mapped_column(default=False)
    withheld: Mapped[str | None] = mapped_column(String(32))  # too_large | blocked_type: kept only in the raw
    mime_part: Mapped[str | None] = mapped_column(String(255))  # parse.ParsedAttachment.part; "": the raw itself
    content: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))  # rows from before mime_part only

    message: Mapped[EmailMessage] = relationship(back_populates="attachments")


# The raw bytes and attachment contents are mostly base64, compressed or random: PostgreSQL keeps them out
# of line without trying to compress them (migration 0002 sets the same on existing databases).
for _table, _column in ((InboundEmail.__table__, "raw"), (EmailAttachment.__table__, "content")):
    event.listen(_table, "after_create", DDL(
        f"ALTER TABLE {_table.name} ALTER COLUMN {_column} SET STORAGE EXTERNAL").execute_if(dialect="postgresql"))


class EmailTemplate(db.Model):
    """An admin's version of a built-in template (acknowledgement, reply, canned reply) in one language,
    or the text of a canned reply an admin added (``CannedReply``)."""

    __tablename__ = "email_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(8))
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("key", "language"),)


class CannedReply(db.Model):
    """A canned reply an admin added (the built-in ones live in code): its key and labels. The texts are
    ``EmailTemplate`` rows under the same key, one per language, created with it and deleted with it."""

    __tablename__ = "email_canned_replies"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(32), unique=True)
    label_en: Mapped[str] = mapped_column(String(80))
    label_zh: Mapped[str] = mapped_column(String(80))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UndeliverableAddress(db.Model):
    """An address that bounced permanently (5.x.x): no mail is sent to it until it is changed or cleared."""

    __tablename__ = "email_undeliverable"

    id: Mapped[int] = mapped_column(primary_key=True)
    address: Mapped[str] = mapped_column(String(254), unique=True)
    status_code: Mapped[str] = mapped_column(String(16))
    diagnostic: Mapped[str] = mapped_column(Text, default="")
    bounce_message_id: Mapped[int | None] = mapped_column(ForeignKey("email_messages.id", ondelete="SET NULL"))
    marked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MailboxPollState(db.Model):
    """IMAP progress per mailbox: by UIDVALIDITY and UID, never by the read flag; and health for alerts."""

    __tablename__ = "email_poll_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(64), unique=True)
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    alerting: Mapped[bool] = mapped_column(default=False)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
