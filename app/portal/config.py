"""The ``portal:`` and ``chat:`` sections of config.yaml: the customer's self-service and live-chat rules.

Every default is a working policy, so empty sections give a working portal and chat widget.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_ATTACHMENT_TYPES = ["image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CaseCategory(_Strict):
    """A reason a customer can pick when opening a case; it chooses the queue the case waits in."""

    code: str = Field(pattern=r"^[a-z0-9_]+$")
    label_en: str
    label_zh: str
    queue: str = "general"


class AttachmentLimits(_Strict):
    max_bytes: int = Field(default=5 * 1024 * 1024, gt=0)
    max_files: int = Field(default=5, ge=0)
    types: list[str] = Field(default_factory=lambda: list(DEFAULT_ATTACHMENT_TYPES))

    @field_validator("types")
    @classmethod
    def _known_types(cls, value: list[str]) -> list[str]:
        unknown = [t for t in value if t not in DEFAULT_ATTACHMENT_TYPES]
        if unknown:
            raise ValueError(f"unsupported attachment types {unknown}; choose from {DEFAULT_ATTACHMENT_TYPES}")
        return value


class PortalConfig(_Strict):
    """Sign-in, cases, knowledge base and surveys."""

    login_link_ttl_s: int = Field(default=900, ge=60, le=86_400)
    reset_link_ttl_s: int = Field(default=3600, ge=300, le=86_400)
    survey_link_ttl_days: int = Field(default=14, ge=1, le=365)
    sign_in_attempts: int = Field(default=10, ge=1)  # per email and address per window
    form_posts: int = Field(default=30, ge=1)  # cases, replies, votes, surveys per account per window
    rate_window_s: int = Field(default=900, ge=60)
    case_categories: list[CaseCategory] = Field(default_factory=lambda: [
        CaseCategory(code="order", label_en="An order", label_zh="订单"),
        CaseCategory(code="delivery", label_en="A delivery", label_zh="配送"),
        CaseCategory(code="billing", label_en="Billing", label_zh="账单", queue="billing"),
        CaseCategory(code="other", label_en="Something else", label_zh="其他"),
    ])
    attachments: AttachmentLimits = AttachmentLimits()
    max_text_chars: int = Field(default=10_000, ge=100)
    case_reply_business_hours: int = Field(default=16, ge=1)  # the reply we promise on a new case


class ChatTopic(_Strict):
    code: str = Field(pattern=r"^[a-z0-9_]+$")
    label_en: str
    label_zh: str
    queue: str


class ChatConfig(_Strict):
    """The chat widget: who may embed it, topics (queues), waits and limits."""

    # Origins (scheme://host[:port]) of other sites allowed to embed the widget; the desk itself always is.
    allowed_origins: list[str] = Field(default_factory=list)
    topics: list[ChatTopic] = Field(default_factory=lambda: [
        ChatTopic(code="general", label_en="General question", label_zh="一般问题", queue="general"),
        ChatTopic(code="billing", label_en="Billing", label_zh="账单", queue="billing"),
    ])
    max_wait_s: int = Field(default=300, ge=10)  # no agent by then: the conversation becomes an email case
    leave_grace_s: int = Field(default=120, ge=5)  # a dropped socket not back by then counts as leaving
    max_message_chars: int = Field(default=2000, ge=1, le=20_000)
    messages_per_minute: int = Field(default=40, ge=1)
    starts_per_address: int = Field(default=10, ge=1)  # new chats per IP address in 10 minutes
    attachments: AttachmentLimits = AttachmentLimits(max_files=1)
    position_refresh_s: int = Field(default=10, ge=2)

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/") \
                    or parts.query or parts.fragment:
                raise ValueError(f"{origin!r} is not an origin like https://shop.example.com")
        return [o.rstrip("/") for o in value]


def check_portal_queues(config) -> None:
    """Cross-section check: every case category and chat topic names a queue that exists (and takes chat)."""
    queues = {q.name: q for q in config.routing.queues}
    for cat in config.portal.case_categories:
        if cat.queue not in queues:
            raise ValueError(f"portal.case_categories.{cat.code}.queue: unknown queue {cat.queue!r}")
    for topic in config.chat.topics:
        queue = queues.get(topic.queue)
        if queue is None:
            raise ValueError(f"chat.topics.{topic.code}.queue: unknown queue {topic.queue!r}")
        if "chat" not in queue.channels:
            raise ValueError(f"chat.topics.{topic.code}.queue: queue {topic.queue!r} does not take chat")
