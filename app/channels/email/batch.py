"""Many messages through the one ingest path at once: the IMAP poller's batches and ``flask mail ingest``.

The promises of ``ingest.ingest_raw`` hold message by message -- the raw bytes are committed before
anything parses them, a duplicate is stored once (the unique key decides, also within one batch), a
message that cannot be understood is quarantined and the rest flow on -- while the fixed costs are
shared: one INSERT stores the whole batch's raw bytes (one commit; on PostgreSQL a batch of several MB
in chunks, each parsed once committed while the next is stored: ``rawstore``); all are parsed (no
database: a message that cannot be parsed is quarantined without any rollback); the rest are processed in one
transaction -- the senders the CRM knows identified together in one query first -- one statement
marks them processed, one commit ends the batch. When a message fails
while being processed, that transaction is rolled back and the batch processed again with a savepoint
per message, so the failing one is rolled back alone (with the events and jobs it queued) and
quarantined. A database outage rolls back the processing and propagates, leaving the stored messages
pending, exactly as a single ``ingest_raw`` does.
"""
from __future__ import annotations

import logging
from contextlib import suppress
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, text, update
from sqlalchemy.exc import InvalidRequestError, OperationalError
from sqlalchemy.orm import Session

from app.channels.email.ingest import (
    IngestResult,
    Quarantine,
    StoredRaw,
    _parse,
    _process,
    _stored_bytes,
)
from app.channels.email.models import InboundEmail, InboundStatus
from app.channels.email.parse import ParsedEmail, message_key
from app.channels.email.pending import BatchWrites
from app.channels.email.rawstore import AheadStore, helper_engine, store_ahead
from app.channels.email.routing import identify_senders
from app.db import utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RawMessage:
    """One message as received: its bytes, where it came from (IMAP "uidvalidity:uid"), and for a
    message too big to fetch, its size (``raw`` is then only its header)."""

    raw: bytes
    source_ref: str | None = None
    headers_only_size: int | None = None


def ingest_many(session: Session, desk_config, mailbox_name: str, messages: Sequence[RawMessage], *,
                source: str, secret: str) -> list[IngestResult]:
    """Store ``messages`` (committed), then process them; one IngestResult per message, in order.
    Raises KeyError for an unknown mailbox; database outages propagate (the caller retries)."""
    config = desk_config.email
    config.mailbox(mailbox_name)
    if not messages:
        return []
    rows = [_values(config, mailbox_name, message, source) for message in messages]
    # each chunk is parsed once it is committed, while the next is stored (``rawstore``)
    stored = store_ahead(session, rows, [message.raw for message in messages])
    return _process_stored(session, desk_config, mailbox_name, rows,
                           _parse_stored(mailbox_name, config.limits, rows, stored), secret=secret)


def ingest_batches(session: Session, desk_config, mailbox_name: str, batches: Iterable[Sequence[RawMessage]], *,
                   source: str, secret: str) -> Iterator[list[IngestResult]]:
    """``ingest_many`` for each of ``batches`` in turn, yielding each batch's results once it is processed
    and committed -- with the next batch taken from ``batches``, stored by one helper (``rawstore``) and
    parsed by another while this one is processed. The worker then neither waits for the database to
    store what it is about to parse, nor leaves the interpreter idle while processing waits for the
    database (the parser runs then). At most two batches are held. A batch is stored before any of it
    is parsed, as always; a stored batch whose processing never came (an outage, a consumer that
    stopped) stays pending for the sweep (``jobs.process_stale_pending``). Raises as ``ingest_many``
    does, from the batch concerned."""
    config = desk_config.email
    config.mailbox(mailbox_name)
    engine = helper_engine(session)
    if engine is None:  # SQLite, or a session bound to a connection: one batch after another
        for messages in batches:
            yield ingest_many(session, desk_config, mailbox_name, messages, source=source, secret=secret)
        return
    session.commit()  # what the session held is committed before anything is stored (as ingest_many does)
    pending = iter(batches)

    def taken() -> tuple[list[dict], Future] | None:
        """The next batch: its rows, queued for storing, then for parsing once stored."""
        messages = next(pending, None)
        if messages is None:
            return None
        rows = [_values(config, mailbox_name, message, source) for message in messages]
        stored = store.submit(rows, [message.raw for message in messages]) if rows else []
        return rows, parser.submit(_parse_stored, mailbox_name, config.limits, rows,
                                   ((group, future.result()) for group, future in stored))

    # left early: the parses and chunks not begun are dropped (the store first: a parse waiting for a
    # chunk that will never be stored is released by its cancellation)
    with _Helper("email-parse") as parser, AheadStore(engine) as store:
        upcoming = taken()
        while upcoming is not None:
            rows, parsing = upcoming
            try:  # stored and parsed while this batch is processed
                upcoming, failure = taken(), None
            except Exception as exc:  # the source failed (the IMAP connection): this batch is answered first
                upcoming, failure = None, exc
            yield _process_stored(session, desk_config, mailbox_name, rows, parsing.result(), secret=secret)
            if failure is not None:
                raise failure


