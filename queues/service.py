"""Routing persistence: offers, agent presence and queue membership stored in the database.

Owned by helper A2 (routing persistence). Helper A: the pure engine stays yours; extend, don't replace.

Every function here takes a SQLAlchemy ``Session`` and plain values, changes rows in the caller's
transaction and queues its realtime announcements with ``app.realtime.after_commit`` (sent only once the
caller commits). None of them commits: the caller commits on success and rolls back on any error —
that is what makes accepting an offer a single-winner compare-and-swap together with the interaction's
move to ``connected``.

Who calls what:
- channels and the IVR: ``enqueue_contact``, ``position_and_wait``, ``rescind_offers_for_abandoned``,
  ``transfer_to_queue``;
- the agent console and the wallboard: ``set_presence``, ``accept_offer``, ``reject_offer``,
  ``agent_disconnected``, ``release_agent``, ``transfer_to_queue``, ``transfer_to_agent``;
- the router (``queues.router``): ``create_offer``, ``expire_due_offers``, ``end_due_wrap_ups``,
  ``rescind_orphan_offers``, ``requeue_stranded_offered``, ``record_overflow``, ``refresh_priority``.

The router learns about every change from the announcements (``interaction.state``, ``offer.*``,
``agent.presence``, ``queue.changed``), re-reads the rows concerned and re-matches.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, String, and_, delete, func, literal, or_, select, update
from sqlalchemy.orm import Session, lazyload

from app import realtime
from app.db import UTCDateTime, utcnow
from app.interactions.models import Interaction
from app.interactions.service import record_fact, transition, transition_now
from app.interactions.states import WAITING, State
from queues.config import DEFAULT_OVERFLOW, TEXT_OVERFLOW, VOICE_OVERFLOW, RoutingConfig
from queues.models import PRESENCES, AgentState, Offer, QueueEntry
from queues.priority import PriorityInputs, base_priority, reason

BACKOFF_CAUSES = ("reject", "no_answer", "disconnect")
ROUTER_ACTOR = "router"
# A contact transferred to one agent is held for that agent this long before anyone in its queue may take it.
TRANSFER_HOLD_S = 120
STATS_KEY = "desk:routing:stats:{queue}:{channel}"  # written by the router, read by position_and_wait
_REQUEUABLE = (State.NEW, State.IVR, State.VOICEMAIL, State.CLOSED)
_SERVED = (State.CONNECTED, State.WRAP_UP, State.CLOSED)  # states of a contact an agent served


class RoutingError(Exception):
    """Base of routing's typed errors: the request was refused and nothing should be committed."""


class OfferNotAvailable(RoutingError):
    """The offer is not (any more) this agent's to answer: taken, rejected, expired or rescinded."""


class UnknownQueue(RoutingError):
    pass


class UnknownAgent(RoutingError):
    pass


class NotRoutable(RoutingError):
    """The interaction is in a state routing cannot take it from (abandoned, in wrap-up, ...)."""


# ---------------------------------------------------------------------------------------------- helpers
def _config(config: RoutingConfig | None) -> RoutingConfig:
    if config is not None:
        return config
    from flask import current_app

    return current_app.extensions["desk.config"].routing


def _check_queue(config: RoutingConfig, queue: str | None) -> str:
    if not queue or queue not in {q.name for q in config.queues}:
        raise UnknownQueue(f"unknown queue {queue!r}")
    return queue


def _wake(session: Session, *, queue: str | None, interaction_id: int | None = None,
          agent_id: int | None = None) -> None:
    """Announce (after commit) that routing has something to look at."""
    payload: dict[str, Any] = {"queue": queue}
    if interaction_id is not None:
        payload["interaction_id"] = interaction_id
    if agent_id is not None:
        payload["agent_id"] = agent_id
    realtime.after_commit(session, "queue.changed", payload)


def _fresh(session: Session, model: type, key: int, *, lock: bool = False):
    """The row as the database holds it now. Flushes first, so the session's own pending changes are
    written rather than overwritten; another transaction's change to a versioned row then surfaces as an
    error instead of being silently lost."""
    session.flush()
    return session.get(model, key, populate_existing=True, with_for_update=True if lock else None)


def _interaction(session: Session, interaction_id: int) -> Interaction | None:
    return _fresh(session, Interaction, interaction_id)


def agent_state(session: Session, agent_id: int, *, lock: bool = False) -> AgentState:
    """The agent's routing row, created (offline) when missing. ``lock`` takes a row lock (PostgreSQL)."""
    state = _fresh(session, AgentState, agent_id, lock=lock)
    if state is None:
        state = AgentState(agent_id=agent_id, presence="offline", since=utcnow(), missed_offers=0)
        session.add(state)
        session.flush()
    return state


def _staff(session: Session, agent_id: int):
    from app.auth.models import StaffUser

    staff = session.get(StaffUser, agent_id, options=[lazyload(StaffUser.skills)])  # group and role only
    if staff is None:
        raise UnknownAgent(f"no staff user {agent_id}")
    return staff


def _entry(session: Session, interaction: Interaction, queue: str, now: datetime, *,
           preferred_agent_id: int | None = None, preferred_until: datetime | None = None,
           note: str | None = None, never_queued: bool = False) -> QueueEntry:
    """(Re)start the contact's stay in ``queue``: escalation and overflow count from ``now``.
    ``never_queued``: the contact is new and was never queued, so it has no entry (no lookup)."""
    entry = None if never_queued else session.get(QueueEntry, interaction.id)
    if entry is None:
        entry = QueueEntry(interaction_id=interaction.id)
        session.add(entry)
    entry.queue, entry.enqueued_at, entry.overflowed_at = queue, now, None
    entry.preferred_agent_id, entry.preferred_until = preferred_agent_id, preferred_until
    entry.note = note[:500] if note else None
    return entry


