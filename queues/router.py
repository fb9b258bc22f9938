"""The router: keeps the in-memory engine (``queues.engine``) in step with the database and writes the
offers it decides.

One cycle (``Router.cycle``):
1. sync: the contacts and agents named by realtime hints since the last cycle are re-read and put in the
   engine as the database holds them (everything at start, and a full reconcile every
   ``FULL_SYNC_S`` seconds in case a hint was lost) — so killing the router loses nothing;
2. ``engine.match(now)``; every offer is written (``queues.service.create_offer``) and committed before
   ``offer.created`` is announced; where the database disagrees the offer is dropped and both sides are
   re-read next cycle;
3. the sweeper (a live router: at most every ``LIVE_SWEEP_S``), in the database, after the offers so that
   no caller waits for it: wrap-up timers that ran out, leases nobody answered, offers whose contact left
   without anyone rescinding them, contacts left ``offered`` without a pending offer (back to waiting in
   their place) (each a short transaction); what it changes comes back as hints for the next cycle;
4. per queue and channel, staffing and handle times go to Redis for ``position_and_wait``.

Wake-ups: every process subscribes ``on_event`` to ``app.realtime``; hints land in this process's hub,
and with ``REDIS_URL`` set they are also published on a Redis channel the router process listens to.
The loop also ticks every ``routing.router.tick_s``. One router is active per deployment: it holds a
Redis lock, renewed every cycle; others stand by and take over (rebuilding from the database) when the
lock lapses. Embedded default: ``init_app`` (an INITIALISER) runs the loop on a daemon thread unless
``ROUTER_THREAD`` is False or the app is TESTING. Tests call ``run_once(app)``.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, UTC

import click
from flask import Flask
from sqlalchemy import and_, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from app import realtime
from app.collector import settle_collector
from app.db import utcnow
from app.wiring import pubsub_channel
from app.interactions.models import Interaction
from app.interactions.states import WAITING, State
from queues import service
from queues.engine import MatchResult, RoutingEngine
from queues.matching import Contact
from queues.models import AgentState, Offer, QueueEntry

log = logging.getLogger(__name__)

FULL_SYNC_S = 60.0
HINT_CHANNEL = "desk:routing:hints"
HUB_LIMIT = 50_000  # ids a hub holds before it forgets them all and asks for a full re-read
LOCK_KEY = "desk:router:leader"
LIVE_SWEEP_S = 0.25  # a live router runs the database sweeper at most this often (leases are seconds long)
LIVE_REPAIR_S = 2.0  # and its repairs (orphaned offers, stranded contacts) at most this often
LIVE_STATS_S = 1.0  # and refreshes the wait-announcement figures in Redis at most this often
RENEW_S = 1.0  # the active router re-checks its lock this often (well inside ``lock_ttl_s``)
_LIVE = (State.QUEUED, State.CALLBACK_PENDING, State.OFFERED, State.CONNECTED)
_RETRYABLE = (IntegrityError, StaleDataError, OperationalError, service.RoutingError)


def _ts(at: datetime | None, default: float = 0.0) -> float:
    return at.timestamp() if at is not None else default


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


# ---------------------------------------------------------------------------------------------- hints
class _Hub:
    """Contacts and agents to re-read, collected from realtime events (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.interactions: set[int] = set()
        self.agents: set[int] = set()
        self.overflowed = False

    def add(self, interaction_id: int | None = None, agent_id: int | None = None) -> None:
        with self.lock:
            if interaction_id is not None:
                self.interactions.add(int(interaction_id))
            if agent_id is not None:
                self.agents.add(int(agent_id))
            if len(self.interactions) + len(self.agents) > HUB_LIMIT:
                # Nobody drains here (a web process, which only forwards) or the router is far behind:
                # forget the ids rather than grow without end; a draining router then reads everything.
                self.interactions, self.agents, self.overflowed = set(), set(), True
        self.wake.set()

    def drain(self) -> tuple[set[int], set[int]]:
        with self.lock:
            found = (self.interactions, self.agents)
            self.interactions, self.agents = set(), set()
        return found

    def take_overflow(self) -> bool:
        with self.lock:
            overflowed, self.overflowed = self.overflowed, False
        return overflowed


_hub = _Hub()
_forward: dict[str, object] = {}  # "redis": client to publish hints to other processes
_channel = {"name": HINT_CHANNEL}  # named for the deployment's Redis database (app.wiring.pubsub_channel)


def hint_channel() -> str:
    """The Redis channel hints travel on for this app's Redis database."""
    return _channel["name"]


def _ids(name: str, payload: dict) -> tuple[int | None, int | None]:
    interaction_id = payload.get("interaction_id")
    if interaction_id is None and name.startswith("interaction."):
        interaction_id = payload.get("id")
    agent_id = payload.get("agent_id")
    return (interaction_id if isinstance(interaction_id, int) else None,
            agent_id if isinstance(agent_id, int) else None)


def _hint(name: str, payload: dict) -> tuple[int | None, int | None] | None:
    """What a committed change asks routing to re-read: (interaction, agent), or None when nothing."""
    if not (name == "interaction.state" or name.startswith("offer.") or name in ("agent.presence", "queue.changed")):
        return None
    if name == "interaction.state" and payload.get("from") not in _LIVE and payload.get("to") not in _LIVE:
        return None  # e.g. new -> ivr, ivr -> abandoned, wrap_up -> closed: nothing the engine holds or will hold
    if name == "offer.created" or (name == "interaction.state" and payload.get("to") == State.OFFERED):
        return None  # only the router offers (create_offer): its engine made the offer it would re-read
    return _ids(name, payload)


def on_event(name: str, payload: dict) -> None:
    """Realtime listener: a committed change routing may care about becomes a hint in this process."""
    hint = _hint(name, payload)
    if hint is None:
        return
    if hint == (None, None):
        _hub.wake.set()
        return
    _hub.add(*hint)


def forward_hints(events: list[tuple[str, dict]]) -> None:
    """Realtime batch listener: one commit's hints go to the router process as one Redis message (one
    round trip here, one wake-up there, however many events the commit made)."""
    client = _forward.get("redis")
    if client is None:
        return
    hints = []
    for name, payload in events:
        hint = _hint(name, payload)
        if hint is not None and hint != (None, None) and list(hint) not in hints:
            hints.append(list(hint))
    if not hints:
        return
    try:
        client.publish(_channel["name"], json.dumps({"h": hints}))
    except Exception:  # Redis down: the router's tick and full sync still find the change
        log.warning("could not publish routing hints", exc_info=True)


# ---------------------------------------------------------------------------------------------- engine
class PersistedEngine(RoutingEngine):
    """The engine plus one fact the database keeps: a contact that already overflowed (and still waits,
    e.g. an email) never overflows again."""

    def __init__(self, config) -> None:
        super().__init__(config)
        self.overflowed: set[int] = set()

    def _on_overflow(self, contact_id: int, token: int, now: float, result: MatchResult) -> None:
        if contact_id not in self.overflowed:
            super()._on_overflow(contact_id, token, now, result)


@dataclass
class CycleReport:
    offers: list[int] = field(default_factory=list)  # offer ids written
    dropped: int = 0  # engine offers the database refused (re-read next cycle)
    expired: int = 0
    overflowed: int = 0
    synced_contacts: int = 0
    synced_agents: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.offers or self.dropped or self.expired or self.overflowed)