class _Helper(ThreadPoolExecutor):
    """One thread; on leaving, the tasks not begun are dropped."""

    def __init__(self, name: str):
        super().__init__(1, thread_name_prefix=name)

    def __exit__(self, *exc_info) -> None:
        self.shutdown(wait=True, cancel_futures=True)


@dataclass
class _Parsed:
    """A stored batch, parsed: the new messages (index in the batch, stored row, parse or quarantine
    reason) and the copies of messages held already (index, key)."""

    messages: list[tuple[int, StoredRaw, ParsedEmail | Quarantine]]
    duplicates: list[tuple[int, str]]


def _parse_stored(mailbox_name: str, limits, rows: list[dict],
                  stored: Iterable[tuple[range, dict[str, int]]]) -> _Parsed:
    """Parse each stored chunk as it commits (``stored``: its indexes in ``rows``, message_key -> id of
    the rows it inserted). No database: it may run beside the worker's processing."""
    parsed = _Parsed([], [])
    for group, inserted in stored:
        for index in group:
            values = rows[index]
            inbound_id = inserted.pop(values["message_key"], None)  # pop: a second copy in a chunk is a duplicate
            if inbound_id is None:
                parsed.duplicates.append((index, values["message_key"]))
                continue
            row = StoredRaw(inbound_id, mailbox_name, values["raw"], values["raw_size"], values["headers_only"], 0,
                            InboundStatus.PENDING)
            parsed.messages.append((index, row, _parse_or_quarantine(row, limits)))
    return parsed


def _process_stored(session: Session, desk_config, mailbox_name: str, rows: list[dict], stored: _Parsed, *,
                    secret: str) -> list[IngestResult]:
    """Process a parsed batch; one IngestResult per row."""
    if not rows:
        return []
    results: list[IngestResult | None] = [None] * len(rows)
    if stored.duplicates:
        winners = dict(session.execute(select(InboundEmail.message_key, InboundEmail.id).where(
            InboundEmail.mailbox == mailbox_name,
            InboundEmail.message_key.in_({key for _, key in stored.duplicates}))).all())
        for index, key in stored.duplicates:
            results[index] = IngestResult("duplicate", winners.get(key))
    parsed = stored.messages
    writes: list[BatchWrites] = []  # the first attempt's reserved ids serve the second
    try:
        try:
            done = _process_batch(session, desk_config, parsed, secret=secret, isolate=False, writes=writes)
        except OperationalError:
            raise
        except Exception:  # one message failed: roll the batch back, process each in its own savepoint
            session.rollback()
            log.info("email batch: a message failed; processing the %d messages one savepoint each", len(parsed))
            done = _process_batch(session, desk_config, parsed, secret=secret, isolate=True, writes=writes)
    except OperationalError:
        session.rollback()
        raise
    for index, result in done:
        results[index] = result
    return results  # type: ignore[return-value] - every index was filled above


_LZ4: dict[str, bool] = {}  # database URL -> whether the server can compress with lz4


def _fast_compression(session: Session) -> None:
    """PostgreSQL compresses large values (message texts and HTML, event payloads) with pglz by default:
    slow, on the CPU the desk shares with the database. Where the server has lz4 (PostgreSQL 14+ built
    with it) this transaction uses it; nothing else changes (values already stored keep their
    compression). The raw bytes and attachment contents are not compressed at all (their columns'
    storage is EXTERNAL: mostly base64, compressed or random data)."""
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        return
    key = str(bind.url)
    if key not in _LZ4:
        _LZ4[key] = bool(session.scalar(text(
            "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")))
    if _LZ4[key]:
        session.execute(text("SET LOCAL default_toast_compression = lz4"))


def _parse_or_quarantine(row: StoredRaw, limits) -> ParsedEmail | Quarantine:
    """Parsing touches no database, so its failures need no rollback: done first, for the whole batch."""
    try:
        return _parse(row, limits, lenient=False)
    except Quarantine as exc:
        return exc
    except Exception as exc:  # a bug or a poison we did not foresee: quarantine it, keep the intake flowing
        log.exception("email %s could not be parsed; quarantined", row.id)
        return Quarantine("processing_error", f"{type(exc).__name__}: {exc}")