# ---------------------------------------------------------------------------------------------- priority
@dataclass(frozen=True)
class CustomerHistory:
    """What routing looks up about a customer's past, read ahead for many customers at once (an email
    batch): their most recent contact an agent served (``customer_histories``) and the worst level of
    their open complaints. Valid while none of their contacts or complaints changed since it was read."""

    last_agent_id: int | None = None
    last_agent_at: datetime | None = None  # that contact's state_changed_at
    open_complaint_level: str | None = None


def last_served_by(session: Session, customer_ids: set[int], *, since: datetime) -> dict[int, tuple[int, datetime]]:
    """customer id -> (agent, when) of the customer's most recent contact an agent served since ``since``
    -- the contact ``_preferred_agent`` would find -- for many customers in one query."""
    if not customer_ids:
        return {}
    ranked = select(Interaction.customer_id, Interaction.agent_id, Interaction.state_changed_at, func.row_number().over(
        partition_by=Interaction.customer_id,
        order_by=(Interaction.state_changed_at.desc(), Interaction.id.desc())).label("rank")).where(
        Interaction.customer_id.in_(customer_ids), Interaction.agent_id.is_not(None),
        Interaction.state.in_(_SERVED), Interaction.state_changed_at >= since).subquery()
    rows = session.execute(select(ranked.c.customer_id, ranked.c.agent_id, ranked.c.state_changed_at)
                           .where(ranked.c.rank == 1))
    return {customer_id: (agent_id, at) for customer_id, agent_id, at in rows}


def priority_inputs(session: Session, interaction: Interaction, *, customer_tier: str | None = None,
                    customer_is_new: bool = False, history: CustomerHistory | None = None) -> PriorityInputs:
    """Tier of the customer, the level of their worst open complaint, and whether this is a callback.
    ``customer_tier``: the customer's recorded tier (``Customer.tier``) when the caller has just read
    it, so it is not read again; None reads it. ``history``: the customer's, read ahead (no lookup)."""
    tier, grades = None, ()
    if interaction.customer_id is not None:
        from app.crm.models import Customer

        tier = customer_tier if customer_tier is not None else session.scalar(
            select(Customer.tier).where(Customer.id == interaction.customer_id))
        try:
            from app.complaints.service import open_complaint_level
        except ImportError:  # a desk without the complaints domain routes on tier alone
            level = None
        else:  # a customer created in this transaction has no complaints yet
            level = None if customer_is_new else history.open_complaint_level if history is not None \
                else open_complaint_level(session, interaction.customer_id)
        grades = (level,) if level else ()
    return PriorityInputs(tier=tier, open_complaint_grades=grades, callback=is_callback(interaction))


def is_callback(interaction: Interaction) -> bool:
    return interaction.state == State.CALLBACK_PENDING or (
        interaction.state == State.OFFERED and bool((interaction.attributes or {}).get("callback_number")))


def refresh_priority(session: Session, interaction: Interaction, *, config: RoutingConfig | None = None,
                     entry: QueueEntry | None = None, customer_tier: str | None = None,
                     customer_is_new: bool = False, history: CustomerHistory | None = None) -> int:
    """Compute and store ``interaction.priority`` and ``priority_reasons`` (tier, open complaint,
    callback, overflowed in its current queue, the IVR's ``attributes['priority_bump']``). Waiting time is
    added at offer time. ``entry``: the contact's queue entry when the caller holds it (saves a reload);
    ``customer_tier``, ``customer_is_new``, ``history``: see ``priority_inputs`` and ``enqueue_contact``."""
    weights = _config(config).priority
    points, reasons = base_priority(priority_inputs(session, interaction, customer_tier=customer_tier,
                                                    customer_is_new=customer_is_new, history=history), weights)
    if weights.overflowed and _overflowed_here(session, interaction, entry):
        points += weights.overflowed
        reasons.append(reason("overflow", weights.overflowed, "Waited past the queue's maximum",
                              "等待已超过队列上限"))
    bump = (interaction.attributes or {}).get("priority_bump")
    if isinstance(bump, int) and not isinstance(bump, bool) and bump:
        points += bump
        reasons.append(reason("ivr", bump, "Priority from the phone menu", "电话菜单设定的优先级"))
    interaction.priority, interaction.priority_reasons = points, reasons
    return points


def _overflowed_here(session: Session, interaction: Interaction, entry: QueueEntry | None = None) -> bool:
    entry = entry if entry is not None else session.get(QueueEntry, interaction.id)
    return entry is not None and entry.overflowed_at is not None and entry.queue == interaction.queue


def has_callback_reason(interaction: Interaction) -> bool:
    return any(r.get("code") == "callback" for r in interaction.priority_reasons or [])


