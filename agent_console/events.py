"""Typed payloads of the ``/agent`` Socket.IO namespace, in both directions.

Every event the server sends is built through one of the ``Out*`` models (``extra="forbid"``), so a
typo in a field name fails in tests rather than silently reaching the browser; every command the browser
sends is parsed with one of the ``In*`` models, so hostile or malformed input is refused with a clear
error before any service is called.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

NOTE_MAX = 4000
EMAIL_MAX = 100_000  # as the email channel's own reply endpoint


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------ server -> browser
class OutOffer(_Strict):
    """An offer waiting for this agent's answer, with the screen-pop shown before acceptance."""

    offer_id: int
    interaction_id: int
    agent_id: int
    expires_at: str
    priority: int
    priority_reasons: list[dict[str, Any]]
    channel: str
    queue: str | None
    screenpop: dict[str, Any]


class OutOfferGone(_Strict):
    """The offer is no longer answerable: rescinded (caller hung up), expired, or taken in another tab."""

    offer_id: int
    interaction_id: int
    reason: Literal["rescinded", "expired", "accepted", "rejected"]


class OutPresence(_Strict):
    agent_id: int
    presence: Literal["offline", "available", "break", "wrap_up", "busy"]
    reason: str | None = None
    since: str | None = None
    wrap_up_until: str | None = None


class OutWork(_Strict):
    """One open piece of work (a tab in the workspace): connected or in wrap-up."""

    interaction_id: int
    channel: str
    state: str
    queue: str | None
    customer_id: int | None
    customer_name: str | None
    subject: str | None
    notes: str | None
    disposition: str | None
    connected_at: str | None
    wrap_up_started_at: str | None
    wrap_up_s: int
    attributes: dict[str, Any]
    screenpop: dict[str, Any] | None = None


class OutWorkClosed(_Strict):
    interaction_id: int
    reason: Literal["closed", "transferred"]


class OutEmailMessage(_Strict):
    """A customer's email landed on a case this agent holds (``app.channels.email.live``)."""

    interaction_id: int
    agent_id: int
    message: dict[str, Any]


class OutStats(_Strict):
    handled: int
    by_channel: dict[str, int]
    talk_s: int
    wrap_s: int
    average_handle_s: int | None
    rejected: int
    day_started_at: str


class OutComplaintAlert(_Strict):
    """A complaint's SLA clock passed an alert point (``alert.complaint_sla``), for its owner and the
    supervisors. ``point`` is "50%", "80%" ... or "breach"; ``url`` opens the complaint when the
    complaints pages are installed."""

    notice_id: int | None
    complaint_id: int
    reference: str
    owner_id: int | None
    level: str | None
    clock: str
    point: str
    due: str | None
    subject: str | None
    url: str | None


class OutSnapshot(_Strict):
    """The whole console state, sent on (re)connect and on request: the page rebuilds itself from it."""

    agent_id: int
    presence: OutPresence
    offers: list[OutOffer]
    work: list[OutWork]
    stats: OutStats
    capacity: int
    load: int
    alerts: list[OutComplaintAlert] = []


# ------------------------------------------------------------------ browser -> server
class InPresence(_Strict):
    presence: Literal["available", "break", "offline"]
    reason: str | None = Field(default=None, max_length=64)


class InOffer(_Strict):
    offer_id: int = Field(gt=0)


class InInteraction(_Strict):
    interaction_id: int = Field(gt=0)


class InNote(_Strict):
    interaction_id: int = Field(gt=0)
    text: str = Field(max_length=NOTE_MAX)


class InWrapUp(_Strict):
    interaction_id: int = Field(gt=0)
    disposition: str = Field(min_length=1, max_length=64)
    notes: str = Field(default="", max_length=NOTE_MAX)


class InTransfer(_Strict):
    interaction_id: int = Field(gt=0)
    queue: str | None = Field(default=None, max_length=64)
    agent_id: int | None = Field(default=None, gt=0)
    note: str = Field(default="", max_length=NOTE_MAX)

    @model_validator(mode="after")
    def _one_target(self) -> InTransfer:
        if (self.agent_id is None) == (self.queue is None):
            raise ValueError("give exactly one of queue or agent_id")
        return self


class InFollowUp(_Strict):
    interaction_id: int = Field(gt=0)
    due_at: datetime
    note: str = Field(min_length=1, max_length=NOTE_MAX)

    @field_validator("due_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("due_at needs a time zone")
        return value


class InLinkCustomer(_Strict):
    interaction_id: int = Field(gt=0)
    customer_id: int = Field(gt=0)


class InSearch(_Strict):
    q: str = Field(min_length=2, max_length=100)


class InChatSend(_Strict):
    """``seen_upto``: the newest customer message the agent had seen when writing (0: none yet); the
    message is held when the customer wrote after it (see ``workspace.send_chat``)."""

    interaction_id: int = Field(gt=0)
    client_id: str = Field(min_length=1, max_length=64)
    text: str = Field(min_length=1, max_length=NOTE_MAX)
    seen_upto: int = Field(ge=0)


class InChatTyping(_Strict):
    interaction_id: int = Field(gt=0)
    on: bool


class InChatRead(_Strict):
    interaction_id: int = Field(gt=0)
    upto: int = Field(ge=0)


class InEmailPreview(_Strict):
    interaction_id: int = Field(gt=0)
    body: str = Field(default="", max_length=EMAIL_MAX)


class InEmailSend(_Strict):
    interaction_id: int = Field(gt=0)
    body: str = Field(min_length=1, max_length=EMAIL_MAX)
    cc: list[str] = Field(default_factory=list, max_length=10)
    seen_upto: int | None = Field(default=None, ge=0)
    confirm: bool = False

    @field_validator("body")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("write a reply first")
        return value

    @field_validator("cc")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        cleaned = [c.strip().lower() for c in value if c.strip()]
        if any("@" not in c or len(c) > 254 or any(ch.isspace() for ch in c) for c in cleaned):
            raise ValueError("not an email address")
        return cleaned


class InReplyTemplate(_Strict):
    interaction_id: int = Field(gt=0)
    key: str = Field(min_length=1, max_length=64)


class InEmailCancel(_Strict):
    interaction_id: int = Field(gt=0)
    message_id: int = Field(gt=0)


def parse(model: type[BaseModel], data: Any) -> BaseModel:
    """Validate a browser payload; raises BadPayload listing what was wrong (no input echoed back)."""
    try:
        return model.model_validate(data if isinstance(data, dict) else {})
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc']) or 'payload'}: {e['msg']}" for e in exc.errors()]
        raise BadPayload(problems) from None


class BadPayload(ValueError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))
