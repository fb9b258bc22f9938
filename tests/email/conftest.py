"""Fixtures for the email channel: a known email configuration, a mail builder, an ingest helper."""
from __future__ import annotations

from email.message import EmailMessage as MimeMessage
from datetime import datetime, timedelta
from email.utils import format_datetime, make_msgid
from typing import NamedTuple

import pytest

from app.channels.email.config import EmailConfig
from app.channels.email.mailer import RecordingMailer
from app.db import utcnow

SECRET = "test-secret-key"


def email_config(**overrides) -> EmailConfig:
    base = {
        "mailboxes": [
            {"name": "support", "address": "support@desk.test", "display_name": "Test Desk", "queue": "general",
             "aliases": ["help@desk.test"]},
            {"name": "billing", "address": "billing@desk.test", "queue": "billing", "language": "zh"},
        ],
        "rules": [{"subject_contains": ["invoice", "发票"], "queue": "billing"}],
        "smtp": {"transport": "recording"},
        "outbound": {"undo_window_s": 10, "max_attempts": 3, "backoff_s": [5, 10]},
        "autoreply": {"max_per_sender": 3, "window_s": 3600, "reply_within_h": {"billing": 8}},
        "limits": {"max_message_bytes": 200_000, "max_stored_bytes": 400_000, "max_attachment_bytes": 50_000,
                   "max_attachments": 5, "max_parts": 40},
        "poll": {"interval_s": 60, "alert_after_failures": 2},
        "inbound_secret": {"value": "shared-secret"},
    }
    base.update(overrides)
    return EmailConfig.model_validate(base)


class DelayedJob(NamedTuple):
    func: object
    args: tuple
    kwargs: dict
    delay: timedelta
    due_s: float  # on the virtual clock


class CapturingJobs:
    """Runs immediate jobs inline (like the tests' default) but keeps delayed ones, so no timer thread
    fires into a later test. The email code reads a virtual clock (real time + ``offset_s``) which
    ``run_delayed`` moves forward to each job's due time, as if the delay had passed."""

    def __init__(self, app):
        self.app = app
        self.delayed: list[DelayedJob] = []
        self.offset_s = 0.0

    def now(self) -> datetime:
        return utcnow() + timedelta(seconds=self.offset_s)

    def advance(self, seconds: float) -> None:
        self.offset_s += seconds

    def enqueue(self, func, *args, queue="default", delay=None, job_id=None, **kwargs):
        if delay is not None:
            self.delayed.append(DelayedJob(func, args, kwargs, delay, self.offset_s + delay.total_seconds()))
            return job_id
        with self.app.app_context():
            func(*args, **kwargs)
        return job_id

    def run_delayed(self, *, after_s: float | None = None) -> int:
        """Run the delayed jobs queued so far, once each, at their due time (or ``after_s`` from now)."""
        pending, self.delayed = self.delayed, []
        start = self.offset_s
        for job in pending:
            self.offset_s = max(self.offset_s, start + after_s if after_s is not None else job.due_s)
            with self.app.app_context():
                job.func(*job.args, **job.kwargs)
        return len(pending)


@pytest.fixture()
def desk(app):
    """The app's DeskConfig with the test email section; restored afterwards."""
    original, original_jobs = app.extensions["desk.config"], app.extensions["desk.jobs"]
    app.extensions["desk.config"] = original.model_copy(update={"email": email_config()})
    app.extensions["desk.email.outbox"] = RecordingMailer()
    jobs = app.extensions["desk.jobs"] = CapturingJobs(app)
    from unittest import mock

    from app.channels.email import outbound, templates

    templates._cache.clear()  # tables are emptied between tests; the per-process cache must be too
    with mock.patch.object(outbound, "utcnow", jobs.now):
        yield app.extensions["desk.config"]
    app.extensions["desk.config"], app.extensions["desk.jobs"] = original, original_jobs


@pytest.fixture()
def jobs(desk, app) -> CapturingJobs:
    return app.extensions["desk.jobs"]


@pytest.fixture()
def outbox(desk, app) -> RecordingMailer:
    return app.extensions["desk.email.outbox"]


def set_email_config(app, **overrides):
    """Replace the email section for this test (the ``desk`` fixture restores the original)."""
    current = app.extensions["desk.config"]
    app.extensions["desk.config"] = current.model_copy(update={"email": email_config(**overrides)})
    return app.extensions["desk.config"]


def build_mail(*, sender: str = "alice@customer.test", to: str = "support@desk.test", subject: str = "Help please",
               body: str = "My order has not arrived.", message_id: str | None = "auto", html: str | None = None,
               headers: dict[str, str] | None = None, attachments: list[tuple[str, str, bytes]] | None = None,
               in_reply_to: str | None = None, references: list[str] | None = None, cc: str | None = None,
               charset: str = "utf-8") -> bytes:
    msg = MimeMessage()
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    msg["Date"] = format_datetime(utcnow())
    if message_id == "auto":
        msg["Message-ID"] = make_msgid(domain="customer.test")
    elif message_id:
        msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
    if references:
        msg["References"] = " ".join(f"<{r}>" for r in references)
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body, charset=charset)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    for filename, ctype, data in attachments or []:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes()


@pytest.fixture()
def ingest(desk, db_session):
    from app.channels.email.ingest import ingest_raw

    def _ingest(raw: bytes, mailbox: str = "support", source: str = "cli"):
        from flask import current_app

        return ingest_raw(db_session, current_app.extensions["desk.config"], mailbox, raw, source=source,
                          secret=SECRET)

    return _ingest


@pytest.fixture()
def second_chunk_fails(monkeypatch) -> list[int]:
    """The second chunk of raw messages stored fails as an outage would; the rows of each chunk tried,
    counted in the list returned."""
    from sqlalchemy.exc import OperationalError

    from app.channels.email import rawstore

    real, calls = rawstore.insert_pipelined, []

    def failing_second(conn, rows, **kwargs):
        calls.append(len(rows))
        if len(calls) == 2:
            raise OperationalError("INSERT", {}, Exception("server closed the connection"))
        return real(conn, rows, **kwargs)

    monkeypatch.setattr(rawstore, "insert_pipelined", failing_second)
    return calls