# ---------------------------------------------------------------------------------------------- queueing
def enqueue_contact(session: Session, interaction: Interaction, queue: str, *, actor: str,
                    now: datetime | None = None, config: RoutingConfig | None = None,
                    customer_tier: str | None = None, customer_is_new: bool = False,
                    history: CustomerHistory | None = None) -> Interaction:
    """Put ``interaction`` in ``queue`` to be offered to an agent, keeping its ``routing_age_origin``
    (so a contact re-entering keeps its place). From new/ivr/voicemail/closed it moves to ``queued``;
    a contact already waiting changes queue; an offered one has its offer taken back first; a connected
    one is transferred. Computes its priority. Raises UnknownQueue, NotRoutable. Does not commit.
    ``customer_tier``: the customer's recorded tier when the caller has just read it (saves a query;
    it must be ``Customer.tier`` of ``interaction.customer_id``). ``customer_is_new``: that customer was
    created in this transaction (a prospect), so has no earlier contacts or complaints to look up.
    ``history``: that customer's ``CustomerHistory``, read ahead (a new contact only: it is not among
    the contacts read), so neither is looked up here."""
    cfg = _config(config)
    _check_queue(cfg, queue)
    now = now or utcnow()
    if interaction.state == State.CONNECTED:
        return transfer_to_queue(session, interaction, queue, actor=actor, now=now, config=cfg)
    if interaction.state == State.OFFERED:
        _take_back_pending(session, interaction, now, reason="requeued")
    if interaction.state not in WAITING and interaction.state not in _REQUEUABLE:
        raise NotRoutable(f"interaction {interaction.id} is {interaction.state}")
    interaction.queue = queue
    interaction.agent_id = None
    if not customer_is_new and history is None and interaction.customer_id is not None:
        customer_tier, history = _routing_facts(session, interaction, cfg, now, customer_tier)
    preferred, until = (None, None) if customer_is_new else _preferred_agent(session, interaction, cfg, now,
                                                                             history)
    # a contact still ``new``, or in the phone menu, that never waited (no routing_age_origin: the first
    # move to ``queued`` sets it, with the entry) has no queue entry to reuse
    never_queued = interaction.state in (State.NEW, State.IVR) and interaction.routing_age_origin is None
    entry = _entry(session, interaction, queue, now, preferred_agent_id=preferred, preferred_until=until,
                   never_queued=never_queued)
    refresh_priority(session, interaction, config=cfg, entry=entry, customer_tier=customer_tier,
                     customer_is_new=customer_is_new, history=history)
    if interaction.state in WAITING:
        record_fact(session, interaction, "routing.requeued", actor=actor, data={"queue": queue}, at=now)
    else:
        transition(session, interaction, State.QUEUED, actor=actor, reason="queued", data={"queue": queue}, at=now)
    _wake(session, queue=queue, interaction_id=interaction.id)
    return interaction


def _routing_facts(session: Session, interaction: Interaction, cfg: RoutingConfig, now: datetime,
                   tier: str | None) -> tuple[str | None, CustomerHistory]:
    """What routing needs to know of a known customer -- tier (unless the caller has it), worst open
    complaint, the agent who last served them within the queue's preferred-agent window -- in one
    statement rather than three (a caller's queueing waits for each round trip). The history excludes
    this contact, so it holds for a contact re-queued as much as for a new one."""
    from app.crm.models import Customer

    customer_id = interaction.customer_id
    try:
        from app.complaints.service import open_complaint_level_of
    except ImportError:  # a desk without the complaints domain routes on tier alone
        level = literal(None, String)
    else:
        level = open_complaint_level_of(customer_id)
    queue = cfg.queue(interaction.queue)
    if queue.preferred_agent_wait_s and queue.preferred_agent_window_days:
        served = (select(Interaction.agent_id, Interaction.state_changed_at).where(
            Interaction.customer_id == customer_id, Interaction.id != interaction.id,
            Interaction.agent_id.is_not(None), Interaction.state.in_(_SERVED),
            Interaction.state_changed_at >= now - timedelta(days=queue.preferred_agent_window_days))
            .order_by(Interaction.state_changed_at.desc(), Interaction.id.desc()).limit(1))
        agent, at = (served.with_only_columns(column).scalar_subquery() for column in
                     (Interaction.agent_id, Interaction.state_changed_at))
    else:  # no preferred agent in this queue: nobody's history is looked up
        agent, at = literal(None, Integer), literal(None, UTCDateTime())
    known_tier = literal(tier, String) if tier is not None else \
        select(Customer.tier).where(Customer.id == customer_id).scalar_subquery()
    tier, worst, last_agent, last_at = session.execute(select(known_tier, level, agent, at)).one()
    return tier, CustomerHistory(last_agent_id=last_agent, last_agent_at=last_at, open_complaint_level=worst)


def _preferred_agent(session: Session, interaction: Interaction, cfg: RoutingConfig,
                     now: datetime, history: CustomerHistory | None) -> tuple[int | None, datetime | None]:
    """The agent who last served this customer within the queue's window (``history``: the customer's,
    read by ``_routing_facts`` or ahead for a batch by ``last_served_by``), if they are at work."""
    queue = cfg.queue(interaction.queue)
    if history is None or not queue.preferred_agent_wait_s or not queue.preferred_agent_window_days:
        return None, None
    since = now - timedelta(days=queue.preferred_agent_window_days)
    served = history.last_agent_at is not None and history.last_agent_at >= since
    agent_id = history.last_agent_id if served else None
    if agent_id is None:
        return None, None
    state = session.get(AgentState, agent_id)
    if state is None or state.presence not in ("available", "wrap_up"):
        return None, None
    return agent_id, now + timedelta(seconds=queue.preferred_agent_wait_s)


def transfer_to_queue(session: Session, interaction: Interaction, queue: str, *, actor: str, note: str = "",
                      now: datetime | None = None, config: RoutingConfig | None = None) -> Interaction:
    """Move a waiting, offered or connected contact to ``queue``, keeping its original place
    (``routing_age_origin``). A connected contact goes back to ``queued`` and its agent's capacity
    returns. Raises UnknownQueue, NotRoutable. Does not commit."""
    cfg = _config(config)
    _check_queue(cfg, queue)
    return _transfer(session, interaction, queue, actor=actor, note=note, now=now or utcnow(), cfg=cfg)


