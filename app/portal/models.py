"""Customer self-service: sign-in accounts (kept apart from staff accounts), one-time sign-in/reset
tokens, case messages, attachments, the knowledge base and the outbound-mail record."""
from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import (ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint, event, func,
                        literal_column)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from app.crm.models import Customer
from app.db import UTCDateTime, utcnow
from app.extensions import db


class CustomerAccount(UserMixin, db.Model):
    __tablename__ = "customer_accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), unique=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    customer: Mapped[Customer] = relationship()

    def get_id(self) -> str:
        return f"customer:{self.id}"

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def name(self) -> str:
        return self.customer.name

    @property
    def language(self) -> str:
        return self.customer.language

    @property
    def timezone(self) -> str | None:
        return self.customer.timezone


class AccountToken(db.Model):
    """A one-time, expiring secret sent by email (sign-in link, password reset). Only its hash is stored."""

    __tablename__ = "portal_account_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("customer_accounts.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(16))  # login | reset
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CaseMessage(db.Model):
    """One entry in a written case's thread as the customer sees it (their words, replies, notices)."""

    __tablename__ = "portal_case_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    interaction_id: Mapped[int] = mapped_column(ForeignKey("interactions.id", ondelete="CASCADE"))
    author: Mapped[str] = mapped_column(String(10))  # customer | agent | system
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    attachments: Mapped[list[Attachment]] = relationship(back_populates="case_message", lazy="selectin")
    __table_args__ = (Index("ix_portal_case_messages_thread", "interaction_id", "id"),)


class Attachment(db.Model):
    """A file a customer (or agent) attached to a case or chat; the bytes live in the database so every
    web node serves them and a backup holds them."""

    __tablename__ = "portal_attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    interaction_id: Mapped[int | None] = mapped_column(ForeignKey("interactions.id", ondelete="CASCADE"),
                                                       index=True)
    case_message_id: Mapped[int | None] = mapped_column(ForeignKey("portal_case_messages.id", ondelete="SET NULL"))
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = deferred(mapped_column(LargeBinary))
    uploaded_by: Mapped[str] = mapped_column(String(40))  # customer:<id> | chat:<id> | staff:<id>
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    case_message: Mapped[CaseMessage | None] = relationship(back_populates="attachments")


class KbCategory(db.Model):
    __tablename__ = "kb_categories"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name_en: Mapped[str] = mapped_column(String(120))
    name_zh: Mapped[str] = mapped_column(String(120))
    position: Mapped[int] = mapped_column(Integer, default=0)


class KbArticle(db.Model):
    """A knowledge-base article in one language; ``group_key`` ties an article to its translation.

    ``search_index`` is kept by the flush hooks below: on PostgreSQL a weighted ``tsvector`` (title A,
    body B; the ``english`` configuration for English, ``simple`` over CJK characters and pairs for the
    rest, see ``kb_text``) behind a GIN index; elsewhere the lower-cased plain text the portable search
    reads. Writes that bypass the ORM (bulk UPDATEs) must refresh it themselves.
    """

    __tablename__ = "kb_articles"

    id: Mapped[int] = mapped_column(primary_key=True)
    category_id: Mapped[int] = mapped_column(ForeignKey("kb_categories.id", ondelete="CASCADE"), index=True)
    slug: Mapped[str] = mapped_column(String(120))
    group_key: Mapped[str] = mapped_column(String(120), index=True)
    language: Mapped[str] = mapped_column(String(8))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    published: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    search_index: Mapped[str | None] = deferred(mapped_column(Text().with_variant(TSVECTOR(), "postgresql")))

    category: Mapped[KbCategory] = relationship(lazy="joined")
    __table_args__ = (UniqueConstraint("slug", "language"),
                      Index("ix_kb_articles_search_index", "search_index", postgresql_using="gin"))


def text_search_config(language: str | None) -> str:
    """The PostgreSQL text-search configuration an article in ``language`` is indexed with."""
    return "english" if language == "en" else "simple"


@event.listens_for(KbArticle, "before_insert")
@event.listens_for(KbArticle, "before_update")
def _fill_search_index(mapper, connection, target: KbArticle) -> None:
    from app.portal.kb_text import plain_text, search_document

    title, body = target.title or "", plain_text(target.body or "")
    if connection.dialect.name != "postgresql":
        target.search_index = f"{title} {body}".lower()
        return
    config = literal_column(f"'{text_search_config(target.language)}'::regconfig")
    weighted = [func.setweight(func.to_tsvector(config, search_document(part)), literal_column(f"'{weight}'"))
                for part, weight in ((title, "A"), (body, "B"))]
    target.search_index = weighted[0].op("||")(weighted[1])


class KbVote(db.Model):
    """One "did this help?" answer. The report counts these rows; no counter is kept beside them."""

    __tablename__ = "kb_votes"

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("kb_articles.id", ondelete="CASCADE"), index=True)
    helpful: Mapped[bool] = mapped_column()
    voter: Mapped[str] = mapped_column(String(80))  # customer:<id> or a hashed anonymous visitor key
    voted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("article_id", "voter"),)


class PortalEmail(db.Model):
    """Every email the portal and chat send a customer, recorded before it leaves (sign-in links, case
    notices, transcripts). ``status`` is ``sent`` once handed to the email channel, ``recorded`` when no
    outbound mail is configured (the embedded demo shows these in the log)."""

    __tablename__ = "portal_emails"

    id: Mapped[int] = mapped_column(primary_key=True)
    to_address: Mapped[str] = mapped_column(String(254), index=True)
    subject: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(24))  # login_link | reset | case_ack | chat_case | transcript | survey
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(12), default="recorded")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