class Router:
    """One router's engine and the bookkeeping that ties it to the database. Not thread-safe: one
    thread runs ``cycle``."""

    def __init__(self, app: Flask):
        self.app = app
        self.config = app.extensions["desk.config"].routing
        self.engine = PersistedEngine(self.config)
        self.built = False
        self.last_full = 0.0
        self._contact_sig: dict[int, tuple] = {}
        self._agent_sig: dict[int, tuple] = {}
        self._backoff_wake: dict[int, float] = {}
        self._retry_interactions: set[int] = set()
        self._retry_agents: set[int] = set()
        self.sweep_every_s = 0.0  # ``serve`` sets the live pace; 0 sweeps every cycle
        self.stats_every_s = 0.0
        self._next_sweep = 0.0
        self.repair_every_s = 0.0  # likewise for the sweeper's repairs
        self._next_repair = 0.0
        self._next_stats = 0.0

    # ------------------------------------------------------------------ the cycle
    def cycle(self, now: datetime | None = None) -> CycleReport:
        now = now or utcnow()
        ts = now.timestamp()
        report = CycleReport()
        from app.extensions import db

        # One connection for the whole cycle (no pool checkout and ping per transaction); objects stay
        # loaded across its commits because every read that decides anything uses populate_existing or a
        # row lock, every write to a contact is guarded by its version (an offer trusts the contact this
        # cycle's sync read), and the session lives for this cycle only.
        with db.engine.connect() as connection, Session(bind=connection, expire_on_commit=False) as session:
            interactions, agents = _hub.drain()
            interactions |= self._retry_interactions
            agents |= self._retry_agents
            self._retry_interactions, self._retry_agents = set(), set()
            agents |= self._due_backoffs(ts)
            if _hub.take_overflow() or not self.built or ts - self.last_full >= FULL_SYNC_S:
                self.sync_all(session, ts)
            else:
                self.sync_agents(session, agents, ts)
                self.sync_contacts(session, interactions, ts)
            report.synced_contacts, report.synced_agents = len(interactions), len(agents)
            result = self.engine.match(ts)
            self._persist(session, result, now, report)
            # After the offers, not before: a caller who just queued waits for no timer's housekeeping.
            # What the sweep changes (a lease run out, a wrap-up over) comes back as hints next cycle.
            if self._sweep_due(ts):
                self._sweep(session, now, report)
        if not self.stats_every_s or ts >= self._next_stats:
            self._publish_stats(ts)
            self._next_stats = ts + self.stats_every_s
        return report

    def _sweep_due(self, ts: float) -> bool:
        """The sweeper's timers are database facts with second-scale leases: a live router sweeps at most
        every ``sweep_every_s`` (tests and ``run_once`` sweep every cycle)."""
        if self.sweep_every_s and ts < self._next_sweep:
            return False
        self._next_sweep = ts + self.sweep_every_s
        return True

    def _sweep(self, session: Session, now: datetime, report: CycleReport) -> None:
        """The timers (wrap-ups, offer leases) on every sweep; the repairs (orphaned offers, stranded
        contacts), which only a crash or a hand edit calls for, every ``repair_every_s``. A step that
        changed something commits on its own, so one failing step never undoes another; steps that
        found nothing share one read-only transaction."""
        ts = now.timestamp()
        steps = [service.end_due_wrap_ups, service.expire_due_offers]
        if not self.repair_every_s or ts >= self._next_repair:
            steps += [service.rescind_orphan_offers, service.requeue_stranded_offered]
            self._next_repair = ts + self.repair_every_s
        for step in steps:
            try:
                timer = step in (service.end_due_wrap_ups, service.expire_due_offers)
                done = step(session, now=now, config=self.config) if timer else step(session, now=now)
                if done:
                    session.commit()
            except _RETRYABLE:
                session.rollback()
                log.info("routing sweep %s will retry", step.__name__, exc_info=True)
                continue
            if step is service.expire_due_offers:
                report.expired += len(done)
        session.commit()

    # ------------------------------------------------------------------ sync: database -> engine
    def sync_all(self, session: Session, ts: float) -> None:
        """Rebuild from the database: every active agent and every live contact."""
        from app.auth.models import StaffUser

        agent_ids = set(session.scalars(select(StaffUser.id).where(StaffUser.role == "agent",
                                                                   StaffUser.active.is_(True))))
        self.sync_agents(session, agent_ids | set(self.engine.agents), ts)
        live = set(session.scalars(select(Interaction.id).where(Interaction.state.in_(_LIVE))))
        self.sync_contacts(session, live | set(self.engine.contacts), ts)
        self.built, self.last_full = True, ts

    def sync_agents(self, session: Session, agent_ids: set[int], ts: float) -> None:
        """Re-read these agents (who they are, skills, routing state) as plain column rows: the router
        only compares and copies the values, so no ORM objects are built for them."""
        from app.auth.models import AgentSkill, StaffUser

        ids = sorted(agent_ids)
        rows: dict[int, tuple] = {}
        skills: dict[int, dict[str, int]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            for row in session.execute(
                    select(StaffUser.id, StaffUser.role, StaffUser.active, StaffUser.agent_group,
                           AgentState.agent_id, AgentState.presence, AgentState.reason, AgentState.idle_since,
                           AgentState.backoff_until, AgentState.missed_offers, AgentState.wrap_up_until,
                           AgentSkill.skill, AgentSkill.level)
                    .outerjoin(AgentState, AgentState.agent_id == StaffUser.id)
                    .outerjoin(AgentSkill, AgentSkill.staff_user_id == StaffUser.id)
                    .where(StaffUser.id.in_(chunk))):
                rows[row[0]] = row
                held = skills.setdefault(row[0], {})
                if row.skill is not None:
                    held[row.skill] = row.level
        for agent_id in ids:
            row = rows.get(agent_id)
            if row is None or row.role != "agent" or not row.active:
                if agent_id in self.engine.agents:
                    self.engine.remove_agent(agent_id, ts)
                self._agent_sig.pop(agent_id, None)
                continue
            has_state = row.agent_id is not None
            agent_skills = skills[agent_id]
            presence = row.presence if has_state else "offline"
            missed = row.missed_offers if has_state else 0
            sig = (tuple(sorted(agent_skills.items())), row.agent_group, presence, row.reason,
                   _ts(row.idle_since), _ts(row.backoff_until), missed)
            if self._agent_sig.get(agent_id) == sig and agent_id in self.engine.agents:
                continue
            agent = self.engine.upsert_agent(agent_id, agent_skills, ts, group=row.agent_group)
            agent.presence, agent.reason = presence, row.reason
            agent.idle_since = _ts(row.idle_since, ts)
            agent.backoff_until = _ts(row.backoff_until)
            agent.missed_offers = missed
            agent.wrap_up_until = _ts(row.wrap_up_until) if row.wrap_up_until else None
            if agent.backoff_until > ts:
                self._backoff_wake[agent_id] = agent.backoff_until
            self.engine.upsert_agent(agent_id, agent_skills, ts, group=row.agent_group)  # re-index as restored
            self._agent_sig[agent_id] = sig

    def _due_backoffs(self, ts: float) -> set[int]:
        due = {aid for aid, until in self._backoff_wake.items() if until <= ts}
        for aid in due:
            del self._backoff_wake[aid]
            self._agent_sig.pop(aid, None)  # force a re-index now that the back-off is over
        return due

    def sync_contacts(self, session: Session, interaction_ids: set[int], ts: float) -> None:
        ids = sorted(interaction_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            rows, entries, offers = {}, {}, {}
            pending = and_(Offer.interaction_id == Interaction.id, Offer.status == "pending")  # one at most
            for interaction, entry, offer in session.execute(
                    select(Interaction, QueueEntry, Offer)
                    .outerjoin(QueueEntry, QueueEntry.interaction_id == Interaction.id).outerjoin(Offer, pending)
                    .where(Interaction.id.in_(chunk)).execution_options(populate_existing=True)):
                rows[interaction.id], entries[interaction.id], offers[interaction.id] = interaction, entry, offer
            for interaction_id in chunk:
                self._sync_contact(session, interaction_id, rows.get(interaction_id), entries.get(interaction_id),
                                   offers.get(interaction_id), ts)

    def _sync_contact(self, session: Session, interaction_id: int, interaction: Interaction | None,
                      entry: QueueEntry | None, offer: Offer | None, ts: float) -> None:
        engine = self.engine
        held = engine.contacts.get(interaction_id)
        if interaction is None or interaction.state not in _LIVE or interaction.queue not in engine.queues:
            if held is not None and held.state == "connected":
                engine.release(interaction_id, ts, wrap_up=False)  # records the handle time
            elif held is not None:
                engine.remove_contact(interaction_id, ts)
            self._contact_sig.pop(interaction_id, None)
            return
        if interaction.state in WAITING and service.is_callback(interaction) != service.has_callback_reason(
                interaction):
            self._refresh_priority(session, interaction)
        contact = self._contact(interaction, entry)
        sig = (interaction.state, interaction.agent_id, contact.queue, contact.channel, contact.priority,
               contact.routing_age_origin, contact.enqueued_at, contact.required_skills, contact.preferred_agent_id,
               contact.preferred_until, offer.id if offer else None)
        if held is not None and self._contact_sig.get(interaction_id) == sig:
            return
        if entry is not None and entry.overflowed_at is not None:
            engine.overflowed.add(interaction_id)
        else:
            engine.overflowed.discard(interaction_id)
        agent_id = interaction.agent_id
        if interaction.state == State.CONNECTED and held is not None and held.state == "offered" \
                and engine.offers.get(interaction_id) is not None \
                and engine.offers[interaction_id].agent_id == agent_id:
            engine.accept(interaction_id, agent_id, ts)  # the natural path: records the wait-estimate error
        else:
            if held is not None:
                engine.remove_contact(interaction_id, ts)
            self._place(interaction, contact, offer, ts)
        self._contact_sig[interaction_id] = sig

    def _place(self, interaction: Interaction, contact: Contact, offer: Offer | None, ts: float) -> None:
        engine, agent_id = self.engine, interaction.agent_id
        if interaction.state in WAITING:
            engine.add_contact(contact, ts)
        elif interaction.state == State.OFFERED and offer is not None and offer.agent_id in engine.agents:
            engine.restore_offer(contact, offer.agent_id, _ts(offer.expires_at), ts)
        elif interaction.state == State.CONNECTED and agent_id in engine.agents:
            engine.restore_connected(contact, agent_id, _ts(interaction.state_changed_at, ts), ts)
        # else: offered without a pending offer (the sweeper rescinds or re-queues it), or held by
        # someone who is no longer an agent: nothing for the engine until the database says more.

    def _contact(self, interaction: Interaction, entry: QueueEntry | None) -> Contact:
        same_queue = entry is not None and entry.queue == interaction.queue
        skills = tuple((str(s["skill"]), int(s.get("min_level", 1))) for s in interaction.required_skills or []
                       if isinstance(s, dict) and s.get("skill"))
        return Contact(
            id=interaction.id, queue=interaction.queue, channel=interaction.channel,
            routing_age_origin=_ts(interaction.routing_age_origin, _ts(interaction.created_at)),
            enqueued_at=_ts(entry.enqueued_at if same_queue else interaction.state_changed_at),
            priority=interaction.priority or 0, required_skills=skills,
            preferred_agent_id=entry.preferred_agent_id if same_queue else None,
            preferred_until=_ts(entry.preferred_until) if same_queue else 0.0,
            priority_reasons=tuple(interaction.priority_reasons or ()))

    def _refresh_priority(self, session: Session, interaction: Interaction) -> None:
        try:
            service.refresh_priority(session, interaction, config=self.config)
            session.commit()
        except _RETRYABLE:
            session.rollback()
            self._retry_interactions.add(interaction.id)

    # ------------------------------------------------------------------ persist: engine -> database
    def _persist(self, session: Session, result: MatchResult, now: datetime, report: CycleReport) -> None:
        for offer in result.expired:  # the database sweeper is authoritative; re-read both sides
            self._retry_interactions.add(offer.contact_id)
            self._retry_agents.add(offer.agent_id)
        self._retry_agents.update(result.to_break)
        self._retry_agents.update(result.back_from_wrap_up)
        for contact, action in result.overflowed:
            self._overflow(session, contact.id, action, now, report)
        for decided in result.offers:  # first tell everyone preparing for an offer, then write them all
            _offer_decided(decided.contact_id, decided.agent_id, decided.priority, list(decided.priority_reasons))
        for decided in result.offers:
            self._write_offer(session, decided, report)

    def _overflow(self, session: Session, interaction_id: int, action: str, now: datetime,
                  report: CycleReport) -> None:
        self._contact_sig.pop(interaction_id, None)
        self._retry_interactions.add(interaction_id)
        try:
            interaction = session.get(Interaction, interaction_id, populate_existing=True)
            if interaction is not None and interaction.state in WAITING:
                service.record_overflow(session, interaction, action, now=now, config=self.config)
                session.commit()
                report.overflowed += 1
        except _RETRYABLE:
            session.rollback()

    def _write_offer(self, session: Session, decided, report: CycleReport) -> None:
        try:
            made = service.create_offer(
                session, interaction_id=decided.contact_id, agent_id=decided.agent_id,
                interaction=session.get(Interaction, decided.contact_id),  # as this cycle's sync read it
                expires_at=_dt(decided.expires_at), cost=decided.cost, priority=decided.priority,
                priority_reasons=list(decided.priority_reasons), trace=_jsonable(decided.trace),
                now=_dt(decided.created_at), config=self.config)
            offer_id = made.id
            session.commit()
            report.offers.append(offer_id)
            self._contact_sig.pop(decided.contact_id, None)  # the next hint finds it as offered
        except _RETRYABLE as exc:
            session.rollback()
            log.info("offer of %s to agent %s dropped: %s", decided.contact_id, decided.agent_id, exc)
            report.dropped += 1
            self._contact_sig.pop(decided.contact_id, None)
            self._agent_sig.pop(decided.agent_id, None)
            self._retry_interactions.add(decided.contact_id)
            self._retry_agents.add(decided.agent_id)

    # ------------------------------------------------------------------ figures for announcements
    def _publish_stats(self, ts: float) -> None:
        redis = self.app.extensions.get("desk.redis")
        if redis is None:
            return
        ttl = max(3 * self.config.router.lock_ttl_s, 1)
        try:
            pipe = redis.pipeline(transaction=False)
            for queue in self.config.queues:
                for channel in queue.channels:
                    staffed, free = self.engine.staffing(queue.name, channel)
                    stats = {"at": ts, "staffed": staffed, "free": free,
                             "handle_time_s": self.engine.handle_times.mean_s(queue.name, channel),
                             "announceable": self.engine.announceable(queue.name),
                             "mae_s": self.engine.accuracy.mae_s(queue.name)}
                    pipe.set(service.STATS_KEY.format(queue=queue.name, channel=channel), json.dumps(stats), ex=ttl)
            pipe.execute()
        except Exception:  # figures for announcements only; routing goes on without them
            log.warning("could not publish routing figures", exc_info=True)

    def explain(self, interaction_id: int, now: datetime | None = None) -> dict | None:
        """Why a contact waits: every agent and the reason they are excluded (for supervisors)."""
        if interaction_id not in self.engine.contacts:
            return None
        return self.engine.explain(interaction_id, (now or utcnow()).timestamp())


OfferHook = Callable[[int, int, int, list], None]
_decision_hooks: list[OfferHook] = []


def on_offer_decided(hook: OfferHook) -> None:
    """Register ``hook(interaction_id, agent_id, priority, priority_reasons)``, called as the router decides
    an offer and before it writes it: work the offer will need can start while it is written (the console
    builds its screen-pop). The offer may yet be refused by the database, so a hook prepares and never
    announces; what it prepared for an offer never made is simply not used."""
    if hook not in _decision_hooks:
        _decision_hooks.append(hook)


def _offer_decided(interaction_id: int, agent_id: int, priority: int, reasons: list) -> None:
    for hook in list(_decision_hooks):
        try:
            hook(interaction_id, agent_id, priority, reasons)
        except Exception:  # preparation only: the offer goes ahead without it
            log.exception("offer hook %r failed", hook)


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))