def transfer_to_agent(session: Session, interaction: Interaction, agent_id: int, *, actor: str, note: str = "",
                      now: datetime | None = None, config: RoutingConfig | None = None) -> Interaction:
    """Offer a waiting or connected contact to one agent: it is held for them (only they can take it)
    for ``TRANSFER_HOLD_S`` seconds, then anyone in its queue may. Keeps its place. Raises UnknownAgent,
    NotRoutable. Does not commit."""
    cfg = _config(config)
    staff = _staff(session, agent_id)
    if staff.role != "agent" or not staff.active:
        raise UnknownAgent(f"staff user {agent_id} is not an active agent")
    queue = interaction.queue if interaction.queue in {q.name for q in cfg.queues} else cfg.queues[0].name
    now = now or utcnow()
    return _transfer(session, interaction, queue, actor=actor, note=note, now=now, cfg=cfg, to_agent=agent_id)


def _transfer(session: Session, interaction: Interaction, queue: str, *, actor: str, note: str, now: datetime,
              cfg: RoutingConfig, to_agent: int | None = None) -> Interaction:
    if interaction.state == State.OFFERED:
        _take_back_pending(session, interaction, now, reason="transferred")
    data = {"queue": queue, "from_queue": interaction.queue, "note": note, "transfer": True}
    if to_agent is not None:
        data["to_agent_id"] = to_agent
    until = now + timedelta(seconds=TRANSFER_HOLD_S) if to_agent is not None else None
    if interaction.state in WAITING:
        interaction.queue = queue
        record_fact(session, interaction, "routing.transfer", actor=actor, reason="transfer", data=data, at=now)
    elif interaction.state == State.CONNECTED:
        data["from_agent_id"] = interaction.agent_id
        previous_agent = interaction.agent_id
        interaction.queue, interaction.agent_id = queue, None
        transition(session, interaction, State.QUEUED, actor=actor, reason="transfer", data=data, at=now)
        if previous_agent is not None:
            _wake(session, queue=queue, agent_id=previous_agent)
    else:
        raise NotRoutable(f"interaction {interaction.id} is {interaction.state}; only waiting or connected "
                          "contacts can be transferred")
    _entry(session, interaction, queue, now, preferred_agent_id=to_agent, preferred_until=until, note=note or None)
    if any(r.get("code") == "overflow" for r in interaction.priority_reasons or []):
        refresh_priority(session, interaction, config=cfg)  # a new queue's stay starts without the overflow
    _wake(session, queue=queue, interaction_id=interaction.id)
    return interaction


def position_and_wait(session: Session, interaction_id: int, *, config: RoutingConfig | None = None,
                      redis: Any = None) -> tuple[int | None, int | None]:
    """(1-based place among contacts waiting in the same queue and channel, estimated wait in seconds or
    None). The place uses the router's order (priority plus waiting time, then first arrival); the wait
    is announced only while the router reports its forecasts accurate enough. An offered contact is
    (1, 0); one not waiting is (None, None)."""
    cfg = _config(config)
    interaction = session.get(Interaction, interaction_id)
    if interaction is None:
        return None, None
    if interaction.state == State.OFFERED:
        return 1, 0
    if interaction.state not in WAITING or interaction.queue is None or interaction.routing_age_origin is None:
        return None, None
    position = 1 + _contacts_ahead(session, interaction, float(cfg.priority.per_minute_waiting))
    return position, _estimated_wait(redis, cfg, interaction.queue, interaction.channel, position)


def _contacts_ahead(session: Session, interaction: Interaction, w: float) -> int:
    """How many contacts in the same queue and channel the router takes before this one, counted in the
    database. The router's order is the score ``priority + w * waited_minutes`` (higher first), then
    arrival, then id; for a contact of priority ``p`` that is ``origin < mine + 60 * (p - my_priority) / w``,
    so one count with a threshold per distinct priority (few: tiers, complaint levels, bumps) does it
    without reading every waiting row."""
    prio = func.coalesce(Interaction.priority, 0)
    same_queue = (Interaction.state.in_(tuple(WAITING)), Interaction.queue == interaction.queue,
                  Interaction.channel == interaction.channel, Interaction.id != interaction.id,
                  Interaction.routing_age_origin.is_not(None))
    mine_p, mine_at = interaction.priority or 0, interaction.routing_age_origin
    ahead = []
    for (p,) in session.execute(select(prio).where(*same_queue).distinct()):
        if p == mine_p:
            tie = (Interaction.routing_age_origin == mine_at) & (Interaction.id < interaction.id)
            ahead.append((prio == p) & ((Interaction.routing_age_origin < mine_at) | tie))
        elif w <= 0:
            if p > mine_p:
                ahead.append(prio == p)
        else:
            threshold = mine_at + timedelta(seconds=60.0 * (p - mine_p) / w)
            origin_ahead = Interaction.routing_age_origin < threshold if p > mine_p \
                else Interaction.routing_age_origin <= threshold
            ahead.append((prio == p) & origin_ahead)
    if not ahead:
        return 0
    return session.scalar(select(func.count()).select_from(Interaction).where(*same_queue, or_(*ahead))) or 0


def _estimated_wait(redis: Any, cfg: RoutingConfig, queue: str, channel: str, position: int) -> int | None:
    from queues.ewt import forecast_wait_s

    if redis is None:
        try:
            from flask import current_app

            redis = current_app.extensions["desk.redis"]
        except (RuntimeError, KeyError):
            return None
    raw = redis.get(STATS_KEY.format(queue=queue, channel=channel))
    if not raw:
        return None
    stats = json.loads(raw)
    fresh = utcnow().timestamp() - float(stats.get("at", 0)) <= 3 * cfg.router.lock_ttl_s
    if not fresh or not stats.get("announceable"):
        return None
    wait = forecast_wait_s(position, int(stats["staffed"]), int(stats["free"]), float(stats["handle_time_s"]))
    return None if wait is None else int(round(wait))


