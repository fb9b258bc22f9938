"""Polling a mailbox over IMAP (imapclient).

Progress is kept by UIDVALIDITY and UID in ``MailboxPollState`` -- never by the read flag, which
people and other clients change. Messages are ingested a batch at a time (``batch.ingest_batches``: a
commit stores a batch -- while the batch before is processed -- one processes it) and stored
(committed) before the UID moves past them, so a crash re-reads at most the two batches in hand (the
unique key makes those duplicates; any left pending are processed by the sweep). Stored
messages get a keyword flag on the server; nothing is deleted. When UIDVALIDITY changes the folder
is read again from the start and duplicates are recognised by their key.

Health: each failed poll counts; after ``alert_after_failures`` in a row admins are alerted once,
and once more when the mailbox recovers.
"""
from __future__ import annotations

import logging
import ssl
from collections import deque
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime

from imapclient import IMAPClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.channels.email.alerts import notify_admins
from app.channels.email.config import Mailbox
from app.channels.email.batch import RawMessage, ingest_batches
from app.channels.email.ingest import IngestResult
from app.channels.email.models import MailboxPollState
from app.db import utcnow

log = logging.getLogger(__name__)


@dataclass
class PollReport:
    mailbox: str
    fetched: int = 0
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    oversized: int = 0
    uidvalidity_reset: bool = False
    error: str | None = None
    alert: str | None = None  # "failing" | "recovered" when an alert was raised
    uids: list[int] = field(default_factory=list)


def poll_state(session: Session, mailbox: str) -> MailboxPollState:
    state = session.scalar(select(MailboxPollState).where(MailboxPollState.mailbox == mailbox))
    if state is None:
        state = MailboxPollState(mailbox=mailbox, last_uid=0, consecutive_failures=0, alerting=False)
        session.add(state)
        session.flush()
    return state


def connect(mailbox: Mailbox) -> IMAPClient:
    imap = mailbox.imap
    if imap.security == "ssl":
        client = IMAPClient(imap.host, port=imap.port, ssl=True, ssl_context=ssl.create_default_context(),
                            timeout=imap.timeout_s)
    else:
        client = IMAPClient(imap.host, port=imap.port, ssl=False, timeout=imap.timeout_s)
        if imap.security == "starttls":
            client.starttls(ssl.create_default_context())
    client.login(imap.username, imap.password.resolve() or "")
    return client


def poll_mailbox(session: Session, desk_config, mailbox_name: str, *, secret: str,
                 now: datetime | None = None, client_factory=connect) -> PollReport:
    """Fetch and ingest every message after the last stored UID. Never raises for mail or server
    trouble: failures are counted on the mailbox's state (and alerted); commits as it goes."""
    mailbox = desk_config.email.mailbox(mailbox_name)
    report = PollReport(mailbox_name)
    state = poll_state(session, mailbox_name)
    state.last_attempt_at = now or utcnow()
    session.commit()
    try:
        client = client_factory(mailbox)
        try:
            _poll(session, desk_config, mailbox, client, state, report, secret)
        finally:
            _logout(client)
    except Exception as exc:  # network, TLS, auth, protocol: count it, alert if it persists, try again next time
        session.rollback()
        report.error = f"{type(exc).__name__}: {exc}"[:1000]
        log.warning("IMAP poll of %s failed: %s", mailbox_name, report.error)
        _record_failure(session, desk_config, mailbox_name, report)
        return report
    _record_success(session, desk_config, mailbox_name, report)
    return report