# ---------------------------------------------------------------------------------------------- running
def router_for(app: Flask) -> Router:
    """This app's router (created, and rebuilt from the database, on first use)."""
    router = app.extensions.get("desk.router")
    if router is None:
        router = Router(app)
        app.extensions["desk.router"] = router
    return router


def reset(app: Flask) -> None:
    """Forget this app's router; the next cycle rebuilds from the database (as after a restart)."""
    app.extensions.pop("desk.router", None)
    _hub.drain()


def run_once(app: Flask, now: datetime | None = None, *, max_cycles: int = 20) -> CycleReport:
    """Run cycles until the router has settled (a cycle changes nothing); returns a summary of all.
    Tests call this instead of running the thread."""
    total = CycleReport()
    with app.app_context():
        router = router_for(app)
        for _ in range(max_cycles):
            report = router.cycle(now)
            total.offers += report.offers
            total.dropped += report.dropped
            total.expired += report.expired
            total.overflowed += report.overflowed
            if not report.changed and not (_hub.interactions or _hub.agents or router._retry_interactions):
                break
    return total


def _lead(redis, identity: str, ttl_ms: int) -> bool:
    if redis.set(LOCK_KEY, identity, nx=True, px=ttl_ms):
        return True
    if redis.get(LOCK_KEY) == identity:
        redis.pexpire(LOCK_KEY, ttl_ms)
        return True
    return False