# ---------------------------------------------------------------------------------------------- agents
def set_presence(session: Session, agent_id: int, presence: str, reason: str | None = None, *,
                 now: datetime | None = None, config: RoutingConfig | None = None) -> AgentState:
    """Set the agent's presence (offline | available | break | wrap_up; ``reason`` kept for break).
    Becoming available starts their idle time and clears missed offers and back-off; going offline or on
    break takes back their pending offers (the contacts keep their place, the agent is not penalised).
    Raises UnknownAgent, RoutingError for an unknown presence. Does not commit."""
    if presence not in PRESENCES:
        raise RoutingError(f"unknown presence {presence!r}")
    cfg = _config(config)
    _staff(session, agent_id)
    now = now or utcnow()
    state = agent_state(session, agent_id, lock=True)
    _change_presence(session, state, presence, reason, now, cfg)
    if presence in ("offline", "break"):
        for offer in _pending_offers_of(session, agent_id):
            _retire(session, offer, "rescinded", f"agent_{presence}", now)
    _wake(session, queue=None, agent_id=agent_id)
    return state


def _change_presence(session: Session, state: AgentState, presence: str, reason_code: str | None, now: datetime,
                     cfg: RoutingConfig, *, group: str | None = None) -> None:
    reason_code = reason_code if presence == "break" else None
    if presence == "available" and state.presence != "available":
        state.idle_since, state.missed_offers, state.backoff_until = now, 0, None
    changed = (state.presence, state.reason) != (presence, reason_code)
    state.presence, state.reason = presence, reason_code
    if presence == "wrap_up":
        from app.auth.models import StaffUser

        if group is None:
            group = session.scalar(select(StaffUser.agent_group).where(StaffUser.id == state.agent_id))
        group = group or "default"
        state.wrap_up_until = now + timedelta(seconds=cfg.agent_group(group).wrap_up_s)
    else:
        state.wrap_up_until = None
    if changed:
        _log_presence(session, state.agent_id, presence, reason_code, now)
    if changed or presence == "wrap_up":
        state.since = now
        realtime.after_commit(session, "agent.presence", {
            "agent_id": state.agent_id, "presence": presence, "reason": reason_code, "at": now.isoformat(),
            "since": now.isoformat(),
            "wrap_up_until": state.wrap_up_until.isoformat() if state.wrap_up_until else None})


def _log_presence(session: Session, agent_id: int, presence: str, reason: str | None, now: datetime) -> None:
    """The presence history row (occupancy and time in state are computed from it), in the same
    transaction as the change it records: it can neither miss a change nor hold one that was rolled back,
    and costs no second transaction after the commit."""
    from app.reports.models import AgentPresenceLog

    session.add(AgentPresenceLog(agent_id=agent_id, presence=presence, reason=reason, occurred_at=now))


def agent_disconnected(session: Session, agent_id: int, *, now: datetime | None = None,
                       config: RoutingConfig | None = None) -> list[Offer]:
    """The agent's console is gone: each pending offer goes back (cause ``disconnect``, with its back-off)
    and the agent goes offline. Returns the offers taken back. Does not commit."""
    cfg = _config(config)
    now = now or utcnow()
    taken = []
    for offer in _pending_offers_of(session, agent_id):
        if _retire(session, offer, "rejected", "disconnect", now):
            taken.append(offer)
            _penalise(session, agent_id, "disconnect", now, cfg)
    state = agent_state(session, agent_id, lock=True)
    _change_presence(session, state, "offline", None, now, cfg)
    _wake(session, queue=None, agent_id=agent_id)
    return taken


def release_agent(session: Session, interaction: Interaction, *, now: datetime | None = None,
                  config: RoutingConfig | None = None, wrapped_up: bool = False) -> AgentState | None:
    """The agent finished ``interaction`` (it left ``connected``): its capacity returns at once (load is
    derived from offered and connected contacts) and an available agent goes to wrap-up for their
    group's ``wrap_up_s``, after which the router makes them available again. Does not commit.

    ``wrapped_up``: the agent closed the contact in the same breath (disposition given as the call
    ended), so there is no wrap-up to time: an available agent stays available and starts idling now,
    as one coming back from wrap-up would -- without a zero-length wrap-up in their presence history."""
    if interaction.agent_id is None:
        return None
    cfg = _config(config)
    now = now or utcnow()
    state = agent_state(session, interaction.agent_id, lock=True)
    if wrapped_up:
        if state.presence == "available":
            state.idle_since, state.missed_offers, state.backoff_until = now, 0, None
    else:
        staff = _staff(session, interaction.agent_id)
        if state.presence == "available" and cfg.agent_group(staff.agent_group).wrap_up_s > 0:
            _change_presence(session, state, "wrap_up", None, now, cfg, group=staff.agent_group)
    _wake(session, queue=interaction.queue, interaction_id=interaction.id, agent_id=interaction.agent_id)
    return state


def end_due_wrap_ups(session: Session, *, now: datetime | None = None,
                     config: RoutingConfig | None = None) -> list[AgentState]:
    """Agents whose wrap-up timer ran out become available. Does not commit."""
    cfg = _config(config)
    now = now or utcnow()
    due = list(session.scalars(select(AgentState).where(AgentState.presence == "wrap_up",
                                                        AgentState.wrap_up_until <= now)))
    for state in due:
        _change_presence(session, state, "available", None, now, cfg)
    return due


def agent_load(session: Session, agent_id: int, *, config: RoutingConfig | None = None) -> int:
    """Capacity the agent's offered and connected contacts use (busy is derived from this)."""
    return _group_and_load(session, agent_id, _config(config))[1]


