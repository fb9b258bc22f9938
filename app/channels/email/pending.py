"""What an ingest batch holds back so its rows go to the database together.

Processing a batch one message after another used to flush the session several times per message
(the new case's id, the acknowledgement's id, a query that autoflushed), each flush a unit of work and
a statement per table. A batch instead reserves its ids from the sequences up front (one statement) and
adds its rows without flushing; they are written when the batch ends, one INSERT per table. Rows that
nothing reads back as objects in the transaction -- the email threads of new cases, the messages, their
attachments, the cases' event log -- are not unit-of-work objects at all: the batch holds them as plain
values (``PendingRow``) and writes each table's with one statement carrying them as one JSON document
(PostgreSQL's ``json_populate_recordset``: a short statement the driver parses once, no per-row
parameters, no RETURNING of ids reserved already or never read). The cases themselves, their queue
entries and new prospects stay ORM objects (routing and the CRM change them) and go first, in the
session's flush. Reading what the batch wrote stays exact: before a lookup that could find one of the
batch's unwritten rows (a reply to a message of the same batch, a case tag naming a new case, a second
mail from a sender who just became a prospect, a complaint rule's look for the same message) the batch
flushes first; other lookups skip the autoflush. Acknowledgement loop protection reads the history of
every sender of the batch in one query and counts the batch's own acknowledgements in memory.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import cache
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Table, bindparam, literal, select, text, union_all
from sqlalchemy.orm import Session

from app.channels.email import threads
from app.channels.email.models import EmailAttachment, EmailMessage, EmailThread, UndeliverableAddress
from app.complaints.email_rules import open_complaint_levels
from app.db import UTCDateTime
from app.interactions.models import InteractionEvent
from app.interactions.service import EVENT_ROWS_KEY
from queues.service import CustomerHistory, last_served_by

_RESERVE = text(", ".join(
    f"array(SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, :{count}))"
    for table, count in (("interactions", "cases"), ("email_threads", "cases"), ("email_messages", "messages"),
                         ("customers", "prospects"))
).join(("SELECT ", "")))
_ONE_ID = {table: text(f"SELECT nextval(pg_get_serial_sequence('{table}', 'id'))")
           for table in ("interactions", "email_threads", "email_messages", "customers")}
# the tables whose rows a batch holds as values, in the order they are written (each after those it names)
_ROW_TABLES: tuple[Table, ...] = (EmailThread.__table__, EmailMessage.__table__, EmailAttachment.__table__,
                                  InteractionEvent.__table__)
_UTC = UTCDateTime()


class PendingRow(SimpleNamespace):
    """A row the batch writes at its next flush: its column values, read (and changed) as attributes
    until then -- what the code that composed it reads back (a thread's subject, a message's id)."""


@cache
def _defaults(table: Table) -> tuple[tuple[str, Any, bool], ...]:
    """(column, default, whether the default is a callable) for every column but the primary key: its
    Python-side default, else None."""
    return tuple((column.key, column.default.arg, column.default.is_callable) if column.default is not None
                 else (column.key, None, False) for column in table.columns if not column.primary_key)


def complete(table: Table, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with every column they leave out: its Python-side default, as the unit of work would
    insert it, else None (NULL)."""
    for key, default, is_callable in _defaults(table):
        if key not in values:
            values[key] = default(None) if is_callable else default
    return values


@cache
def _json_insert(table: Table, with_id: bool, quote) -> Any:
    """INSERT the rows of a JSON array of objects (keys: column names; absent: NULL), in array order."""
    columns = ", ".join(quote(c.name) for c in table.columns if with_id or not c.primary_key)
    return text(f"INSERT INTO {quote(table.name)} ({columns}) SELECT {columns} FROM json_populate_recordset("
                f"NULL::{quote(table.name)}, CAST(:rows AS json)) WITH ORDINALITY AS given ORDER BY given.ordinality")


