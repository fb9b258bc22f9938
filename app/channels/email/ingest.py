"""The one ingest path behind all three doors (IMAP poller, raw-MIME endpoint, ``flask mail ingest``).

``ingest_raw`` stores the raw bytes and commits *before* parsing, so nothing received is ever lost;
``process_inbound`` then parses, threads, stores and routes the message in one transaction. Anything
that cannot be understood (or is poisonous: huge, thousands of parts or attachments, a bug in our own
code) is put in the quarantine with a reason -- still stored, visible to admins, retry-able,
release-able -- and the next message flows on.
"""
from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, undefer

from app.channels.email import live, threads
from app.channels.email.autoreply import (
    AckDecision,
    automatic_reasons,
    decide_acknowledgement,
)
from app.channels.email.bounces import BounceReport, analyse_bounce
from app.channels.email.config import Mailbox
from app.channels.email.models import (
    EmailAttachment,
    EmailMessage,
    EmailThread,
    InboundEmail,
    InboundStatus,
    UndeliverableAddress,
)
from app.channels.email.outbound import (
    mark_undeliverable,
    reply_domain,
    schedule_acknowledgement,
)
from app.channels.email.pending import BatchWrites
from app.channels.email.parse import (
    ParsedAttachment,
    ParsedEmail,
    UnparseableEmail,
    message_key,
    parse_email,
)
from app.channels.email.routing import (
    CustomerInfo,
    choose_queue,
    customer_addresses,
    enqueue,
    identify_customer,
)
from app.complaints.email_rules import raise_from_new_email
from app.db import utcnow
from app.interactions.models import Interaction
from app.interactions.service import create_interaction, record_fact
from app.interactions.states import State

log = logging.getLogger(__name__)
ACTOR = "email"
_CJK = re.compile(r"[\u4e00-\u9fff]")


class Quarantine(Exception):
    def __init__(self, reason: str, detail: str = ""):
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}")


@dataclass(frozen=True)
class IngestResult:
    status: str  # stored | duplicate | quarantined
    inbound_id: int | None
    interaction_id: int | None = None
    reason: str | None = None
    new_case: bool = False
    acknowledged: bool = False


# --- storing ---------------------------------------------------------------------------------------

def _stored_bytes(raw: bytes, max_stored: int) -> tuple[bytes, bool]:
    if len(raw) <= max_stored:
        return raw, False
    end = raw.find(b"\r\n\r\n")
    end = raw.find(b"\n\n") if end < 0 else end
    head = raw[:end if 0 <= end < max_stored else min(len(raw), 64 * 1024)]
    return head, True


@dataclass(frozen=True)
class StoredRaw:
    """What processing needs of a stored message (kept in memory after storing, to skip a reload)."""

    id: int
    mailbox: str
    raw: bytes
    raw_size: int
    headers_only: bool
    attempts: int
    status: str


def _insert_raw(session: Session, values: dict) -> int | None:
    """INSERT the raw row unless (mailbox, message_key) exists; its id, or None for a duplicate."""
    dialect = session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        module = __import__(f"sqlalchemy.dialects.{dialect}", fromlist=["insert"])
        statement = module.insert(InboundEmail).values(**values).on_conflict_do_nothing(
            index_elements=["mailbox", "message_key"]).returning(InboundEmail.id)
        return session.execute(statement).scalar()
    try:  # pragma: no cover - other databases: the unique constraint still decides
        with session.begin_nested():
            row = InboundEmail(**values)
            session.add(row)
        return row.id
    except IntegrityError:  # pragma: no cover
        return None


def ingest_raw(session: Session, desk_config, mailbox_name: str, raw: bytes, *, source: str, secret: str,
               source_ref: str | None = None, headers_only_size: int | None = None) -> IngestResult:
    """Store ``raw`` (committed), then process it. A message already held for this mailbox is
    reported as a duplicate and stored once, even when two pollers race (the unique key decides).
    ``headers_only_size``: ``raw`` is only the header of a message of that size, too big to fetch
    (it is quarantined; the message stays on the mail server).
    Raises KeyError for an unknown mailbox; database outages propagate (the caller retries)."""
    config = desk_config.email
    config.mailbox(mailbox_name)
    key, _ = message_key(raw)
    stored, headers_only = _stored_bytes(raw, config.limits.max_stored_bytes)
    headers_only = headers_only or headers_only_size is not None
    size = headers_only_size or len(raw)
    inbound_id = _insert_raw(session, {
        "mailbox": mailbox_name, "message_key": key, "source": source, "source_ref": source_ref, "raw": stored,
        "raw_size": size, "raw_sha256": hashlib.sha256(raw).hexdigest(), "headers_only": headers_only,
        "status": InboundStatus.PENDING, "attempts": 0, "received_at": utcnow()})
    session.commit()
    if inbound_id is None:
        winner = session.scalar(select(InboundEmail.id).where(InboundEmail.mailbox == mailbox_name,
                                                               InboundEmail.message_key == key))
        return IngestResult("duplicate", winner)
    snapshot = StoredRaw(inbound_id, mailbox_name, stored, size, headers_only, 0, InboundStatus.PENDING)
    return process_inbound(session, desk_config, inbound_id, secret=secret, stored=snapshot)