def _group_and_load(session: Session, agent_id: int, cfg: RoutingConfig):
    """The agent's group and the capacity their offered and connected contacts use, in one statement
    (the staff row joined to their open work)."""
    from app.auth.models import StaffUser

    open_work = and_(Interaction.agent_id == StaffUser.id, Interaction.state.in_((State.OFFERED, State.CONNECTED)))
    rows = session.execute(select(StaffUser.agent_group, Interaction.channel)
                           .outerjoin(Interaction, open_work).where(StaffUser.id == agent_id)).all()
    if not rows:
        raise UnknownAgent(f"no staff user {agent_id}")
    group = cfg.agent_group(rows[0].agent_group)
    return group, sum(group.costs.get(channel, 0) for _, channel in rows if channel is not None)


def _penalise(session: Session, agent_id: int, cause: str, now: datetime, cfg: RoutingConfig) -> None:
    """Back the agent off for ``cause``; after N misses in a row, send them on break (missed_offers)."""
    state = agent_state(session, agent_id, lock=True)
    state.backoff_until = now + timedelta(seconds=cfg.backoff_s.get(cause, 0))
    state.missed_offers = (state.missed_offers or 0) + 1
    group = cfg.agent_group(_staff(session, agent_id).agent_group)
    if state.missed_offers >= group.missed_offers_to_break and state.presence == "available":
        _change_presence(session, state, "break", "missed_offers", now, cfg)


# ---------------------------------------------------------------------------------------------- offers
def _pending_offers_of(session: Session, agent_id: int) -> list[Offer]:
    return list(session.scalars(select(Offer).where(Offer.agent_id == agent_id, Offer.status == "pending")
                                .order_by(Offer.id).execution_options(populate_existing=True)))


def _pending_offer_for(session: Session, interaction_id: int) -> Offer | None:
    return session.scalar(select(Offer).where(Offer.interaction_id == interaction_id, Offer.status == "pending")
                          .execution_options(populate_existing=True))


def _cas(session: Session, offer: Offer, status: str, now: datetime, *, cause: str | None = None) -> bool:
    """Move a pending offer to ``status`` if nobody else answered it first (version unchanged)."""
    stmt = update(Offer).where(Offer.id == offer.id, Offer.status == "pending", Offer.version == offer.version)
    # RETURNING refreshes the loaded offer in the same round trip (no separate refresh SELECT).
    won = session.scalars(stmt.values(status=status, version=Offer.version + 1, answered_at=now, cause=cause)
                          .returning(Offer).execution_options(synchronize_session=False, populate_existing=True)
                          ).one_or_none()
    return won is not None


_EVENT_FOR = {"rejected": "offer.rejected", "expired": "offer.expired", "rescinded": "offer.rescinded"}


def _retire(session: Session, offer: Offer, status: str, cause: str, now: datetime, *,
            requeue: bool = True) -> bool:
    """Take a pending offer back (rejected | expired | rescinded). With ``requeue`` the contact goes back
    to the waiting state it was offered from, keeping its place. False when someone answered first."""
    if not _cas(session, offer, status, now, cause=cause):
        return False
    interaction = _interaction(session, offer.interaction_id)
    if interaction is not None and interaction.state == State.OFFERED and interaction.agent_id == offer.agent_id:
        interaction.agent_id = None
        if requeue:
            transition(session, interaction, offer.from_state, actor=ROUTER_ACTOR, reason=f"offer {cause}",
                       data={"queue": interaction.queue, "agent_id": offer.agent_id, "cause": cause,
                             "offer_id": offer.id}, at=now)
    payload = {"offer_id": offer.id, "interaction_id": offer.interaction_id, "agent_id": offer.agent_id,
               "reason": cause, "cause": cause, "queue": offer.queue, "channel": offer.channel}
    realtime.after_commit(session, _EVENT_FOR[status], payload)
    return True


def _take_back_pending(session: Session, interaction: Interaction, now: datetime, *, reason: str) -> None:
    offer = _pending_offer_for(session, interaction.id)
    if offer is not None:
        _retire(session, offer, "rescinded", reason, now)


def accept_offer(session: Session, offer_id: int, agent_id: int, *, now: datetime | None = None) -> Offer:
    """The agent takes the offer: a single-winner compare-and-swap on the offer row (pending, same
    version, lease not run out), then the interaction moves to ``connected`` with this agent. A double
    click, a second tab or a late accept raises OfferNotAvailable; the caller must then roll back.
    Does not commit."""
    now = now or utcnow()
    session.flush()
    # The compare-and-swap is the read: one UPDATE takes the offer only while it is pending for this
    # agent and its lease runs, and brings the row back. A concurrent answer holds the row's lock until
    # it commits; this UPDATE then finds the offer no longer pending and takes nothing.
    offer = session.scalars(
        update(Offer).where(Offer.id == offer_id, Offer.agent_id == agent_id, Offer.status == "pending",
                            Offer.expires_at > now)
        .values(status="accepted", version=Offer.version + 1, answered_at=now, cause=None).returning(Offer)
        .execution_options(synchronize_session=False, populate_existing=True)).one_or_none()
    if offer is None:
        raise OfferNotAvailable(f"offer {offer_id} is not pending for agent {agent_id}")
    interaction = _interaction(session, offer.interaction_id)
    if interaction is None or interaction.state != State.OFFERED or interaction.agent_id != agent_id:
        raise OfferNotAvailable(f"offer {offer_id}: the contact is no longer offered")
    transition(session, interaction, State.CONNECTED, actor=f"agent:{agent_id}", reason="offer accepted",
               data={"agent_id": agent_id, "offer_id": offer.id, "queue": interaction.queue}, at=now)
    # Plain statements: nothing later in the accept reads these rows back.
    session.execute(update(AgentState).where(AgentState.agent_id == agent_id, AgentState.missed_offers != 0)
                    .values(missed_offers=0).execution_options(synchronize_session=False))
    session.execute(delete(QueueEntry).where(QueueEntry.interaction_id == interaction.id)
                    .execution_options(synchronize_session=False))
    realtime.after_commit(session, "offer.accepted", {
        "offer_id": offer.id, "interaction_id": interaction.id, "agent_id": agent_id,
        "channel": interaction.channel, "queue": interaction.queue})
    return offer