def serve(app: Flask, stop: threading.Event) -> None:
    """The router loop: lead (Redis lock) or stand by; cycle on every hint and at least every tick."""
    settings = app.extensions["desk.config"].routing.router
    redis = app.extensions["desk.redis"]
    identity = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    ttl_ms = settings.lock_ttl_s * 1000
    renew_s = min(RENEW_S, settings.lock_ttl_s / 3)
    leading, renewed_at = False, 0.0
    while not stop.is_set():
        try:
            # The lock is checked (and renewed) at most every ``renew_s`` while leading, not on every cycle:
            # three Redis round trips per offer otherwise. The database's own guards (one pending offer
            # per contact, compare-and-set accepts) keep a router that lost the lock from doing harm.
            if leading and time.monotonic() - renewed_at < renew_s:
                still = True
            else:
                still = _lead(redis, identity, ttl_ms)
                renewed_at = time.monotonic()
            if still:
                if not leading:
                    log.info("router %s is active; rebuilding from the database", identity)
                    reset(app)
                    leading = True
                with app.app_context():
                    router = router_for(app)
                    router.sweep_every_s, router.stats_every_s = LIVE_SWEEP_S, LIVE_STATS_S
                    router.repair_every_s = LIVE_REPAIR_S
                    router.cycle()
            elif leading:
                log.warning("router %s lost the lock; standing by", identity)
                leading = False
                reset(app)
        except Exception:  # never die: the next cycle rebuilds from the database
            log.exception("router cycle failed; rebuilding")
            reset(app)
            leading = False
        _hub.wake.wait(timeout=settings.tick_s)
        _hub.wake.clear()
    if leading and redis.get(LOCK_KEY) == identity:
        redis.delete(LOCK_KEY)