# --- processing ------------------------------------------------------------------------------------

def _load(session: Session, inbound_id: int) -> StoredRaw:
    row = session.get(InboundEmail, inbound_id, options=[undefer(InboundEmail.raw)])
    if row is None:
        raise LookupError(f"no inbound email {inbound_id}")
    return StoredRaw(row.id, row.mailbox, row.raw, row.raw_size, row.headers_only, row.attempts, row.status)


def process_inbound(session: Session, desk_config, inbound_id: int, *, secret: str, lenient: bool = False,
                    staff_id: int | None = None, now: datetime | None = None,
                    stored: StoredRaw | None = None) -> IngestResult:
    """Parse, thread, store and route a stored message; quarantine it when that is impossible.
    ``lenient`` (an admin's release) lifts the limits and accepts what cannot be parsed as an
    unreadable message on a case. Commits. Database outages propagate, leaving the message pending."""
    now = now or utcnow()
    row = stored or _load(session, inbound_id)
    if row.status == InboundStatus.PROCESSED:
        return IngestResult("stored", row.id, _interaction_of(session, row.id))
    attempts = row.attempts + 1
    try:
        result = _process(session, desk_config, row, secret=secret, lenient=lenient, now=now)
        session.execute(update(InboundEmail).where(InboundEmail.id == row.id).values(
            status=InboundStatus.PROCESSED, processed_at=now, attempts=attempts, quarantine_reason=None, error=None,
            released_by=staff_id if lenient else None))
        session.commit()
        return result
    except OperationalError:
        session.rollback()
        raise
    except Quarantine as exc:
        return _quarantine(session, inbound_id, attempts, exc.reason, exc.detail)
    except Exception as exc:  # a bug or a poison we did not foresee: quarantine it, keep the intake flowing
        log.exception("email %s could not be processed; quarantined", inbound_id)
        return _quarantine(session, inbound_id, attempts, "processing_error", f"{type(exc).__name__}: {exc}")


def _quarantine(session: Session, inbound_id: int, attempts: int, reason: str, detail: str) -> IngestResult:
    session.rollback()
    session.execute(update(InboundEmail).where(InboundEmail.id == inbound_id).values(
        status=InboundStatus.QUARANTINED, quarantine_reason=reason, error=detail[:4000], attempts=attempts))
    session.commit()
    log.warning("email %s quarantined: %s %s", inbound_id, reason, detail[:200])
    return IngestResult("quarantined", inbound_id, reason=reason)


def _interaction_of(session: Session, inbound_id: int) -> int | None:
    return session.scalar(select(EmailMessage.interaction_id).where(EmailMessage.inbound_id == inbound_id))


def _parse(row: StoredRaw, limits, lenient: bool) -> ParsedEmail:
    if row.headers_only and not lenient:
        raise Quarantine("too_large", f"{row.raw_size} bytes; only the headers were stored")
    if row.raw_size > limits.max_message_bytes and not lenient:
        raise Quarantine("too_large", f"{row.raw_size} bytes (limit {limits.max_message_bytes})")
    try:
        parsed = parse_email(row.raw, max_parts=limits.max_parts if not lenient else 1_000_000)
    except UnparseableEmail as exc:
        if not lenient:
            raise Quarantine(exc.reason, exc.detail) from exc
        parsed = _unreadable(row.raw)
    if len(parsed.attachments) > limits.max_attachments and not lenient:
        raise Quarantine("too_many_attachments", f"{len(parsed.attachments)} (limit {limits.max_attachments})")
    return parsed


