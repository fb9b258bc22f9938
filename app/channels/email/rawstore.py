"""A batch's raw messages stored ahead of their parsing, chunk by chunk (the IMAP poller, ``flask mail ingest``).

The promise stays message by message: a message is handed to the parser only once the transaction
holding its raw bytes has committed. What changes is what the worker does while the database stores.
An attachment-heavy message (~400 KB) costs PostgreSQL ~2 ms to receive, write out of line (TOAST) and
log (WAL) -- as long as parsing it costs the worker. Stored whole and then parsed, a batch made each
wait for the other. On PostgreSQL a batch of several MB is therefore split into chunks, stored one
after another by a helper thread on a connection of its own, each chunk its own transaction (its rows
pipelined: ``insert_pipelined``): the worker parses chunk k while the database stores chunk k+1. The
database also hashes the messages it stores (``raw_sha256``), as it receives them: hashed by the helper,
each message cost it a wait for the interpreter lock the parser holds (hashlib lets go of it for the
hashing and must take it back), up to 5 ms a message before the chunk's INSERT even began -- ~15% of
the throughput for mail with attachments.

A stream of batches (``batch.ingest_batches``: the IMAP poller, ``flask mail ingest``) goes further:
the helper stores the next batch while the worker processes this one (``AheadStore``), so the worker
does not wait for the database to store what it is about to parse.

Anything else -- one chunk, SQLite, a session bound to a connection rather than an engine -- is stored
as before: one INSERT for the batch on the session's own connection, one commit.
"""
from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor

from sqlalchemy import Connection, Engine, String, bindparam, func, literal_column
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from app.channels.email.ingest import _insert_raw
from app.channels.email.models import InboundEmail

# A chunk costs the helper a few wake-ups (its INSERT sent as the socket drains, then the answer), each
# of which may wait for the interpreter lock the parser holds (up to the 5 ms switch interval): chunks
# are large, ~20 messages with attachments. A batch under two chunks' worth is stored in one go
# (there is nothing to overlap). The last chunk is small: nothing is stored while it is parsed, and
# where the database is the slower of the two (it is, for mail with attachments) the worker waits for
# the helper anyway -- then only that last parse is not overlapped.
CHUNK_BYTES = 8 * 1024 * 1024
LAST_CHUNK_BYTES = 1024 * 1024


def chunks(sizes: Sequence[int], limit: int = CHUNK_BYTES, last: int | None = None) -> list[range]:
    """Consecutive index ranges of ``sizes`` each holding at most ``limit`` bytes (at least one item);
    with ``last``, when there is more than one chunk, the last holds at most ``last`` bytes (at least
    one item)."""
    tail = len(sizes)
    if last is not None and sum(sizes) > limit:
        held = sizes[tail - 1]
        tail -= 1
        while tail > 0 and held + sizes[tail - 1] <= last:
            tail -= 1
            held += sizes[tail]
    groups: list[range] = []
    start, held = 0, 0
    for index in range(tail):
        if index > start and held + sizes[index] > limit:
            groups.append(range(start, index))
            start, held = index, 0
        held += sizes[index]
    if start < tail:
        groups.append(range(start, tail))
    if tail < len(sizes):
        groups.append(range(tail, len(sizes)))
    return groups


def helper_engine(session: Session) -> Engine | None:
    """The engine a storing helper may use beside ``session``: PostgreSQL, and a session bound to an
    engine (not to a connection, whose transaction a helper could not see). None: store in the session."""
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) and bind.dialect.name == "postgresql" else None