def _listen_for_hints(redis, stop: threading.Event) -> None:
    """Other processes' hints (Redis pub/sub) into this process's hub."""
    while not stop.is_set():
        try:
            pubsub = redis.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(_channel["name"])
            while not stop.is_set():
                message = pubsub.get_message(timeout=1.0)
                if message and message.get("type") == "message":
                    data = json.loads(message["data"])
                    for interaction_id, agent_id in data.get("h") or [(data.get("i"), data.get("a"))]:
                        _hub.add(interaction_id, agent_id)
        except Exception:
            log.warning("routing hint channel lost; retrying", exc_info=True)
            stop.wait(1.0)


def start_thread(app: Flask) -> threading.Event:
    """Run ``serve`` on a daemon thread; set the returned event to stop it."""
    stop = threading.Event()
    threading.Thread(target=serve, args=(app, stop), name="router", daemon=True).start()
    return stop


def init_app(app: Flask) -> None:
    """INITIALISER: subscribe the hint listener; forward hints over Redis when there is one; in the
    embedded default (no REDIS_URL) run the router on a thread unless ROUTER_THREAD is False or TESTING."""
    realtime.subscribe(on_event)
    realtime.subscribe_batch(forward_hints)
    settings = app.extensions["desk.settings"]
    _channel["name"] = pubsub_channel(HINT_CHANNEL, settings.redis_url)
    if settings.redis_url:
        _forward["redis"] = app.extensions["desk.redis"]
    wanted = app.config.get("ROUTER_THREAD", not settings.redis_url)
    in_cli_command = click.get_current_context(silent=True) is not None  # flask ... commands never route
    if wanted and not app.config.get("TESTING") and not in_cli_command:
        app.extensions["desk.router.stop"] = start_thread(app)


def main(argv: list[str] | None = None) -> int:
    """``python -m queues.router``: the router process (Procfile ``router``)."""
    from app import create_app

    app = create_app(overrides={"ROUTER_THREAD": False})
    # Its own commits' hints reach this process's hub directly (on_event); sent over Redis too, each would
    # come back as a second wake-up and a second read of the same rows.
    _forward.pop("redis", None)
    settle_collector()  # shorter, rarer full collections (app.collector)
    stop = threading.Event()
    redis = app.extensions["desk.redis"]
    threading.Thread(target=_listen_for_hints, args=(redis, stop), name="router-hints", daemon=True).start()
    log.info("router process started")
    try:
        serve(app, stop)
    except KeyboardInterrupt:
        stop.set()
    return 0


if __name__ == "__main__":  # pragma: no cover - the process entry point
    # ``python -m`` runs this file as ``__main__``, a second copy of the module beside the ``queues.router``
    # the app imports: run the app's copy, so its hub, hooks and router are the ones everything else sees.
    from queues.router import main as _main

    raise SystemExit(_main())