def reject_offer(session: Session, offer_id: int, agent_id: int, cause: str = "reject", *,
                 now: datetime | None = None, config: RoutingConfig | None = None) -> Offer:
    """The agent declines (``reject``), did not answer (``no_answer``) or lost their console
    (``disconnect``): the contact waits again in its original place, the agent is backed off for the
    cause and, after N misses in a row, sent on break with reason ``missed_offers``. Raises
    OfferNotAvailable when the offer is not pending for this agent. Does not commit."""
    if cause not in BACKOFF_CAUSES:
        raise RoutingError(f"unknown cause {cause!r}")
    cfg = _config(config)
    now = now or utcnow()
    offer = _fresh(session, Offer, offer_id)
    if offer is None or offer.agent_id != agent_id or offer.status != "pending":
        raise OfferNotAvailable(f"offer {offer_id} is not pending for agent {agent_id}")
    if not _retire(session, offer, "expired" if cause == "no_answer" else "rejected", cause, now):
        raise OfferNotAvailable(f"offer {offer_id} was answered first elsewhere")
    _penalise(session, agent_id, cause, now, cfg)
    _wake(session, queue=offer.queue, interaction_id=offer.interaction_id, agent_id=agent_id)
    return offer


def rescind_offers_for_abandoned(session: Session, interaction: Interaction, *,
                                 now: datetime | None = None) -> list[Offer]:
    """The customer left: every pending offer for ``interaction`` is rescinded in the caller's
    transaction (the agent's console drops it on ``offer.rescinded``). The caller moves the interaction
    on (abandoned, closed). Does not commit."""
    now = now or utcnow()
    offers = list(session.scalars(select(Offer).where(Offer.interaction_id == interaction.id,
                                                      Offer.status == "pending")
                                  .execution_options(populate_existing=True)))
    done = [o for o in offers if _retire(session, o, "rescinded", "abandoned", now, requeue=False)]
    if done and interaction.state == State.OFFERED:
        interaction.agent_id = None
    if done:
        _wake(session, queue=interaction.queue, interaction_id=interaction.id)
    return done


def create_offer(session: Session, *, interaction_id: int, agent_id: int, expires_at: datetime, cost: int,
                 priority: int, priority_reasons: list[dict], trace: dict, now: datetime | None = None,
                 config: RoutingConfig | None = None, interaction: Interaction | None = None) -> Offer:
    """The router reserves a waiting contact for an agent: an Offer row (pending, leased until
    ``expires_at``), the interaction moves to ``offered`` with the agent, and ``offer.created`` is
    announced after commit. Raises NotRoutable when the database no longer agrees (contact not waiting,
    agent not available or without room); the partial unique index refuses a second pending offer.

    ``interaction``: the contact as the caller read it moments ago in this session (the router's sync),
    so it is not read again; its version guards the write, so a change made since fails the flush
    (StaleDataError) instead of being overwritten. Every round trip here is on the way from a caller
    queueing to an agent's screen: the agent's row is checked, locked and marked in one statement, and
    their group and open work read in another."""
    cfg = _config(config)
    now = now or utcnow()
    if interaction is None:
        interaction = _interaction(session, interaction_id)
    if interaction is None or interaction.state not in WAITING:
        raise NotRoutable(f"interaction {interaction_id} is not waiting")
    claimed = session.execute(update(AgentState).where(AgentState.agent_id == agent_id,
                                                       AgentState.presence == "available")
                              .values(idle_since=now).execution_options(synchronize_session="evaluate"))
    if claimed.rowcount != 1:  # the UPDATE also holds the row's lock until commit, as FOR UPDATE did
        raise NotRoutable(f"agent {agent_id} is not available")
    group, load = _group_and_load(session, agent_id, cfg)
    if load + cost > group.capacity:
        raise NotRoutable(f"agent {agent_id} has no room for {interaction.channel}")
    offer = Offer(interaction_id=interaction.id, agent_id=agent_id, status="pending", queue=interaction.queue,
                  channel=interaction.channel, from_state=str(interaction.state), cost=cost, priority=priority,
                  priority_reasons=priority_reasons, trace=trace, created_at=now, expires_at=expires_at, version=1)
    session.add(offer)
    session.flush()
    # the move and its event in one statement (PostgreSQL) when the contact is as loaded
    transition_now(session, interaction, State.OFFERED, actor=ROUTER_ACTOR, reason="offered",
                   data={"agent_id": agent_id, "offer_id": offer.id, "queue": interaction.queue}, at=now,
                   columns={"agent_id": agent_id})
    if interaction.customer_id is not None:
        # The offer shows the agent the customer's record (its screen-pop): audited with the offer, in
        # its transaction, rather than by a second one wherever the pop is built.
        from app.crm.view360 import record_customer_viewed

        record_customer_viewed(session, actor=f"staff:{agent_id}", customer_id=interaction.customer_id,
                               via="screenpop")
    realtime.after_commit(session, "offer.created", {
        "offer_id": offer.id, "interaction_id": interaction.id, "agent_id": agent_id,
        "expires_at": expires_at.isoformat(), "priority": priority, "priority_reasons": priority_reasons,
        "channel": interaction.channel, "queue": interaction.queue})
    return offer


def expire_due_offers(session: Session, *, now: datetime | None = None,
                      config: RoutingConfig | None = None) -> list[Offer]:
    """The sweeper: every pending offer whose lease ran out is taken back as ``no_answer`` (the contact
    keeps its place, the agent is backed off and may go on break). Does not commit."""
    cfg = _config(config)
    now = now or utcnow()
    due = list(session.scalars(select(Offer).where(Offer.status == "pending", Offer.expires_at <= now)
                               .order_by(Offer.expires_at, Offer.id).execution_options(populate_existing=True)))
    expired = []
    for offer in due:
        if _retire(session, offer, "expired", "no_answer", now):
            _penalise(session, offer.agent_id, "no_answer", now, cfg)
            expired.append(offer)
    return expired