def _unreadable(raw: bytes) -> ParsedEmail:
    """What an admin's release of an unparseable message shows: the raw text, with the raw attached."""
    from app.channels.email.charsets import decode_bytes

    _key, message_id = message_key(raw)
    return ParsedEmail(message_id=message_id, in_reply_to=[], references=[], from_address="", from_name="",
                       to=[], cc=[], reply_to=None, delivered_to=[], subject="(unreadable message)", date=None,
                       text=decode_bytes(raw[:200_000])[0], html=None,
                       attachments=[ParsedAttachment("original.eml", "message/rfc822", len(raw), "", source=raw)],
                       headers={},
                       return_path=None, content_type="application/octet-stream", report_type=None,
                       delivery_status=None)


def _process(session: Session, desk_config, row: StoredRaw, *, secret: str, lenient: bool,
             now: datetime, parsed: ParsedEmail | None = None, known: Mapping | None = None,
             batch: BatchWrites | None = None) -> IngestResult:
    """``parsed``: the message already parsed by the caller (``_parse``); ``known``: senders a batch
    identified together (``routing.identify_senders``); ``batch``: the batch's reserved ids and
    unwritten rows (``pending``): rows are then added without flushing."""
    if batch is None:
        return _process_message(session, desk_config, row, secret=secret, lenient=lenient, now=now, parsed=parsed)
    with batch.event_rows():
        return _process_message(session, desk_config, row, secret=secret, lenient=lenient, now=now, parsed=parsed,
                                known=known, batch=batch)


def _process_message(session: Session, desk_config, row: StoredRaw, *, secret: str, lenient: bool,
                     now: datetime, parsed: ParsedEmail | None = None, known: Mapping | None = None,
                     batch: BatchWrites | None = None) -> IngestResult:
    config = desk_config.email
    mailbox = config.mailbox(row.mailbox)
    parsed = parsed or _parse(row, config.limits, lenient)
    bounce = analyse_bounce(parsed)
    if bounce is not None:
        if batch is not None:
            batch.flush()  # a bounce's lookups and marks take the ordinary, autoflushing way
            batch.forget_history()  # it may mark an address undeliverable
        handled = _handle_bounce(session, config, row, parsed, bounce)
        if handled is not None:
            return handled
    if batch is not None:
        batch.before_thread_lookup(recipients=parsed.recipients, in_reply_to=parsed.in_reply_to,
                                   references=parsed.references, subject=parsed.subject)
    with _unless_flushed(session, batch):
        lookup = DbThreadLookup(session)
        match = threads.find_case(secret=secret, lookup=lookup, sender=parsed.from_address,
                                  recipients=parsed.recipients, in_reply_to=parsed.in_reply_to,
                                  references=parsed.references, subject=parsed.subject)
        interaction = None
        if match is not None:  # read by the lookup (or, for a lookup that did not read it, now)
            interaction = lookup.found.get(match.interaction_id) or session.get(Interaction, match.interaction_id)
    if interaction is not None and interaction.state != State.ABANDONED:
        return _continue_case(session, desk_config, row, parsed, interaction, match.via, bounce, now, batch=batch,
                              thread=lookup.threads.get(interaction.id),
                              addresses=lookup.addresses.get(interaction.id))
    if bounce is not None and bounce.definite and not lenient:
        raise Quarantine("unmatched_bounce", f"no message of ours among {bounce.original_message_ids[:5]}")
    return _new_case(session, desk_config, mailbox, row, parsed, bounce, secret=secret, now=now, known=known,
                     batch=batch)


def _unless_flushed(session: Session, batch: BatchWrites | None):
    """No autoflush inside a batch (it flushed already wherever a lookup could need its rows)."""
    return session.no_autoflush if batch is not None else nullcontext()


class DbThreadLookup:
    """``threads.ThreadLookup`` over the database. A case is read in one query with its thread and its
    customer's addresses (kept for the reply's CC check), so continuing it reads nothing again."""

    def __init__(self, session: Session):
        self.session = session
        self.found: dict[int, Interaction] = {}  # held, so loading the matched case again is no query
        self.threads: dict[int, EmailThread] = {}  # the cases' threads, read with them
        self.addresses: dict[int, set[str]] = {}  # the cases' customers' addresses, read with them

    def _read(self, statement, params: dict) -> int | None:
        """The case ``statement`` (of ``_case_read``) selects, with its thread and its customer's
        addresses (one row each)."""
        rows = self.session.execute(statement, params).all()
        if not rows:
            return None
        interaction, thread, _ = rows[0]
        self.found[interaction.id] = interaction
        if thread is not None:
            self.threads[interaction.id] = thread
        self.addresses[interaction.id] = {address for _, _, address in rows if address is not None}
        return interaction.id

    def case_for_message_id(self, message_id: str) -> int | None:
        return self._read(_case_read("message_id"), {"message_id": message_id})

    def case(self, interaction_id: int) -> threads.CaseRef | None:
        if interaction_id not in self.found and \
                self._read(_case_read("interaction_id"), {"interaction_id": interaction_id}) is None:
            return None
        thread = self.threads.get(interaction_id)
        if thread is None:
            return None
        addresses = self.addresses[interaction_id] | {thread.customer_address}
        return threads.CaseRef(interaction_id, frozenset(addresses), frozenset(thread.cc))