def _process_batch(session: Session, desk_config, parsed: list[tuple[int, StoredRaw, ParsedEmail | Quarantine]],
                   *, secret: str, isolate: bool, writes: list[BatchWrites]) -> list[tuple[int, IngestResult]]:
    """Process the parsed messages in one transaction and commit it. Without ``isolate`` any failure
    propagates (the caller rolls back and tries again isolated); with it each message has a savepoint.
    ``writes``: empty, or the ``BatchWrites`` of a rolled-back attempt (its reserved ids are reused)."""
    _fast_compression(session)
    done, processed = [], []
    held: dict[str, list] = {}  # isolated: events and jobs of the processed messages, for after the commit
    readable = [m for _, _, m in parsed if not isinstance(m, Quarantine)]
    # senders known to the CRM, in one query; the others (a prospect to create) one by one, in order
    known = identify_senders(session, {m.from_address for m in readable if m.from_address})
    batch = _batch_writes(session, desk_config, readable, writes, known)
    for index, row, message in parsed:
        if isinstance(message, Quarantine):
            result = _quarantined(session, row, message.reason, message.detail)
        elif isolate:
            result = _process_one(session, desk_config, row, message, secret=secret, held=held, known=known,
                                  batch=batch)
        else:
            result = _process(session, desk_config, row, secret=secret, lenient=False, now=utcnow(), parsed=message,
                              known=known, batch=batch)
        if result.status == "stored":
            processed.append(row.id)
        done.append((index, result))
    batch.flush()  # the rows it holds back (attachments) are written before the commit
    if processed:
        session.execute(update(InboundEmail).where(InboundEmail.id.in_(processed)).values(
            status=InboundStatus.PROCESSED, processed_at=utcnow(), attempts=1))
    for key, items in held.items():
        session.info.setdefault(key, []).extend(items)
    session.commit()
    return done


def _batch_writes(session: Session, desk_config, readable: list[ParsedEmail], writes: list[BatchWrites],
                  known: Mapping) -> BatchWrites:
    """The batch's ``BatchWrites``: ids reserved for its likely new cases (no reply headers: a reply that
    threads nowhere draws its id when it needs one), two messages each (theirs and an acknowledgement)
    and a prospect per sender the CRM does not know; the acknowledgement history of its senders read.
    After a rollback, the same ids again."""
    if writes:
        writes[0].reset()
        return writes[0]
    window_s, now = desk_config.email.autoreply.window_s, utcnow()
    writes.append(BatchWrites(
        session, new_cases=sum(1 for m in readable if not (m.in_reply_to or m.references)),
        messages=2 * len(readable), prospects=len({m.from_address for m in readable} - known.keys()),
        ack_addresses={m.reply_to or m.from_address for m in readable},
        window_since=now - timedelta(seconds=window_s)))
    writes[0].read_histories(desk_config, {found.customer_id for found in known.values() if found.customer_id}, now)
    return writes[0]


def _values(config, mailbox_name: str, message: RawMessage, source: str) -> dict:
    raw = message.raw
    key, _ = message_key(raw)
    stored, headers_only = _stored_bytes(raw, config.limits.max_stored_bytes)
    return {"mailbox": mailbox_name, "message_key": key, "source": source, "source_ref": message.source_ref,
            "raw": stored, "raw_size": message.headers_only_size or len(raw),
            "raw_sha256": None,  # filled in by ``store_ahead`` (by the database, as it stores)
            "headers_only": headers_only or message.headers_only_size is not None,
            "status": InboundStatus.PENDING, "attempts": 0, "received_at": utcnow()}


def _process_one(session: Session, desk_config, row: StoredRaw, parsed: ParsedEmail, *, secret: str,
                 held: dict[str, list], known: Mapping | None = None,
                 batch: BatchWrites | None = None) -> IngestResult:
    """Process one message inside a savepoint; on failure roll back only its work and quarantine it.

    SQLAlchemy runs the session's commit and rollback hooks at a savepoint's release and rollback too,
    so what the message queued for after the commit (events, jobs) is moved to ``held`` before the
    release -- delivered only when the batch commits -- and a rolled-back message's own items are all
    the rollback hooks find to drop."""
    savepoint = session.begin_nested()
    mark = batch.mark() if batch is not None else None
    try:
        result = _process(session, desk_config, row, secret=secret, lenient=False, now=utcnow(), parsed=parsed,
                          known=known, batch=batch)
        if batch is not None:
            batch.flush()
        session.flush()
        queued = _take_queued(session)
        savepoint.commit()
    except OperationalError:
        raise
    except Quarantine as exc:
        reason, detail = exc.reason, exc.detail
    except Exception as exc:  # a bug or a poison we did not foresee: quarantine it, keep the intake flowing
        log.exception("email %s could not be processed; quarantined", row.id)
        reason, detail = "processing_error", f"{type(exc).__name__}: {exc}"
    else:
        for key, items in queued.items():
            held.setdefault(key, []).extend(items)
        return result
    with suppress(InvalidRequestError):  # active, or left inactive by a failed flush (not if already closed)
        savepoint.rollback()
    if batch is not None:
        batch.undo(mark)
    return _quarantined(session, row, reason, detail)


def _quarantined(session: Session, row: StoredRaw, reason: str, detail: str) -> IngestResult:
    session.execute(update(InboundEmail).where(InboundEmail.id == row.id).values(
        status=InboundStatus.QUARANTINED, quarantine_reason=reason, error=detail[:4000], attempts=1))
    log.warning("email %s quarantined: %s %s", row.id, reason, detail[:200])
    return IngestResult("quarantined", row.id, reason=reason)


def _take_queued(session: Session) -> dict[str, list]:
    """Remove and return the lists in ``session.info`` (what was queued for after the commit)."""
    return {key: session.info.pop(key) for key in [k for k, v in session.info.items() if isinstance(v, list)]}
