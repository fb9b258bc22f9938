"""The sole writer of an Interaction's state and its event log.

Callers own the transaction: ``transition`` adds the change and the event row to the session and
queues the realtime announcement, which ``app.realtime`` sends only after the commit succeeds.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import JSON, DateTime, String, Table, bindparam, event, func, select, text, true
from sqlalchemy import column as sql_column
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from app import realtime
from app.db import UTCDateTime, utcnow
from app.interactions.models import Interaction, InteractionEvent
from app.interactions.states import State, check_transition

__all__ = ["create_interaction", "transition", "transition_now", "record_fact", "update_attributes",
           "reserve_interaction_id", "InvalidTransition", "EVENT_ROWS_KEY"]

from app.interactions.states import InvalidTransition  # noqa: E402  (re-export for callers)

# session.info: a list a caller that writes many interactions' rows at once (an email batch) sets while
# it works; the event rows are then appended to it as column values -- the caller writes them after
# the interactions, in the order logged -- instead of added to the session as objects. Never read back.
EVENT_ROWS_KEY = "interactions.event_rows"


def _log(session: Session, values: dict[str, Any]) -> InteractionEvent | None:
    """Add an event row (``values``: its columns): to the caller's list under EVENT_ROWS_KEY (None is
    returned), else to the session as an object (returned)."""
    held = session.info.get(EVENT_ROWS_KEY)
    if held is not None:
        held.append(values)
        return None
    row = InteractionEvent(**values)
    session.add(row)
    return row


def create_interaction(session: Session, *, channel: str, actor: str, external_ref: str | None = None,
                       customer_id: int | None = None, language: str = "en", direction: str = "inbound",
                       subject: str | None = None, attributes: dict[str, Any] | None = None,
                       at: datetime | None = None, interaction_id: int | None = None) -> Interaction:
    """Add a new Interaction in state ``new`` with its first event row. Does not commit.
    ``interaction_id``: an id the caller reserved from the table's sequence; the interaction is then
    written with the caller's next flush (none here), so a batch writes all its rows in one INSERT."""
    at = at or utcnow()
    interaction = Interaction(channel=channel, direction=direction, state=State.NEW, external_ref=external_ref,
                              customer_id=customer_id, language=language, subject=subject,
                              attributes=dict(attributes or {}), created_at=at, state_changed_at=at)
    session.add(interaction)
    if interaction_id is None:
        session.flush()
    else:
        interaction.id = interaction_id
    _log(session, {"interaction_id": interaction.id, "kind": "created", "from_state": None, "to_state": State.NEW,
                   "actor": actor, "reason": "created", "data": {"channel": channel}, "occurred_at": at})
    realtime.after_commit(session, "interaction.created", {"id": interaction.id, "channel": channel,
                                                           "state": State.NEW})
    return interaction


_NEXT_ID = text("SELECT nextval(pg_get_serial_sequence('interactions', 'id'))")


