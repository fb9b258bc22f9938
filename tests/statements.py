"""Counting what a piece of code sends to the database: tests that pin a hot path's statements."""
from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import event


def sent_statements(session, run: Callable[[], object]) -> list[str]:
    """The SQL text of each statement ``run()`` sends through ``session``'s engine."""
    sent: list[str] = []
    engine = session.get_bind()

    def record(conn, cursor, statement, *rest):
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        run()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return sent