@cache
def _datetime_columns(table: Table) -> tuple[str, ...]:
    return tuple(c.key for c in table.columns if isinstance(c.type, UTCDateTime))


def _as_json(table: Table, rows: list[dict[str, Any]]) -> str:
    """The rows as one JSON array; timestamps as the column type binds them (aware, in UTC)."""
    stamps = _datetime_columns(table)
    plain = []
    for row in rows:
        row = dict(row)
        for key in stamps:
            value = row.get(key)
            if value is not None:
                row[key] = _UTC.process_bind_param(value, None).isoformat()
        plain.append(row)
    return json.dumps(plain, ensure_ascii=False, separators=(",", ":"))


class IdPool:
    """Ids reserved from a sequence, handed out in order; ``None`` where nothing was reserved (the
    caller then lets the flush assign one)."""

    def __init__(self, ids: Iterable[int] = ()):
        self.ids = list(ids)
        self.used = 0

    def take(self) -> int | None:
        if self.used >= len(self.ids):
            return None
        self.used += 1
        return self.ids[self.used - 1]

    def peek(self) -> int | None:
        return self.ids[self.used] if self.used < len(self.ids) else None

    def rewind(self) -> None:
        """Hand the ids out again from the first: the transaction that used them was rolled back, and
        a sequence value, once drawn, is never drawn by anyone else."""
        self.used = 0


