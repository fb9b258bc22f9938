"""Commit, then announce: events queued on a session are delivered only after it commits.

Listeners are plain callables ``(name, payload)`` registered at start-up (the Socket.IO fan-out, the
router's wake-up, outbound webhooks). A rollback discards what was queued, so no event ever describes
something the database does not hold.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)
Listener = Callable[[str, dict[str, Any]], None]
BatchListener = Callable[[list[tuple[str, dict[str, Any]]]], None]
_listeners: list[Listener] = []
_batch_listeners: list[BatchListener] = []  # called once per commit with all its events, after the others
PENDING_KEY = "realtime_pending"


def after_commit(session: Session, name: str, payload: dict[str, Any]) -> None:
    """Queue ``name``/``payload`` to be delivered once ``session`` commits."""
    session.info.setdefault(PENDING_KEY, []).append((name, payload))


def subscribe(listener: Listener) -> None:
    if listener not in _listeners:
        _listeners.append(listener)


def unsubscribe(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def subscribe_batch(listener: BatchListener) -> None:
    """``listener(events)`` once per commit (or direct publish) with every event it made, in order: for
    work that is cheaper done once for the lot (one message to another process instead of one each)."""
    if listener not in _batch_listeners:
        _batch_listeners.append(listener)


def publish(name: str, payload: dict[str, Any]) -> None:
    """Deliver at once to every listener; one failing listener never stops the others."""
    publish_all([(name, payload)])


def publish_all(events: list[tuple[str, dict[str, Any]]]) -> None:
    """Deliver each event to every listener, then the lot to every batch listener."""
    for name, payload in events:
        for listener in list(_listeners):
            try:
                listener(name, payload)
            except Exception:  # a listener's bug must not undo a committed state change
                log.exception("realtime listener %r failed on %s", listener, name)
    for batch in list(_batch_listeners):
        try:
            batch(events)
        except Exception:
            log.exception("realtime batch listener %r failed", batch)


COMMITTED_KEY = "realtime_committed"


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    pending = session.info.pop(PENDING_KEY, None)
    if pending:
        session.info.setdefault(COMMITTED_KEY, []).extend(pending)


@event.listens_for(Session, "after_transaction_end")
def _deliver(session: Session, transaction) -> None:
    """Delivered once the committed transaction has ended -- its connection back in the pool -- rather
    than inside the commit: listeners publish to Redis and Socket.IO, and a database connection held
    across those round trips is one more a busy web worker needs from its pool."""
    committed = session.info.pop(COMMITTED_KEY, None)
    if committed:
        publish_all(committed)


@event.listens_for(Session, "after_rollback")
def _discard(session: Session) -> None:
    session.info.pop(PENDING_KEY, None)