def _logout(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:  # noqa: S110 - the poll's work is committed; a failed goodbye changes nothing
        log.debug("IMAP logout failed", exc_info=True)


def _poll(session: Session, desk_config, mailbox: Mailbox, client: IMAPClient, state: MailboxPollState,
          report: PollReport, secret: str) -> None:
    imap = mailbox.imap
    selected = client.select_folder(imap.folder)
    uidvalidity = int(selected[b"UIDVALIDITY"])
    if state.uidvalidity != uidvalidity:
        if state.uidvalidity is not None:
            report.uidvalidity_reset = True
            log.warning("mailbox %s: UIDVALIDITY changed %s -> %s; reading the folder again",
                        mailbox.name, state.uidvalidity, uidvalidity)
        state.uidvalidity, state.last_uid = uidvalidity, 0
        session.commit()
    # "N:*" always includes the highest UID, even when it is below N: filter.
    uids = sorted(uid for uid in client.search(["UID", f"{state.last_uid + 1}:*"]) if uid > state.last_uid)
    handed: deque[list[int]] = deque()  # UIDs of the batches handed to ingest, not yet answered
    batches = _fetched(client, mailbox, uids, uidvalidity, desk_config.email.limits, report, handed)
    # closing: a failure here stops the helper storing ahead at once, not when the traceback is freed
    with closing(ingest_batches(session, desk_config, mailbox.name, batches, source="imap", secret=secret)) as done:
        for results in done:
            batch = handed.popleft()
            _count(report, batch, results)
            client.add_flags(batch, [mailbox.imap.flag.encode()], silent=True)
            state.last_uid = batch[-1]
            session.commit()


def _fetched(client: IMAPClient, mailbox: Mailbox, uids: list[int], uidvalidity: int, limits, report: PollReport,
             handed: deque[list[int]]) -> Iterator[list[RawMessage]]:
    """The messages of ``uids``, a batch at a time (``imap.batch_size``); each batch's UIDs are appended to
    ``handed`` as it is given out. A message too big to store is fetched as its header only."""
    for start in range(0, len(uids), mailbox.imap.batch_size):
        batch = uids[start:start + mailbox.imap.batch_size]
        sizes = client.fetch(batch, ["RFC822.SIZE"])
        small = [u for u in batch if int(sizes.get(u, {}).get(b"RFC822.SIZE", 0)) <= limits.max_stored_bytes]
        bodies = client.fetch(small, ["BODY.PEEK[]"]) if small else {}
        messages = []
        for uid in batch:
            source_ref = f"{uidvalidity}:{uid}"
            if uid in bodies:
                messages.append(RawMessage(bodies[uid][b"BODY[]"], source_ref))
            else:  # too big to hold: keep the headers; the whole message stays on the server
                report.oversized += 1
                raw = client.fetch([uid], ["BODY.PEEK[HEADER]"])[uid][b"BODY[HEADER]"]
                messages.append(RawMessage(raw, source_ref,
                                           headers_only_size=int(sizes.get(uid, {}).get(b"RFC822.SIZE", 0))))
        handed.append(batch)
        yield messages


def _count(report: PollReport, uids: list[int], results: list[IngestResult]) -> None:
    report.fetched += len(uids)
    report.uids.extend(uids)
    for result in results:
        if result.status == "duplicate":
            report.duplicates += 1
        elif result.status == "quarantined":
            report.quarantined += 1
        else:
            report.stored += 1


def _record_failure(session: Session, desk_config, mailbox_name: str, report: PollReport) -> None:
    state = poll_state(session, mailbox_name)
    state.consecutive_failures += 1
    state.last_error = report.error
    if state.consecutive_failures >= desk_config.email.poll.alert_after_failures and not state.alerting:
        state.alerting = True
        report.alert = "failing"
        notify_admins(session, desk_config, mailbox_name, "failing", report.error or "",
                      failures=state.consecutive_failures)
    session.commit()


def _record_success(session: Session, desk_config, mailbox_name: str, report: PollReport) -> None:
    state = poll_state(session, mailbox_name)
    if state.alerting:
        state.alerting = False
        report.alert = "recovered"
        notify_admins(session, desk_config, mailbox_name, "recovered", "", failures=state.consecutive_failures)
    state.consecutive_failures, state.last_error, state.last_success_at = 0, None, utcnow()
    session.commit()