def reserve_interaction_id(session: Session) -> int | None:
    """An id drawn from the interactions' sequence for ``create_interaction(interaction_id=...)`` (one
    statement), so a new interaction is inserted once, with everything the transaction sets on it, at
    the caller's flush. None where the database has no sequences (SQLite): create without an id."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    return session.scalar(_NEXT_ID)


def transition(session: Session, interaction: Interaction, to_state: str, *, actor: str, reason: str = "",
               data: dict[str, Any] | None = None, at: datetime | None = None) -> InteractionEvent | None:
    """Move ``interaction`` to ``to_state`` and log it. Raises InvalidTransition (changing nothing)
    when the state machine forbids the move. Does not commit; the event is announced after commit.
    Returns the event row (None when the session holds event rows as values: EVENT_ROWS_KEY)."""
    target = check_transition(interaction.state, to_state)
    at = at or utcnow()
    previous = interaction.state
    for column, value in _moved(interaction, target, at).items():
        setattr(interaction, column, value)
    row = _log(session, {"interaction_id": interaction.id, "kind": "transition", "from_state": previous,
                         "to_state": target, "actor": actor, "reason": reason, "data": dict(data or {}),
                         "occurred_at": at})
    _announce_move(session, interaction, previous, target, reason, at)
    return row


def _moved(interaction: Interaction, target: str, at: datetime) -> dict[str, Any]:
    """The columns a move to ``target`` sets."""
    changes: dict[str, Any] = {"state": target, "state_changed_at": at}
    if target == State.QUEUED and interaction.routing_age_origin is None:
        changes["routing_age_origin"] = at
    return changes


def _announce_move(session: Session, interaction: Interaction, previous: str, target: str, reason: str,
                   at: datetime) -> None:
    realtime.after_commit(session, "interaction.state", {
        "id": interaction.id, "channel": interaction.channel, "from": previous, "to": str(target),
        "queue": interaction.queue, "agent_id": interaction.agent_id, "reason": reason,
        "at": at.isoformat()})


def record_fact(session: Session, interaction: Interaction, kind: str, *, actor: str, reason: str = "",
                data: dict[str, Any] | None = None, at: datetime | None = None) -> InteractionEvent | None:
    """Log something that happened without a state change (hold, mute, IVR step, note). Returns the
    event row (None when the session holds event rows as values: EVENT_ROWS_KEY)."""
    return _log(session, {"interaction_id": interaction.id, "kind": kind, "from_state": interaction.state,
                          "to_state": interaction.state, "actor": actor, "reason": reason,
                          "data": dict(data or {}), "occurred_at": at or utcnow()})


def events_of(session: Session, interaction_id: int) -> list[InteractionEvent]:
    return list(session.scalars(select(InteractionEvent).where(
        InteractionEvent.interaction_id == interaction_id).order_by(InteractionEvent.id)))


# --- writes outside the unit of work (hot paths) -------------------------------------------------------

WRITTEN_KEY = "interactions.written"  # session.info flag: update_attributes wrote rows without a flush
_INTERACTIONS = Interaction.__table__
_EVENTS = InteractionEvent.__table__
_INSERT_EVENTS = _EVENTS.insert().inline()  # inline: no RETURNING of ids never read
_EVENT_COLUMNS = ("interaction_id", "kind", "from_state", "to_state", "actor", "reason", "data", "occurred_at")


@cache
def _moved_and_logged(columns: tuple[str, ...], ride: Table | None = None):
    """One statement for PostgreSQL (built once per set of columns): UPDATE the interaction at its loaded
    version (setting ``columns`` from the binds ``v_<column>``) and, only if that row was updated,
    INSERT its event rows (``b_events``: a JSON array of kind, from_state, to_state, reason, data;
    ``b_actor`` and ``b_at`` shared) -- and, with ``ride``, one row of that table (its ``interaction_id``
    the interaction's, its other columns from the binds ``r_<column>``). It returns how many
    interactions were updated (0: stale). One round trip instead of two or three."""
    moved = (_INTERACTIONS.update()
             .where(_INTERACTIONS.c.id == bindparam("b_id"), _INTERACTIONS.c.version == bindparam("b_version"))
             .values({name: bindparam(f"v_{name}") for name in columns})
             .returning(_INTERACTIONS.c.id).cte("moved"))
    rows = (func.json_to_recordset(bindparam("b_events", type_=JSON))
            .table_valued(sql_column("kind", String), sql_column("from_state", String), sql_column("to_state", String),
                          sql_column("reason", String), sql_column("data", JSON))
            .render_derived(name="event", with_types=True))
    logged = _EVENTS.insert().from_select(list(_EVENT_COLUMNS), select(
        moved.c.id, rows.c.kind, rows.c.from_state, rows.c.to_state, bindparam("b_actor", type_=String),
        rows.c.reason, rows.c.data, bindparam("b_at", type_=UTCDateTime())).select_from(moved.join(rows, true())))
    statement = select(func.count()).select_from(moved).add_cte(logged.cte("logged"))
    if ride is None:
        return statement
    names = [c.name for c in ride.columns if not c.primary_key]
    riding = ride.insert().from_select(names, select(*[
        moved.c.id if name == "interaction_id" else bindparam(f"r_{name}", type_=ride.c[name].type) for name in names
    ]).select_from(moved))
    return statement.add_cte(riding.cte("ride"))


# --- a write at once that waits for its caller's own row -----------------------------------------------
# A caller that always ends its transaction by inserting one row of its own (the voice webhooks: the
# receipt of the answer) sets DEFER_KEY in session.info; a write at once is then kept (the object already
# shows it) and sent with that row in one statement by ``write_pending``. Anything else the session sends
# first -- a query, a flush, the commit -- sends it on its own beforehand, so the transaction reads its
# own writes and logs events in the order they happened. A rollback drops it.

DEFER_KEY = "interactions.defer"
_PENDING_KEY = "interactions.pending_write"


def write_pending(session: Session, ride: tuple[Table, dict[str, Any]] | None = None) -> bool:
    """Send the write at once kept for this session, if any -- with ``ride`` (a table with an
    ``interaction_id`` column and a row for its other columns) in the same statement. False when none
    was kept (the caller writes its row itself). Raises StaleDataError, having written nothing (nor the
    riding row), when the interaction's version moved on since it was loaded."""
    pending = session.info.pop(_PENDING_KEY, None)
    if pending is None:
        return False
    interaction_id, version, columns, params = pending
    if ride is not None:
        table, row = ride
        params = {**params, **{f"r_{name}": value for name, value in row.items() if name != "interaction_id"}}
    if session.scalar(_moved_and_logged(columns, ride[0] if ride else None), params) != 1:
        raise StaleDataError(f"interaction {interaction_id} changed since it was loaded (version {version})")
    return True


@event.listens_for(Session, "do_orm_execute")
def _pending_before_statements(state) -> None:
    if _PENDING_KEY in state.session.info:
        write_pending(state.session)


@event.listens_for(Session, "before_flush")
@event.listens_for(Session, "before_commit")
def _pending_before_flush_or_commit(session: Session, *args) -> None:
    if _PENDING_KEY in session.info:
        write_pending(session)


@event.listens_for(Session, "after_soft_rollback")
def _pending_dropped(session: Session, previous_transaction) -> None:
    session.info.pop(_PENDING_KEY, None)


# --- a new interaction inserted at once (a new call) ------------------------------------------------------

_LOGGED_ROW = (("kind", String), ("from_state", String), ("to_state", String), ("actor", String), ("reason", String),
               ("data", JSON), ("occurred_at", DateTime(timezone=True)))


@cache
def _created_and_logged(columns: tuple[str, ...], ride: Table | None = None):
    """One statement for PostgreSQL: INSERT the interaction (``columns`` from the binds ``n_<column>``),
    its event rows (``b_events``: a JSON array, in order) and, with ``ride``, one row of that table (as
    in ``_moved_and_logged``); it returns how many interactions were inserted."""
    created = (_INTERACTIONS.insert()
               .values({name: bindparam(f"n_{name}", type_=_INTERACTIONS.c[name].type) for name in columns})
               .returning(_INTERACTIONS.c.id).cte("created"))
    rows = (func.json_to_recordset(bindparam("b_events", type_=JSON))
            .table_valued(*[sql_column(name, kind) for name, kind in _LOGGED_ROW])
            .render_derived(name="event", with_types=True))
    logged = _EVENTS.insert().from_select(list(_EVENT_COLUMNS), select(
        created.c.id, *[rows.c[name] for name, _ in _LOGGED_ROW]).select_from(created.join(rows, true())))
    statement = select(func.count()).select_from(created).add_cte(logged.cte("logged"))
    if ride is None:
        return statement
    names = [c.name for c in ride.columns if not c.primary_key]
    riding = ride.insert().from_select(names, select(*[
        created.c.id if name == "interaction_id" else bindparam(f"r_{name}", type_=ride.c[name].type)
        for name in names]).select_from(created))
    return statement.add_cte(riding.cte("ride"))


def _with_defaults(table: Table, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` and the Python-side column default of every column they leave out, as an INSERT
    through the unit of work would write them."""
    filled = dict(values)
    for col in table.columns:
        if col.key not in filled and col.default is not None and not col.primary_key:
            filled[col.key] = col.default.arg(None) if col.default.is_callable else col.default.arg
    return filled


def insert_new_at_once(session: Session, ride: tuple[Table, dict[str, Any]] | None = None) -> bool:
    """When all the session holds to write is one new interaction (with a reserved id) and its event
    rows -- a new call -- insert them, with ``ride`` (as in ``write_pending``), in one statement instead
    of a flush of the unit of work, and leave the interaction in the session as if loaded (its events
    leave the session: the log is append-only and never read back here). False, having done nothing,
    for anything else or without PostgreSQL (the caller flushes as usual). A retried call's id is
    refused by the database (IntegrityError), as by the flush."""
    if session.dirty or session.deleted or _PENDING_KEY in session.info:
        return False
    new = list(session.new)
    created = [obj for obj in new if type(obj) is Interaction]
    if len(created) != 1 or created[0].id is None or session.get_bind().dialect.name != "postgresql":
        return False
    interaction = created[0]
    events = sorted((obj for obj in new if type(obj) is InteractionEvent), key=lambda e: sa_inspect(e).insert_order)
    if len(events) + 1 != len(new) or any(e.interaction_id != interaction.id for e in events):
        return False
    values = _with_defaults(_INTERACTIONS, {key: value for key, value in sa_inspect(interaction).dict.items()
                                            if key in _INTERACTIONS.c})
    logged = [_with_defaults(_EVENTS, {key: value for key, value in sa_inspect(e).dict.items() if key in _EVENTS.c})
              for e in events]
    params = {"b_events": [{name: row[name].isoformat() if name == "occurred_at" else row[name]
                            for name, _ in _LOGGED_ROW} for row in logged],
              **{f"n_{name}": value for name, value in values.items()}}
    if ride is not None:
        params.update({f"r_{name}": value for name, value in ride[1].items() if name != "interaction_id"})
    with session.no_autoflush:  # these very rows are what a flush would write
        session.scalar(_created_and_logged(tuple(values), ride[0] if ride else None), params)
    for obj in new:
        session.expunge(obj)
    make_transient_to_detached(interaction)
    session.add(interaction)
    for key, value in values.items():
        set_committed_value(interaction, key, value)
    session.info[WRITTEN_KEY] = True
    return True


def _write_at_once(session: Session, interaction: Interaction, values: dict[str, Any],
                   events: Sequence[dict[str, Any]], *, actor: str, at: datetime) -> None:
    """Write ``values`` to ``interaction`` at its loaded version, and ``events`` (kind, from_state,
    to_state, reason, data) as its event rows, outside the unit of work -- one statement on PostgreSQL
    (kept for the caller's own row under DEFER_KEY), an UPDATE then one INSERT elsewhere -- and leave the
    object as if loaded after. Raises StaleDataError, having written nothing, when the row's version
    moved on since it was loaded (a kept write raises it when sent)."""
    version = interaction.version
    values = {**values, "version": version + 1}
    if session.get_bind().dialect.name == "postgresql":
        params = {"b_id": interaction.id, "b_version": version, "b_actor": actor, "b_at": at,
                  "b_events": list(events), **{f"v_{name}": value for name, value in values.items()}}
        write_pending(session)  # an earlier kept write goes first
        session.info[_PENDING_KEY] = (interaction.id, version, tuple(values), params)
        if not session.info.get(DEFER_KEY):
            write_pending(session)
    else:
        updated = session.execute(_INTERACTIONS.update().where(
            _INTERACTIONS.c.id == interaction.id, _INTERACTIONS.c.version == version).values(values)).rowcount
        if updated != 1:
            raise StaleDataError(f"interaction {interaction.id} changed since it was loaded (version {version})")
        if events:
            session.execute(_INSERT_EVENTS, [{"interaction_id": interaction.id, "actor": actor, "occurred_at": at,
                                              **event} for event in events])
    for column, value in values.items():
        set_committed_value(interaction, column, value)
    session.info[WRITTEN_KEY] = True


def update_attributes(session: Session, interaction: Interaction, changes: dict[str, Any], *,
                      language: str | None = None, facts: Sequence[tuple[str, dict[str, Any]]] = (),
                      actor: str, at: datetime | None = None) -> None:
    """Merge ``changes`` into ``interaction.attributes`` (and set its ``language``) and log ``facts``
    -- ``(kind, data)`` pairs, as ``record_fact`` logs them -- without a state change. Does not commit.

    A hot path (every step of a phone menu): for an interaction loaded unchanged, the change and its
    facts are written at once -- one statement on PostgreSQL (``_write_at_once``) -- not through the
    ORM's unit of work, and the object is left as if loaded after it (so later ORM changes in the
    transaction build on it); ``WRITTEN_KEY`` is set in ``session.info``. The mapper's optimistic check
    holds: raises StaleDataError, having written nothing, when another transaction changed the
    interaction since it was loaded. An interaction with unflushed changes, or not yet inserted, gets
    ordinary ORM changes written at the next flush."""
    attributes = dict(interaction.attributes or {})  # JSON columns change only on reassignment
    attributes.update(changes)
    language = language or interaction.language
    state = sa_inspect(interaction)
    if not state.persistent or state.modified or session.new:  # keep the event log in the order of the calls
        interaction.attributes = attributes
        interaction.language = language
        for kind, data in facts:
            record_fact(session, interaction, kind, actor=actor, data=data, at=at)
        return
    _write_at_once(session, interaction, {"attributes": attributes, "language": language}, [
        {"kind": kind, "from_state": interaction.state, "to_state": interaction.state, "reason": "",
         "data": dict(data or {})} for kind, data in facts], actor=actor, at=at or utcnow())


def transition_now(session: Session, interaction: Interaction, to_state: str, *, actor: str, reason: str = "",
                   data: dict[str, Any] | None = None, at: datetime | None = None,
                   attributes: dict[str, Any] | None = None, columns: dict[str, Any] | None = None) -> None:
    """``transition`` written at once -- the UPDATE (with ``attributes`` merged into the interaction's,
    when given) and the INSERT of the event row in one statement on PostgreSQL (``_write_at_once``) --
    instead of through the ORM's unit of work, for a webhook that has nothing else to change (a caller
    hanging up). The same checks, event row and announcement after commit; the object is left as if
    loaded after the write. ``columns``: other columns the move sets (the agent an offer names). Raises
    InvalidTransition (nothing written), StaleDataError (another transaction changed the interaction
    since it was loaded: nothing written). An interaction with unflushed changes, or pending rows in the
    session, gets ``transition`` (and the attributes and columns as ORM changes) instead. Does not commit."""
    target = check_transition(interaction.state, to_state)
    state = sa_inspect(interaction)
    if not state.persistent or state.modified or session.new:
        if attributes:
            interaction.attributes = {**(interaction.attributes or {}), **attributes}
        for column, value in (columns or {}).items():
            setattr(interaction, column, value)
        transition(session, interaction, target, actor=actor, reason=reason, data=data, at=at)
        return
    at = at or utcnow()
    previous = interaction.state
    changes = {**(columns or {}), **_moved(interaction, target, at)}
    if attributes:
        changes["attributes"] = {**(interaction.attributes or {}), **attributes}
    _write_at_once(session, interaction, changes, [{"kind": "transition", "from_state": previous, "to_state": target,
                                                    "reason": reason, "data": dict(data or {})}], actor=actor, at=at)
    _announce_move(session, interaction, previous, target, reason, at)