class BatchWrites:
    """One batch's reserved ids, its added-but-unwritten rows, and its senders' acknowledgement history."""

    def __init__(self, session: Session, *, new_cases: int, messages: int, prospects: int,
                 ack_addresses: Iterable[str], window_since: datetime):
        self.session = session
        self.reserving = session.get_bind().dialect.name == "postgresql"
        self.case_ids, self.thread_ids, self.message_ids, self.prospect_ids = IdPool(), IdPool(), IdPool(), IdPool()
        if self.reserving and (new_cases or messages):
            cases, thread_ids, ids, prospect_ids = session.execute(_RESERVE, {
                "cases": new_cases, "messages": messages, "prospects": prospects}).one()
            self.case_ids, self.thread_ids = IdPool(cases), IdPool(thread_ids)
            self.message_ids, self.prospect_ids = IdPool(ids), IdPool(prospect_ids)
        self.rows: dict[Table, list] = {table: [] for table in _ROW_TABLES}  # held as values, in table order
        self.ack_addresses = set(ack_addresses)
        self.histories: dict[int, CustomerHistory] = {}  # routing histories of known senders, read ahead
        self.window_since = window_since
        self.reset()
        if self.ack_addresses:
            self._read_history()  # before the batch adds anything: nothing to flush

    def reset(self) -> None:
        """Forget the rows of a rolled-back transaction; reserved ids are handed out again."""
        self.case_ids.rewind()
        self.thread_ids.rewind()
        self.message_ids.rewind()
        self.prospect_ids.rewind()
        for rows in self.rows.values():
            rows.clear()
        self.unwritten_message_ids: set[str] = set()  # Message-IDs of EmailMessage rows added, not flushed
        self.unwritten_cases: set[int] = set()  # interactions added, not flushed
        self.prospect_addresses: set[str] = set()  # senders made prospects in this batch
        self._history: dict[str, list[datetime]] | None = None
        self._generation = 0  # bumped at every read of the history
        self._undeliverable: set[str] = set()
        self.acked: list[str] = []  # acknowledgements queued since the history was read, by recipient

    # --- ids ---------------------------------------------------------------------------------------
    def case_id(self) -> int | None:
        """An id for a new case: reserved, else drawn now (one statement), else None (not PostgreSQL)."""
        found = self.case_ids.take()
        if found is None and self.reserving:
            found = self.session.scalar(_ONE_ID["interactions"])
        if found is not None:
            self.unwritten_cases.add(found)
        return found

    def prospect_id(self) -> int | None:
        """The id the next prospect gets (drawn now when none is left; None: not PostgreSQL); it stays
        the next one until ``created`` says it was used."""
        if self.prospect_ids.used >= len(self.prospect_ids.ids) and self.reserving:
            self.prospect_ids.ids.append(self.session.scalar(_ONE_ID["customers"]))
        return self.prospect_ids.peek()

    def created(self, address: str) -> None:
        """A prospect was created for ``address`` with the id ``prospect_id`` gave: identifying
        ``address`` again must flush first."""
        self.prospect_ids.take()
        self.prospect_addresses.add(address.strip().lower())

    def message_id(self) -> int | None:
        """An id for an EmailMessage about to be added: reserved, else drawn now (one statement), else
        None (not PostgreSQL: let the flush assign it)."""
        found = self.message_ids.take()
        if found is None and self.reserving:
            found = self.session.scalar(_ONE_ID["email_messages"])
        return found

    def thread_id(self) -> int:
        """An id for a new case's thread: reserved, else drawn now (one statement). PostgreSQL only."""
        found = self.thread_ids.take()
        return found if found is not None else self.session.scalar(_ONE_ID["email_threads"])

    def added(self, message) -> None:
        """``message`` was added unwritten: a lookup by its Message-ID must flush first."""
        if message.message_id:
            self.unwritten_message_ids.add(message.message_id)

    # --- rows held as values ------------------------------------------------------------------------------
    @property
    def holds_rows(self) -> bool:
        """Whether the batch takes rows as values (``insert``, ``add_attachments``, event rows): on
        PostgreSQL, where every id they need is reserved; elsewhere the ordinary ORM objects are used."""
        return self.reserving

    def insert(self, model, values: dict[str, Any]) -> PendingRow:
        """Hold a row of ``model``'s table (``values``: its columns, the primary key included; the
        Python-side defaults are filled in) for the next ``flush``; returns it as a ``PendingRow``."""
        table = model.__table__
        row = PendingRow(**complete(table, values))
        self.rows[table].append(row)
        return row

    def add_attachments(self, message_id: int, rows: list[dict]) -> None:
        """The attachment rows (``EmailAttachment`` columns) of a message added with a reserved id:
        written at the next ``flush``, all the batch's in one statement (nothing of the batch reads them
        back)."""
        table = EmailAttachment.__table__
        self.rows[table].extend(complete(table, dict(row, message_id=message_id)) for row in rows)

    @contextmanager
    def event_rows(self) -> Iterator[None]:
        """While inside, the interactions' service holds the event rows it logs in this session
        (``EVENT_ROWS_KEY``) as values for the batch to write, rather than adding ORM objects."""
        if not self.holds_rows:
            yield
            return
        info = self.session.info
        info[EVENT_ROWS_KEY] = self.rows[InteractionEvent.__table__]
        try:
            yield
        finally:
            info.pop(EVENT_ROWS_KEY, None)

    # --- reading what the batch wrote ------------------------------------------------------------------
    def flush(self) -> None:
        """Write what the batch added: the session's objects, then the rows held as values (each table's
        in one statement, after the tables they name)."""
        self.session.flush()
        quote = None
        for table, rows in self.rows.items():
            if not rows:
                continue
            quote = quote or self.session.get_bind().dialect.identifier_preparer.quote
            plain = [vars(row) if isinstance(row, PendingRow) else row for row in rows]
            self.session.execute(_json_insert(table, "id" in plain[0], quote), {"rows": _as_json(table, plain)})
            rows.clear()  # in place: the event rows' list is the one the interactions' service appends to
        self.unwritten_message_ids.clear()
        self.unwritten_cases.clear()
        self.prospect_addresses.clear()

    def before_thread_lookup(self, *, recipients: list[str], in_reply_to: list[str], references: list[str],
                             subject: str) -> None:
        """Flush when the threading lookups could name a row of this batch not yet written."""
        if not (self.unwritten_message_ids or self.unwritten_cases):
            return
        if self.unwritten_message_ids.intersection(in_reply_to + references) or self.unwritten_cases.intersection(
                threads.cases_named(recipients, in_reply_to + references, subject)):
            self.flush()

    def before_identify(self, address: str) -> None:
        """Flush when ``address`` became a prospect in this batch (identify must find it)."""
        if address.strip().lower() in self.prospect_addresses:
            self.flush()

    # --- routing history ------------------------------------------------------------------------------
    def read_histories(self, desk_config, customer_ids: set[int], now: datetime) -> None:
        """Read the routing histories of ``customer_ids`` (two queries): the batch's new cases of these
        customers are then routed without looking them up one by one."""
        if not customer_ids:
            return
        windows = [q.preferred_agent_window_days for q in desk_config.routing.queues
                   if q.preferred_agent_wait_s and q.preferred_agent_window_days]
        served = last_served_by(self.session, customer_ids, since=now - timedelta(days=max(windows))) \
            if windows else {}
        levels = open_complaint_levels(self.session, customer_ids)
        self.histories = {customer_id: CustomerHistory(*served.get(customer_id, (None, None)),
                                                       open_complaint_level=levels.get(customer_id))
                          for customer_id in customer_ids}

    def history(self, customer_id: int | None) -> CustomerHistory | None:
        return self.histories.get(customer_id) if customer_id is not None else None

    def forget_customer(self, customer_id: int | None) -> None:
        """One of this customer's contacts or complaints changed: look their history up again."""
        self.histories.pop(customer_id, None)

    # --- acknowledgement history -----------------------------------------------------------------------
    def ack_history(self, to: str, window_start: datetime) -> tuple[int, bool] | None:
        """(acknowledgements sent to ``to`` since ``window_start``, whether ``to`` is undeliverable), as
        ``ingest._ack_history`` answers it; None for an address the batch did not read (ask the database)."""
        if to not in self.ack_addresses or window_start < self.window_since:
            return None
        if self._history is None:
            self.flush()  # every acknowledgement queued so far is then among the rows read
            self._read_history()
        sent = sum(1 for at in self._history.get(to, ()) if at >= window_start) + self.acked.count(to)
        return sent, to.lower() in self._undeliverable

    def acknowledged(self, to: str) -> None:
        self.acked.append(to)

    def forget_history(self) -> None:
        """Read the history again at the next acknowledgement (a bounce may have marked an address)."""
        self._history = None

    def mark(self) -> tuple[int, int, tuple[int, ...]]:
        return len(self.acked), self._generation, tuple(len(rows) for rows in self.rows.values())

    def undo(self, mark: tuple[int, int, tuple[int, ...]]) -> None:
        """A message's savepoint was rolled back: its acknowledgement and unwritten rows are gone."""
        for rows, kept in zip(self.rows.values(), mark[2], strict=True):
            del rows[kept:]
        self.unwritten_message_ids.clear()
        self.unwritten_cases.clear()
        self.prospect_addresses.clear()
        if self._generation != mark[1]:
            self._history = None  # read while the message was processed: its rows may be in it
        else:
            del self.acked[mark[0]:]

    def _read_history(self) -> None:
        self.acked = []
        self._generation += 1
        addresses = sorted(self.ack_addresses)
        sent = select(EmailMessage.recipient.label("address"), EmailMessage.created_at.label("at")).where(
            EmailMessage.recipient.in_(bindparam("addresses", expanding=True)), EmailMessage.kind == "ack",
            EmailMessage.created_at >= bindparam("since"))
        blocked = select(UndeliverableAddress.address, literal(None, EmailMessage.created_at.type).label("at")).where(
            UndeliverableAddress.address.in_(bindparam("lowered", expanding=True)))
        history: dict[str, list[datetime]] = {}
        self._undeliverable = set()
        rows = self.session.execute(union_all(sent, blocked), {
            "addresses": addresses, "since": self.window_since, "lowered": sorted({a.lower() for a in addresses})})
        for address, at in rows:
            if at is None:
                self._undeliverable.add(address)
            else:
                history.setdefault(address, []).append(at)
        self._history = history