class AheadStore:
    """A helper thread storing raw rows chunk after chunk, each chunk its own transaction on a connection
    of its own, in the order they were submitted: the worker parses and processes what has committed
    while the helper stores what comes next -- the rest of a batch, or the next batch
    (``batch.ingest_batches``). Used as a context manager: on leaving, chunks not begun are not stored
    (a failure, or a consumer that stopped early) and the helper is waited for."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.failed = threading.Event()  # a chunk failed, or the store is closing: begin no other
        self.helper = ThreadPoolExecutor(1, thread_name_prefix="email-store")

    def submit(self, rows: list[dict], wholes: Sequence[bytes], limit: int | None = None) -> list[tuple[range, Future]]:
        """Queue ``rows`` (``raw_sha256``: the sha256 of ``wholes``, the messages as received); (indexes, future of
        message_key -> id of the rows inserted) per chunk, in order."""
        limit = limit or CHUNK_BYTES
        groups = chunks([len(row["raw"]) for row in rows], limit, min(LAST_CHUNK_BYTES, limit))
        return [(group, self.helper.submit(_store_chunk, self.engine, rows, wholes, group, self.failed))
                for group in groups]

    def __enter__(self) -> AheadStore:
        return self

    def __exit__(self, *exc_info) -> None:
        self.failed.set()
        self.helper.shutdown(wait=True, cancel_futures=True)


def store_ahead(session: Session, rows: list[dict], wholes: Sequence[bytes],
                limit: int | None = None) -> Iterator[tuple[range, dict[str, int]]]:
    """Store ``rows`` (email_inbound values; ``raw_sha256`` filled in from ``wholes``, the messages
    as received) and yield, chunk after chunk and only once that chunk has committed, (its indexes in
    ``rows``, message_key -> id of the rows it inserted). A key already stored, or twice in a chunk, is
    inserted once. What the session held uncommitted is committed before (as the store's commit did).
    ``limit``: bytes per chunk (default ``CHUNK_BYTES``; the last at most ``LAST_CHUNK_BYTES``).
    Database errors propagate from the chunk that failed; the chunks yielded before stay stored."""
    limit = limit or CHUNK_BYTES
    engine = helper_engine(session)
    if engine is None or len(chunks([len(row["raw"]) for row in rows], limit, min(LAST_CHUNK_BYTES, limit))) < 2:
        _digest(rows, wholes, range(len(rows)))
        inserted = _insert_in_session(session, rows)
        session.commit()
        yield range(len(rows)), inserted
        return
    session.commit()
    with AheadStore(engine) as store:  # left early (an error): the chunks not begun are not stored
        for group, future in store.submit(rows, wholes, limit):
            yield group, future.result()


def _store_chunk(engine: Engine, rows: list[dict], wholes: Sequence[bytes], group: range,
                 failed: threading.Event) -> dict[str, int]:
    """The chunk's rows in one pipeline on an autocommit connection: one implicit transaction,
    committed when it answers (no BEGIN and COMMIT round trips, each a wake-up that may wait for the
    parser's interpreter lock) -- without waiting for its WAL to reach the disk (``durable=False``).

    That wait (an fsync per chunk: ~1/4 of what storing costs here) buys nothing a message needs. A
    chunk is handed to the parser once committed, so a crash of the worker or of the parser cannot
    lose it; only a crash of the database server within ~200 ms (its WAL writer's delay) could. And
    nothing is acknowledged to where the message came from -- the IMAP flag and UID, the CLI's counts
    -- before the batch's processing commits, a synchronous commit, which makes every earlier WAL
    record durable, these rows' included. A message lost with the server was never acknowledged: the
    next poll fetches it again."""
    if failed.is_set():
        raise CancelledError("an earlier chunk of the batch failed")
    try:  # the database hashes what it stores; a message stored headers only is hashed whole here
        _digest(rows, wholes, [index for index in group if rows[index]["raw"] is not wholes[index]])
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            return insert_pipelined(conn, [rows[index] for index in group], durable=False)
    except BaseException:
        failed.set()
        raise


def _digest(rows: list[dict], wholes: Sequence[bytes], group: Iterable[int]) -> None:
    for index in group:
        rows[index]["raw_sha256"] = hashlib.sha256(wholes[index]).hexdigest()


def _insert_in_session(session: Session, rows: list[dict]) -> dict[str, int]:
    if session.get_bind().dialect.name not in ("postgresql", "sqlite"):  # pragma: no cover - one at a time
        found: dict[str, int] = {}
        for values in rows:
            inbound_id = _insert_raw(session, values)
            if inbound_id is not None:
                found[values["message_key"]] = inbound_id
        return found
    return insert_raws(session.connection(), rows)


def insert_raws(conn: Connection, rows: list[dict]) -> dict[str, int]:
    """INSERT every row whose (mailbox, message_key) is new, in one statement (PostgreSQL, SQLite);
    message_key -> id of those inserted (a key twice in ``rows`` is inserted once)."""
    module = __import__(f"sqlalchemy.dialects.{conn.dialect.name}", fromlist=["insert"])
    statement = module.insert(InboundEmail).on_conflict_do_nothing(
        index_elements=["mailbox", "message_key"]).returning(InboundEmail.message_key, InboundEmail.id)
    # executemany: SQLAlchemy sends it as one multi-row INSERT ("insertmanyvalues"), compiled once
    return dict(conn.execute(statement, rows).all())


_ROW_INSERT: dict[tuple[str, ...], str] = {}  # columns -> the one-row INSERT as the driver takes it


def insert_pipelined(conn: Connection, rows: list[dict], *, durable: bool = True) -> dict[str, int]:
    """``insert_raws`` on PostgreSQL (psycopg) as one INSERT per row, sent back to back in a pipeline and
    committed together at its end (on an autocommit connection: one implicit transaction). The server
    stores a row while the next arrives, where it receives a multi-row INSERT whole before it begins:
    ~1/3 less of its time for mail with attachments. Sent with the driver's executemany (SQLAlchemy
    sends an executemany with RETURNING as one multi-row statement); the values are the driver's own
    types already (str, int, bool, bytes, an aware UTC datetime), as the columns' types would bind them.
    ``durable=False``: the commit does not wait for the disk (``synchronous_commit`` off for this
    transaction alone, set in the same pipeline: see ``_store_chunk`` for when that is safe).
    A row whose ``raw_sha256`` is None is hashed by the database (``sha256`` of its ``raw``)."""
    columns = tuple(rows[0])
    sql = _ROW_INSERT.get(columns)
    if sql is None:
        values = {name: bindparam(name) for name in columns}
        values["raw_sha256"] = func.coalesce(bindparam("raw_sha256", type_=String),
                                             func.encode(func.sha256(bindparam("raw")), literal_column("'hex'")))
        statement = postgresql.insert(InboundEmail).values(values) \
            .on_conflict_do_nothing(index_elements=["mailbox", "message_key"]) \
            .returning(InboundEmail.message_key, InboundEmail.id)
        sql = _ROW_INSERT[columns] = str(statement.compile(dialect=conn.dialect))
    found: dict[str, int] = {}
    driver = conn.connection.driver_connection
    with driver.pipeline(), driver.cursor() as cursor:
        if not durable:  # set_config(..., true): this transaction only (SET LOCAL warns in an implicit one)
            driver.cursor().execute(_NOT_WAITING_FOR_DISK)  # its own cursor: its row is not among the ids
        cursor.executemany(sql, rows, returning=True)
        while True:
            for key, inbound_id in cursor.fetchall():  # a row whose key was taken returns nothing
                found.setdefault(key, inbound_id)
            if not cursor.nextset():
                return found


_NOT_WAITING_FOR_DISK = "SELECT set_config('synchronous_commit', 'off', true)"
