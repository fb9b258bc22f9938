"""The ``email:`` section of config.yaml: mailboxes, routing rules, SMTP, limits, acknowledgements.

Secrets (IMAP/SMTP passwords, the inbound shared secret) are named by environment variable
(``*_env``) so config.yaml can be committed; a literal value is accepted for development and tests.
"""
from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Secret(_Strict):
    """A secret given literally (development, tests) or by the name of an environment variable."""

    value: str | None = None
    env: str | None = None

    def resolve(self, environ: dict[str, str] | None = None) -> str | None:
        environ = os.environ if environ is None else environ
        if self.env and environ.get(self.env):
            return environ[self.env]
        return self.value


class ImapSettings(_Strict):
    host: str
    port: int = Field(default=993, ge=1, le=65535)
    security: Literal["ssl", "starttls", "none"] = "ssl"
    username: str
    password: Secret = Secret()
    folder: str = "INBOX"
    # The keyword set on every message the desk has stored. Progress is kept by UID, never by this flag.
    flag: str = Field(default="$DeskStored", pattern=r"^[$A-Za-z0-9_]+$")
    timeout_s: float = Field(default=30, gt=0)
    batch_size: int = Field(default=50, ge=1, le=1000)


class Mailbox(_Strict):
    name: str = Field(pattern=r"^[a-z0-9_]+$")
    address: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    display_name: str = ""
    queue: str = "general"
    language: Literal["en", "zh"] = "en"  # for senders the CRM does not know
    aliases: list[str] = Field(default_factory=list)  # other addresses delivered here (ours, never acknowledged)
    imap: ImapSettings | None = None  # None: mail arrives only through the HTTP endpoint or the CLI

    @field_validator("address")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()


class RoutingRule(_Strict):
    """First matching rule wins; unset conditions match anything."""

    mailbox: str | None = None
    from_domain: str | None = None
    subject_contains: list[str] = Field(default_factory=list)  # any of these words, case-insensitive
    queue: str


class SmtpSettings(_Strict):
    transport: Literal["smtp", "recording"] = "smtp"  # recording: kept in memory (demo, benchmarks)
    host: str = "localhost"
    port: int = Field(default=25, ge=1, le=65535)
    security: Literal["ssl", "starttls", "none"] = "starttls"
    username: str | None = None
    password: Secret = Secret()
    timeout_s: float = Field(default=30, gt=0)


class OutboundSettings(_Strict):
    undo_window_s: int = Field(default=10, ge=0, le=600)
    max_attempts: int = Field(default=5, ge=1, le=20)
    backoff_s: list[int] = Field(default_factory=lambda: [30, 120, 600, 1800])  # last value repeats
    reply_domain: str | None = None  # reply+<token>@reply_domain; None: the mailbox's domain
    message_id_domain: str | None = None  # None: the mailbox's domain

    @field_validator("backoff_s")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if not value or any(v <= 0 for v in value):
            raise ValueError("backoff_s must list positive seconds")
        return value


class AutoReplySettings(_Strict):
    enabled: bool = True
    max_per_sender: int = Field(default=10, ge=1)
    window_s: int = Field(default=3 * 3600, gt=0)
    default_reply_within_h: float = Field(default=24, gt=0)  # business hours
    reply_within_h: dict[str, float] = Field(default_factory=dict)  # per queue


class Limits(_Strict):
    max_message_bytes: int = Field(default=25 * 1024 * 1024, gt=0)  # above: quarantined (still stored)
    max_stored_bytes: int = Field(default=64 * 1024 * 1024, gt=0)  # above: headers only, left on the server
    max_attachment_bytes: int = Field(default=15 * 1024 * 1024, gt=0)
    max_attachments: int = Field(default=50, ge=0)
    max_parts: int = Field(default=500, ge=1)
    blocked_extensions: list[str] = Field(default_factory=lambda: [
        "exe", "bat", "cmd", "com", "scr", "pif", "vbs", "js", "jse", "msi", "ps1", "jar", "lnk"])


class PollSettings(_Strict):
    interval_s: int = Field(default=60, ge=5)
    alert_after_failures: int = Field(default=3, ge=1)
    email_admins: bool = True


class EmailConfig(_Strict):
    mailboxes: list[Mailbox] = Field(default_factory=list)
    rules: list[RoutingRule] = Field(default_factory=list)
    smtp: SmtpSettings = SmtpSettings(transport="recording")
    outbound: OutboundSettings = OutboundSettings()
    autoreply: AutoReplySettings = AutoReplySettings()
    limits: Limits = Limits()
    poll: PollSettings = PollSettings()
    inbound_secret: Secret = Secret()  # shared secret for POST /api/email/inbound/<mailbox>

    @model_validator(mode="after")
    def _names_unique(self) -> EmailConfig:
        names = [m.name for m in self.mailboxes]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"mailbox names must be unique; repeated: {', '.join(dupes)}")
        for index, rule in enumerate(self.rules):
            if rule.mailbox is not None and rule.mailbox not in names:
                raise ValueError(f"rules.{index}.mailbox: unknown mailbox {rule.mailbox!r}")
        return self

    def mailbox(self, name: str) -> Mailbox:
        for mailbox in self.mailboxes:
            if mailbox.name == name:
                return mailbox
        raise KeyError(name)

    def own_addresses(self) -> frozenset[str]:
        """Every address that is us: mail from these is never acknowledged (loop protection)."""
        found = {m.address for m in self.mailboxes}
        found.update(a.lower() for m in self.mailboxes for a in m.aliases)
        return frozenset(found)


def check_email_against_desk(config) -> None:
    """Cross-section check: every queue the email section names exists in routing and takes email."""
    queues = {q.name: q for q in config.routing.queues}
    named = [(f"email.mailboxes.{m.name}.queue", m.queue) for m in config.email.mailboxes]
    named += [(f"email.rules.{i}.queue", r.queue) for i, r in enumerate(config.email.rules)]
    named += [(f"email.autoreply.reply_within_h.{q}", q) for q in config.email.autoreply.reply_within_h]
    for key, name in named:
        if name not in queues:
            raise ValueError(f"{key}: unknown queue {name!r}")
        if "email" not in queues[name].channels:
            raise ValueError(f"{key}: queue {name!r} does not take the email channel")