def rescind_orphan_offers(session: Session, *, now: datetime | None = None) -> list[Offer]:
    """Pending offers whose contact is no longer offered to that agent (it left without anyone
    rescinding) are rescinded, so no agent stays reserved for nothing. Does not commit."""
    now = now or utcnow()
    rows = session.execute(select(Offer, Interaction.state, Interaction.agent_id)
                           .join(Interaction, Interaction.id == Offer.interaction_id)
                           .where(Offer.status == "pending")).all()
    gone = []
    for offer, state, holder in rows:
        orphaned = state != State.OFFERED or holder != offer.agent_id
        if orphaned and _retire(session, offer, "rescinded", "orphaned", now, requeue=False):
            gone.append(offer)
    return gone


def requeue_stranded_offered(session: Session, *, now: datetime | None = None) -> list[Interaction]:
    """The sweeper's other half: a contact left ``offered`` with no pending offer (a crash between
    writes, or a row changed by hand) goes back to the waiting state its last offer took it from
    (``queued`` when there is none), keeping its ``routing_age_origin`` and so its place; its queue
    entry is kept, or made anew from now if missing. Returns the contacts moved. Does not commit; a
    concurrent change to one of them surfaces as StaleDataError at flush (the caller rolls back and
    the next sweep tries again)."""
    now = now or utcnow()
    pending = select(Offer.id).where(Offer.interaction_id == Interaction.id, Offer.status == "pending")
    stranded = list(session.scalars(select(Interaction).where(Interaction.state == State.OFFERED, ~pending.exists())
                                    .order_by(Interaction.id).execution_options(populate_existing=True)))
    moved = []
    for interaction in stranded:
        last = session.scalar(select(Offer.from_state).where(Offer.interaction_id == interaction.id)
                              .order_by(Offer.id.desc()).limit(1))
        target = last if last in (State.QUEUED, State.CALLBACK_PENDING) else State.QUEUED
        previous_agent, interaction.agent_id = interaction.agent_id, None
        transition(session, interaction, target, actor=ROUTER_ACTOR, reason="offer lost",
                   data={"queue": interaction.queue, "agent_id": previous_agent, "cause": "stranded"}, at=now)
        if interaction.queue and session.get(QueueEntry, interaction.id) is None:
            session.add(QueueEntry(interaction_id=interaction.id, queue=interaction.queue, enqueued_at=now))
        _wake(session, queue=interaction.queue, interaction_id=interaction.id, agent_id=previous_agent)
        moved.append(interaction)
    return moved


def record_overflow(session: Session, interaction: Interaction, action: str, *,
                    now: datetime | None = None, config: RoutingConfig | None = None) -> None:
    """The contact waited its queue's maximum: act on the overflow ``action`` once, so nothing waits
    forever, and announce ``routing.overflow`` ({interaction_id, action, queue, channel}).

    - A call still ``queued`` leaves the queue: ``voicemail`` moves it to voicemail; ``callback`` to
      ``callback_pending``, which keeps its place (``routing_age_origin``).
    - Chat, email and task are never dropped by routing: they stay waiting, are marked overflowed once
      (``QueueEntry.overflowed_at``, so the timer never fires again in this queue) and move up by
      ``routing.priority.overflowed`` points with an explained reason, so the next free agent who can
      take them does. The action (``message`` or ``case``) travels in the event for the channel's own
      code: the chat code may end the chat and keep what the customer wrote as an email case, the email
      code may send a holding reply. Why not close or convert here: routing does not own the
      conversation, and a contact the channel leaves alone must still reach an agent.
    - A call that stays waiting (already a callback) is treated like a text contact.

    An ``action`` that does not fit the channel is replaced by the channel's default
    (``queues.config.DEFAULT_OVERFLOW``). Does not commit."""
    now = now or utcnow()
    fits = VOICE_OVERFLOW if interaction.channel == "voice" else TEXT_OVERFLOW
    if action not in fits:
        action = DEFAULT_OVERFLOW.get(interaction.channel, "case")
    entry = session.get(QueueEntry, interaction.id)
    if entry is None:
        entry = QueueEntry(interaction_id=interaction.id, queue=interaction.queue, enqueued_at=now)
        session.add(entry)
    entry.overflowed_at = now
    record_fact(session, interaction, "routing.overflow", actor=ROUTER_ACTOR, reason=action,
                data={"queue": interaction.queue, "action": action}, at=now)
    if interaction.channel == "voice" and interaction.state == State.QUEUED:
        target = {"voicemail": State.VOICEMAIL, "callback": State.CALLBACK_PENDING}[action]
        transition(session, interaction, target, actor=ROUTER_ACTOR, reason="overflow",
                   data={"queue": interaction.queue, "action": action}, at=now)
    if interaction.state in WAITING:
        session.flush()
        refresh_priority(session, interaction, config=config)
        _wake(session, queue=interaction.queue, interaction_id=interaction.id)
    realtime.after_commit(session, "routing.overflow", {"interaction_id": interaction.id, "action": action,
                                                        "queue": interaction.queue, "channel": interaction.channel})


def waiting_counts(session: Session) -> dict[str, int]:
    """Contacts waiting per queue (queued or callback_pending)."""
    rows = session.execute(select(Interaction.queue, func.count()).where(Interaction.state.in_(tuple(WAITING)))
                           .group_by(Interaction.queue))
    return {queue: count for queue, count in rows if queue}