@cache
def _case_read(by: str):
    """A case, its thread and its customer's addresses (a row each), by the ``interaction_id`` or by the
    ``message_id`` of its first message holding it; built once."""
    from app.crm.models import CustomerEmail

    if by == "message_id":
        case = (select(EmailMessage.interaction_id).where(EmailMessage.message_id == bindparam("message_id"))
                .order_by(EmailMessage.id).limit(1).scalar_subquery())
    else:
        case = bindparam("interaction_id")
    return (select(Interaction, EmailThread, CustomerEmail.email)
            .outerjoin(EmailThread, EmailThread.interaction_id == Interaction.id)
            .outerjoin(CustomerEmail, CustomerEmail.customer_id == Interaction.customer_id)
            .where(Interaction.id == case))


def _store_message(session: Session, config, row: StoredRaw, parsed: ParsedEmail, thread: EmailThread,
                   interaction: Interaction, *, kind: str, automatic: bool, details: dict,
                   batch: BatchWrites | None = None) -> EmailMessage:
    """The inbound message's row and its attachments' rows: held by ``batch`` as values where it holds
    rows (returned as a ``PendingRow``), else added to the session as objects."""
    values = {
        "interaction_id": interaction.id, "inbound_id": row.id, "direction": "in", "kind": kind,
        "mailbox": row.mailbox, "message_id": (parsed.message_id or "")[:255] or None,
        "in_reply_to": parsed.in_reply_to[0][:255] if parsed.in_reply_to else None,
        "references": [r[:255] for r in parsed.references[-50:]], "from_address": parsed.from_address[:254],
        "from_name": parsed.from_name[:254], "to": parsed.to[:100], "cc": parsed.cc[:100],
        "subject": parsed.subject, "text_body": parsed.text, "html_body": parsed.html,
        "language": interaction.language, "is_automatic": automatic, "status": "received", "sent_at": parsed.date,
        "details": dict(details, reply_to=parsed.reply_to)}
    attachments = [_attachment_values(attachment, config.limits) for attachment in parsed.attachments]
    if batch is not None and batch.holds_rows:
        message = batch.insert(EmailMessage, dict(values, id=batch.message_id(), thread_id=thread.id))
        batch.added(message)
        batch.add_attachments(message.id, attachments)
        return message
    message = EmailMessage(thread=thread, **values)
    if batch is not None:
        message.id = batch.message_id()
        batch.added(message)
    message.attachments.extend(EmailAttachment(**values) for values in attachments)
    session.add(message)
    return message


def _attachment_values(attachment: ParsedAttachment, limits) -> dict:
    """The attachment's row: metadata and where its bytes are in the raw message (stored once, there);
    an attachment over the size limit or of a blocked type is marked withheld (never served)."""
    extension = attachment.filename.rpartition(".")[2].lower() if "." in attachment.filename else ""
    withheld = None
    if attachment.size > limits.max_attachment_bytes:
        withheld = "too_large"
    elif extension in limits.blocked_extensions:
        withheld = "blocked_type"
    return {"filename": attachment.filename, "content_type": attachment.content_type, "size_bytes": attachment.size,
            "content_id": (attachment.content_id or "")[:255] or None, "inline": attachment.inline,
            "withheld": withheld, "mime_part": attachment.part}


def _language_for(parsed: ParsedEmail, customer_language: str | None, mailbox: Mailbox) -> str:
    if customer_language in ("en", "zh"):
        return customer_language
    sample = f"{parsed.subject} {parsed.text[:2000]}"
    return "zh" if len(_CJK.findall(sample)) >= 2 else mailbox.language


