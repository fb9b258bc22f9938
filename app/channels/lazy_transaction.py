"""A webhook's database transaction, opened at its first write instead of its first read.

A voice webhook mostly reads its call, works out the answer and writes once: a menu step -- the move,
its event rows and the webhook's receipt -- is one statement; a waiting turn writes nothing. Opening a
transaction costs a round trip of its own (psycopg sends BEGIN before the first statement) and so does
its COMMIT: two of a menu step's four round trips, each a wake-up of the database backend and of the
worker. Under PostgreSQL's READ COMMITTED (the desk's isolation) each statement of a transaction reads
its own fresh snapshot anyway, and the writes carry their own optimistic version checks, so reads
before the first write gain nothing from running inside the transaction.

``begin_lazily(session)`` starts the session's transaction on a connection in autocommit mode, where

- a read (a SELECT through the session that locks nothing and modifies nothing in a WITH, or SQL text
  that is a SELECT naming no lock) runs alone;
- any other statement through the session (INSERT, UPDATE, DELETE, other SQL text, a SELECT ... FOR
  UPDATE or with a data-modifying WITH) and any flush first take the connection out of autocommit, so psycopg
  opens the transaction before them and the session's commit (or rollback) ends it as usual;
- except inside ``single_write(session)``, where the caller promises that the one statement it sends
  is the transaction's only write and that the commit follows at once: one statement is atomic on its
  own, so it runs without BEGIN and COMMIT. A second write there is a programming error
  (``SingleWriteError``).

Statements are told apart from the SQL expression, before it is compiled, by session events (no
engine-wide statement hook: that would cost every request of the desk). Not recognised: SQL sent on
the session's connection directly, and a SELECT construct calling a function that needs the
transaction (a transaction-scoped advisory lock) -- a handler doing either opens the transaction first
with any write.
A rollback with no transaction opened has nothing to undo (only reads ran). Other databases (SQLite,
the embedded default) keep the ordinary transaction.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.sql.selectable import CTE, Join, Select

LAZY = "lazy_transaction.dbapi"  # session.info: the DBAPI connection of a lazily begun transaction
SINGLE = "lazy_transaction.single"  # session.info: the next write may run alone (True), or it ran ("used")
_USED = "used"
_SELECT = re.compile(r"\s*SELECT\b", re.IGNORECASE)
_LOCKS = re.compile(r"\bFOR\s+(?:NO\s+KEY\s+UPDATE|UPDATE|KEY\s+SHARE|SHARE)\b|_xact_lock", re.IGNORECASE)


class SingleWriteError(RuntimeError):
    """A second write was sent inside ``single_write``: the first is already committed on its own."""


@lru_cache(maxsize=256)
def _sql_reads_only(sql: str) -> bool:
    return bool(_SELECT.match(sql)) and not _LOCKS.search(sql)


def reads_only(statement: Any) -> bool:
    """Does this statement only read? A SELECT construct with no FOR UPDATE/SHARE and no data-modifying
    WITH (added, or in its FROM); SQL text that is a SELECT naming no lock."""
    if isinstance(statement, TextClause):
        return _sql_reads_only(statement.text)
    if not isinstance(statement, Select):
        return False
    if getattr(statement, "_for_update_arg", None) is not None or getattr(statement, "_independent_ctes", ()):
        return False
    froms = list(getattr(statement, "_from_obj", ()))
    while froms:
        item = froms.pop()
        if isinstance(item, CTE) and isinstance(item.element, UpdateBase):
            return False
        if isinstance(item, Join):
            froms += (item.left, item.right)
    return True


def install(engine: Engine) -> None:
    """Hand ``engine``'s connections back to the pool out of autocommit (once per engine)."""
    if not event.contains(engine, "checkin", _out_of_autocommit):
        event.listen(engine, "checkin", _out_of_autocommit)


def _out_of_autocommit(dbapi_connection, record) -> None:
    if getattr(dbapi_connection, "autocommit", False):
        dbapi_connection.autocommit = False


def begin_lazily(session: Session) -> bool:
    """Start ``session``'s transaction lazily (see the module's docstring). Does nothing -- and returns
    False -- when the session is already in a transaction or its database is not PostgreSQL (psycopg)."""
    if session.in_transaction():
        return False
    dialect = session.get_bind().dialect
    if dialect.name != "postgresql" or dialect.driver != "psycopg":
        return False
    dbapi_connection = session.connection().connection.dbapi_connection
    dbapi_connection.autocommit = True
    session.info[LAZY] = dbapi_connection
    return True


@contextmanager
def reading_alone(engine: Engine) -> Iterator[Connection]:
    """A connection of ``engine`` whose statements each run on their own, outside any transaction: for a
    webhook that only reads (no BEGIN, no COMMIT). With psycopg and ``install``-ed, autocommit is set on
    the DBAPI connection directly (the checkin takes it off again) rather than through SQLAlchemy's
    isolation-level option, whose bookkeeping on checkout and checkin costs more than the read."""
    if engine.dialect.driver != "psycopg" or not event.contains(engine, "checkin", _out_of_autocommit):
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            yield connection
        return
    with engine.connect() as connection:
        connection.connection.dbapi_connection.autocommit = True
        yield connection


@contextmanager
def single_write(session: Session) -> Iterator[None]:
    """Let the one write sent inside run without opening the transaction, if none is open yet. The caller
    commits right after."""
    session.info[SINGLE] = True
    try:
        yield
    finally:
        session.info.pop(SINGLE, None)


def _before_write(session: Session, dbapi_connection, what: object) -> None:
    single = session.info.get(SINGLE)
    if single == _USED:
        raise SingleWriteError(f"a second write inside single_write: {what}")
    if single:
        session.info[SINGLE] = _USED
        return
    dbapi_connection.autocommit = False  # psycopg sends BEGIN before the next statement


@event.listens_for(Session, "do_orm_execute")
def _before_statement(state: ORMExecuteState) -> None:
    dbapi_connection = state.session.info.get(LAZY)
    if dbapi_connection is None or not dbapi_connection.autocommit:
        return
    if reads_only(state.statement):
        return
    _before_write(state.session, dbapi_connection, type(state.statement).__name__)


@event.listens_for(Session, "before_flush")
def _before_flush(session: Session, flush_context, instances) -> None:
    dbapi_connection = session.info.get(LAZY)
    if dbapi_connection is not None and dbapi_connection.autocommit:
        _before_write(session, dbapi_connection, "a flush")


@event.listens_for(Session, "after_transaction_end")
def _ended(session: Session, transaction) -> None:
    if transaction.parent is None:
        session.info.pop(LAZY, None)
        session.info.pop(SINGLE, None)
