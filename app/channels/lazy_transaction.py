"""A webhook's database transaction, opened at its first write instead of its first read.

A voice webhook mostly reads its call, works out the answer and writes once: a menu step -- the move,
its event rows and the webhook's receipt -- is one statement; a waiting turn writes nothing. Opening a
transaction costs a round trip of its own (psycopg sends BEGIN before the first statement) and so does
its COMMIT: two of a menu step's four round trips, each a wake-up of the database backend and of the
worker. Under PostgreSQL's READ COMMITTED (the desk's isolation) each statement of a transaction reads
its own fresh snapshot anyway, and the writes carry their own optimistic version checks, so reads
before the first write gain nothing from running inside the transaction.

``begin_lazily(session)`` starts the session's transaction on a connection in autocommit mode, where

- a plain read (a SELECT that locks nothing) runs on its own;
- anything else -- INSERT, UPDATE, DELETE, a WITH that may modify data, a SELECT ... FOR UPDATE or
  SHARE, a transaction-scoped advisory lock, other SQL -- first takes the connection out of autocommit,
  so psycopg opens the transaction before it and the session's commit (or rollback) ends it as usual;
- except inside ``single_write(session)``, where the caller promises that the one statement it sends
  is the transaction's only write and that the commit follows at once: one statement is atomic on its
  own, so it runs without BEGIN and COMMIT. A second write there is a programming error
  (``SingleWriteError``).

A rollback with no transaction opened has nothing to undo (only reads ran). Other databases (SQLite,
the embedded default) keep the ordinary transaction.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

LAZY = "desk_lazy_transaction"  # connection execution option: reads before the first write run alone
SINGLE = "desk_single_write"  # ... and the next write may run alone too (set by single_write)
_USED = "used"
_SELECT = re.compile(r"\s*SELECT\b", re.IGNORECASE)
_LOCKS = re.compile(r"\bFOR\s+(?:NO\s+KEY\s+UPDATE|UPDATE|KEY\s+SHARE|SHARE)\b|_xact_lock", re.IGNORECASE)


class SingleWriteError(RuntimeError):
    """A second write was sent inside ``single_write``: the first is already committed on its own."""


@lru_cache(maxsize=2048)  # statements are compiled once and cached: the same few strings come back
def plain_read(statement: str) -> bool:
    """Does ``statement`` only read, locking nothing that a transaction would have to hold?"""
    return bool(_SELECT.match(statement)) and not _LOCKS.search(statement)


def install(engine: Engine) -> None:
    """Watch ``engine``'s statements for the first write of a lazily begun transaction (once per engine)."""
    if not event.contains(engine, "before_cursor_execute", _open_before_first_write):
        event.listen(engine, "before_cursor_execute", _open_before_first_write)


def _open_before_first_write(conn, cursor, statement, parameters, context, executemany) -> None:
    options = conn.get_execution_options()
    if not options.get(LAZY):
        return
    dbapi_connection = cursor.connection
    if not dbapi_connection.autocommit or plain_read(statement):
        return  # the transaction is open already, or this statement needs none
    single = options.get(SINGLE)
    if single == _USED:
        raise SingleWriteError(f"a second write inside single_write: {statement[:80]!r}")
    if single:
        conn.execution_options(**{SINGLE: _USED})
        return
    dbapi_connection.autocommit = False  # psycopg sends BEGIN before this statement


def begin_lazily(session: Session) -> bool:
    """Start ``session``'s transaction lazily (see the module's docstring). Does nothing -- and returns
    False -- when the session is already in a transaction or its database is not PostgreSQL."""
    if session.in_transaction():
        return False
    dialect = session.get_bind().dialect
    if dialect.name != "postgresql" or dialect.driver != "psycopg":
        return False
    session.connection(execution_options={"isolation_level": "AUTOCOMMIT", LAZY: True})
    return True


@contextmanager
def single_write(session: Session) -> Iterator[None]:
    """Let the one write sent inside run without opening the transaction, if none is open yet. The caller
    commits right after."""
    connection = session.connection()
    if not connection.get_execution_options().get(LAZY):
        yield
        return
    connection.execution_options(**{SINGLE: True})
    try:
        yield
    finally:
        if not connection.closed:
            connection.execution_options(**{SINGLE: False})