def _new_case(session: Session, desk_config, mailbox: Mailbox, row: StoredRaw, parsed: ParsedEmail,
              bounce: BounceReport | None, *, secret: str, now: datetime,
              known: Mapping | None = None, batch: BatchWrites | None = None) -> IngestResult:
    config = desk_config.email
    automatic = bool(automatic_reasons(parsed.headers)) or bounce is not None
    sender = parsed.from_address
    guessed = _language_for(parsed, None, mailbox)
    customer = None
    if sender:
        prospect_id = None
        if batch is not None:
            batch.before_identify(sender)
            prospect_id = batch.prospect_id() if not automatic and sender not in (known or {}) else None
        with _unless_flushed(session, batch):
            customer = identify_customer(session, sender, name=parsed.from_name, language=guessed,
                                         create_prospect=not automatic, known=known, prospect_id=prospect_id)
        if batch is not None and customer is not None and customer.new:
            batch.created(sender)
    customer_id = customer.id if customer else None
    language = customer.language if customer and customer.language in ("en", "zh") else guessed
    queue = choose_queue(config, mailbox, sender, parsed.subject)
    interaction = create_interaction(
        session, channel="email", actor=ACTOR, external_ref=f"{row.mailbox}/{row.id}", customer_id=customer_id,
        language=language, subject=parsed.subject[:1000],
        attributes={"mailbox": row.mailbox, "from": sender, "automatic": automatic}, at=now,
        interaction_id=batch.case_id() if batch is not None else None)
    thread_values = {"interaction_id": interaction.id, "mailbox": row.mailbox, "customer_address": sender,
                     "cc": sorted(set(parsed.cc) - config.own_addresses()), "subject": parsed.subject[:1000],
                     "created_at": now}
    if batch is not None and batch.holds_rows:
        thread = batch.insert(EmailThread, dict(thread_values, id=batch.thread_id()))
    else:
        thread = EmailThread(**thread_values)
        session.add(thread)
    message = _store_message(session, config, row, parsed, thread, interaction, kind="customer", automatic=automatic,
                             details={}, batch=batch)
    # before routing, so the new complaint's level counts in the case's priority
    complaint = raise_from_new_email(session, desk_config, mailbox=row.mailbox, parsed=parsed,
                                     interaction=interaction, automatic=automatic, now=now,
                                     write_case=batch.flush if batch is not None else None)
    # Routing and the acknowledgement read nothing of this message but a new complaint: written first;
    # the rest goes in one flush afterwards (thread, both messages, the events, one UPDATE of the case).
    if complaint is not None:
        session.flush()
    history = None
    if batch is not None and customer is not None:
        if complaint is not None:
            batch.forget_customer(customer.id)  # their complaints changed: read them again
        history = batch.history(customer.id)
    with session.no_autoflush:
        enqueue(session, interaction, queue, actor=ACTOR, reason="email received", customer=customer,
                history=history)
        ack = _maybe_acknowledge(session, desk_config, parsed, interaction, thread, message, bounce,
                                 customer=customer, secret=secret, now=now,
                                 content=complaint.acknowledgement if complaint else None, batch=batch)
    if complaint is not None and ack is not None:
        complaint.settle(session, ack)
    return IngestResult("stored", row.id, interaction.id, new_case=True, acknowledged=ack is not None)


def _maybe_acknowledge(session: Session, desk_config, parsed: ParsedEmail, interaction: Interaction,
                       thread: EmailThread, message: EmailMessage, bounce: BounceReport | None, *,
                       customer: CustomerInfo | None, secret: str, now: datetime,
                       content: tuple[str, str] | None = None, batch: BatchWrites | None = None) -> EmailMessage | None:
    """Queue the case's acknowledgement unless loop protection forbids it (``content``: a complaint's
    acknowledgement to send instead of the generic one). The queued message, or None."""
    config = desk_config.email
    to = parsed.reply_to or parsed.from_address
    window_start = now - timedelta(seconds=config.autoreply.window_s)
    history = batch.ack_history(to, window_start) if batch is not None else None
    sent, undeliverable = history if history is not None else _ack_history(session, to, window_start)
    decision = decide_acknowledgement(
        enabled=config.autoreply.enabled, headers=parsed.headers, is_bounce=bounce is not None,
        addresses=[parsed.from_address, to], own_addresses=config.own_addresses(),
        reply_domains={reply_domain(config, m) for m in config.mailboxes}, sent_in_window=sent,
        max_per_window=config.autoreply.max_per_sender, new_case=True)
    if decision.send and undeliverable:
        decision = AckDecision(False, "undeliverable")
    record_fact(session, interaction, "email_acknowledgement", actor=ACTOR, reason=decision.reason,
                data={"send": decision.send, "to": to})
    if not decision.send:
        return None
    ack = schedule_acknowledgement(session, desk_config, interaction, thread, message, to, secret=secret, now=now,
                                   customer=customer, content=content,
                                   reserved_id=batch.message_id() if batch is not None else None,
                                   hold=batch.insert if batch is not None and batch.holds_rows else None)
    if batch is not None:
        batch.added(ack)
        batch.acknowledged(to)
    return ack


def _ack_history(session: Session, to: str, window_start: datetime) -> tuple[int, bool]:
    """(acknowledgements sent to ``to`` since ``window_start``, whether ``to`` is undeliverable): the
    two facts loop protection needs, in one query."""
    sent = (select(func.count(EmailMessage.id)).where(
        EmailMessage.recipient == to, EmailMessage.kind == "ack", EmailMessage.created_at >= window_start)
        .scalar_subquery())
    undeliverable = select(UndeliverableAddress.id).where(UndeliverableAddress.address == to.lower()).exists()
    count, blocked = session.execute(select(sent, undeliverable)).one()
    return count or 0, bool(blocked)


def _continue_case(session: Session, desk_config, row: StoredRaw, parsed: ParsedEmail, interaction: Interaction,
                   via: str, bounce: BounceReport | None, now: datetime,
                   batch: BatchWrites | None = None, thread: EmailThread | None = None,
                   addresses: set[str] | None = None) -> IngestResult:
    """``thread``, ``addresses``: the case's thread and its customer's addresses when the threading lookup
    read them (else they are read here)."""
    config = desk_config.email
    if batch is not None:
        batch.forget_customer(interaction.customer_id)  # their case changes: their routing history too
    if thread is None:
        with _unless_flushed(session, batch):  # the case is written (the lookup flushed if it was the batch's)
            thread = session.scalar(select(EmailThread).where(EmailThread.interaction_id == interaction.id))
    automatic = bool(automatic_reasons(parsed.headers)) or bounce is not None
    message = _store_message(session, config, row, parsed, thread, interaction, kind="customer",
                             automatic=automatic, details={"threaded_via": via}, batch=batch)
    live.announce_inbound(session, interaction, message)
    sender = parsed.from_address
    if addresses is None:
        with _unless_flushed(session, batch):
            addresses = customer_addresses(session, interaction.customer_id)
    allowed = addresses | {thread.customer_address} | set(thread.cc)
    if sender in allowed:
        thread.cc = sorted((set(thread.cc) | set(parsed.cc)) - config.own_addresses() - {thread.customer_address})
    record_fact(session, interaction, "email_received", actor=ACTOR, reason=via,
                data={"inbound_id": row.id, "from": sender, "automatic": automatic})
    if interaction.state == State.CLOSED and not automatic:
        queue = interaction.queue or config.mailbox(thread.mailbox).queue
        enqueue(session, interaction, queue, actor=ACTOR, reason="customer replied")
    return IngestResult("stored", row.id, interaction.id)


def _handle_bounce(session: Session, config, row: StoredRaw, parsed: ParsedEmail,
                   bounce: BounceReport) -> IngestResult | None:
    """Attach a bounce to the case of the message it returns; None when it names none of ours."""
    if not bounce.original_message_ids:
        return None
    original = session.scalar(select(EmailMessage).where(
        EmailMessage.message_id.in_(bounce.original_message_ids), EmailMessage.direction == "out")
        .order_by(EmailMessage.id.desc()).limit(1))
    if original is None:
        return None
    interaction = session.get(Interaction, original.interaction_id)
    thread = session.get(EmailThread, original.thread_id)
    report = {"status": bounce.status, "recipient": bounce.recipient, "diagnostic": bounce.diagnostic,
              "permanent": bounce.permanent, "original_email_message_id": original.id}
    message = _store_message(session, config, row, parsed, thread, interaction, kind="bounce", automatic=True,
                             details={"bounce": report})
    session.flush()  # the bounce's id is evidence for the undeliverable mark
    original.status = "bounced"
    original.details = dict(original.details or {}, bounce=report)
    if bounce.permanent:
        for address in ([bounce.recipient] if bounce.recipient else original.to):
            mark_undeliverable(session, address, bounce.status or "5.0.0", bounce.diagnostic, message.id)
    record_fact(session, interaction, "email_bounced", actor=ACTOR, reason=bounce.status or "",
                data=report)
    return IngestResult("stored", row.id, interaction.id)

