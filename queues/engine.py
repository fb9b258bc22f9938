"""The in-memory routing engine: indexed, deterministic, with a virtual clock passed in by the caller.

It holds the waiting contacts and the agents, and ``match(now)`` settles them: after it returns, no
waiting contact has an eligible agent with free capacity (invariant 3). Offers are made in contact
order (``matching.contact_key``), each to the longest-idle eligible agent, so at equal priority
contacts are served by first arrival even after a reject (they keep ``routing_age_origin``).

Indexes, so a decision costs about log(waiting) and not a scan:
- waiting contacts live in *buckets* keyed by (queue, channel, escalation step, contact extras),
  each a sorted list by contact key; an agent compares only the heads of the buckets they qualify for;
- ready agents (available, not backed off, room for a channel) are kept per (channel, skill) in
  idle order, so a new contact scans the shortest list of its required skills;
- time (escalation steps, preferred-agent windows, overflow, offer leases, back-off, wrap-up) is a
  heap of timers, processed at the start of every ``match``.

The engine is pure: no database, no clock, no I/O. ``queues.service`` and ``queues.router`` persist
what it decides; the tests and benchmarks drive it directly.
"""
from __future__ import annotations

import heapq
import itertools
from collections import defaultdict
from dataclasses import dataclass, field

from sortedcontainers import SortedList

from queues import matching
from queues.config import RoutingConfig
from queues.ewt import AccuracyTracker, HandleTimes, forecast_wait_s
from queues.matching import Agent, Contact, Requirement
from queues.priority import with_waiting

BACKOFF_CAUSES = ("reject", "no_answer", "disconnect")


class RoutingError(Exception):
    """Base of the engine's typed errors."""


class UnknownQueue(RoutingError):
    pass


class UnknownContact(RoutingError):
    pass


class UnknownAgent(RoutingError):
    pass


class DuplicateContact(RoutingError):
    pass


class OfferNotPending(RoutingError):
    """The offer was already accepted, rejected, expired or rescinded, or belongs to someone else."""


@dataclass(slots=True)
class Offer:
    contact_id: int
    agent_id: int
    created_at: float
    expires_at: float
    priority: int
    priority_reasons: list[dict]
    trace: dict
    cost: int
    seq: int = 0


@dataclass(slots=True)
class MatchResult:
    offers: list[Offer] = field(default_factory=list)
    expired: list[Offer] = field(default_factory=list)  # leases that ran out (re-queued, agent backed off)
    overflowed: list[tuple[Contact, str]] = field(default_factory=list)  # (contact, overflow action)
    to_break: list[int] = field(default_factory=list)  # agents sent to break for missed offers
    back_from_wrap_up: list[int] = field(default_factory=list)


@dataclass(slots=True)
class _Bucket:
    key: tuple
    queue: str
    channel: str
    requirement: Requirement
    primary: str | None
    contacts: SortedList = field(default_factory=SortedList)
    head: tuple | None = None  # contacts[0], kept as a plain attribute: read on every decision

    def add(self, key: tuple) -> None:
        self.contacts.add(key)
        if self.head is None or key < self.head:
            self.head = key

    def discard(self, key: tuple) -> None:
        self.contacts.discard(key)
        if key == self.head:
            self.head = self.contacts[0] if self.contacts else None


class RoutingEngine:
    """See the module docstring. Every public method takes ``now`` where time matters."""

    def __init__(self, config: RoutingConfig, *, trace_limit: int = 20):
        self.config = config
        self.w = float(config.priority.per_minute_waiting)
        self.queues = {q.name: q for q in config.queues}
        self.steps = {name: matching.compile_steps(q, self.queues) for name, q in self.queues.items()}
        self.trace_limit = trace_limit
        self.contacts: dict[int, Contact] = {}
        self.agents: dict[int, Agent] = {}
        self.offers: dict[int, Offer] = {}  # contact id -> the one pending offer
        self.assignments: dict[int, tuple[int, int]] = {}  # contact id -> (agent id, cost), offered or connected
        self.handle_times = HandleTimes(config.ewt)
        self.accuracy = AccuracyTracker(config.ewt)
        self._keys: dict[int, tuple] = {}
        self._home: dict[int, object] = {}  # contact id -> _Bucket or ("preferred", agent id)
        self._epoch: dict[int, int] = {}
        self._predicted: dict[int, float] = {}
        self._connected_at: dict[int, float] = {}
        self._buckets: dict[tuple, _Bucket] = {}
        self._agent_buckets: dict[int, dict[str, list[_Bucket]]] = {}  # agent -> channel -> buckets
        self._skill_holders: dict[str, set[int]] = defaultdict(set)
        self._preferred: dict[int, SortedList] = defaultdict(SortedList)
        self._ready: dict[tuple[str, str | None], SortedList] = defaultdict(SortedList)
        self._indexed: dict[int, tuple[tuple, list]] = {}
        self._timers: list[tuple] = []
        self._seq = itertools.count(1)
        self._dirty_contacts: set[int] = set()
        self._dirty_agents: set[int] = set()
        self._presence_counts: dict[str, int] = defaultdict(int)
        self._backed_off: set[int] = set()  # back-off set and its timer not yet run
        self._queue_buckets: dict[tuple[str, str], list[_Bucket]] = defaultdict(list)
        self._staff_version = 0  # bumped on every agent change; keys the staffing cache
        self._staffing_cache: dict[tuple[str, str], tuple[int, int, int]] = {}
        self._qualified: dict[str, list[int]] = {}  # queue -> agents meeting its first step; skills-keyed

    # ------------------------------------------------------------------ contacts
    def add_contact(self, contact: Contact, now: float) -> None:
        """Start routing ``contact``: it waits until ``match`` offers it. Raises UnknownQueue or
        DuplicateContact."""
        if contact.queue not in self.queues:
            raise UnknownQueue(contact.queue)
        if contact.id in self.contacts:
            raise DuplicateContact(contact.id)
        self.contacts[contact.id] = contact
        self._keys[contact.id] = matching.contact_key(contact, self.w)
        self._epoch[contact.id] = 0
        self._enqueue(contact, now)
        if now - contact.enqueued_at <= 1.0:  # a fresh arrival: keep its forecast to measure the error
            self.estimated_wait_s(contact.id)

    def remove_contact(self, contact_id: int, now: float) -> Offer | None:
        """Stop routing a contact (abandoned, closed, transferred out). Returns the pending offer
        it rescinds, if any; capacity held for it is released at once."""
        contact = self._contact(contact_id)
        self._unhome(contact)
        rescinded = self.offers.pop(contact_id, None)
        self._free_assignment(contact_id, now)
        for table in (self.contacts, self._keys, self._epoch, self._predicted, self._connected_at):
            table.pop(contact_id, None)
        self._dirty_contacts.discard(contact_id)
        return rescinded

    def restore_offer(self, contact: Contact, agent_id: int, expires_at: float, now: float,
                      *, seq: int = 0) -> Offer:
        """Rebuild a pending offer read back from the database (router restart)."""
        agent = self._agent(agent_id)
        self.contacts[contact.id] = contact
        self._keys[contact.id] = matching.contact_key(contact, self.w)
        self._epoch[contact.id] = 0
        contact.state = "offered"
        cost = agent.cost(contact.channel)
        offer = Offer(contact.id, agent_id, now, expires_at, contact.priority, list(contact.priority_reasons),
                      {"restored": True}, cost, seq or next(self._seq))
        self._hold(contact, agent, offer)
        return offer

    def restore_connected(self, contact: Contact, agent_id: int, connected_at: float, now: float) -> None:
        """Rebuild a contact an agent is handling (router restart), so its capacity stays used."""
        agent = self._agent(agent_id)
        contact.state = "connected"
        self.contacts[contact.id] = contact
        self._keys[contact.id] = matching.contact_key(contact, self.w)
        self._epoch[contact.id] = 0
        self._connected_at[contact.id] = connected_at
        self.assignments[contact.id] = (agent_id, agent.cost(contact.channel))
        agent.load += agent.cost(contact.channel)
        self._reindex(agent, now)

    # ------------------------------------------------------------------ agents
    def upsert_agent(self, agent_id: int, skills: dict[str, int], now: float, *, group: str = "default") -> Agent:
        """Add an agent (offline) or update their skills and group, keeping presence and load."""
        settings = self.config.agent_group(group)
        agent = self.agents.get(agent_id)
        if agent is None or agent.skills != skills:
            self._qualified.clear()  # who meets which queue may have changed
        if agent is None:
            agent = Agent(agent_id, dict(skills), idle_since=now)
            self.agents[agent_id] = agent
            self._presence_counts[agent.presence] += 1
        for skill in agent.skills:
            self._skill_holders[skill].discard(agent_id)
        agent.skills, agent.group = dict(skills), group
        for skill in agent.skills:
            self._skill_holders[skill].add(agent_id)
        agent.capacity, agent.costs = settings.capacity, dict(settings.costs)
        self._agent_buckets.pop(agent_id, None)
        self._reindex(agent, now)
        return agent

    def set_presence(self, agent_id: int, presence: str, now: float, reason: str | None = None) -> Agent:
        """Change presence (offline | available | break | wrap_up). Becoming available starts the
        agent's idle time and clears missed offers and back-off."""
        if presence not in matching.PRESENCES:
            raise ValueError(f"unknown presence {presence!r}")
        agent = self._agent(agent_id)
        if presence == "available" and agent.presence != "available":
            agent.idle_since = now
            agent.missed_offers = 0
            agent.backoff_until = 0.0
            self._backed_off.discard(agent_id)
        self._presence_counts[agent.presence] -= 1
        self._presence_counts[presence] += 1
        agent.presence, agent.reason = presence, (reason if presence == "break" else None)
        agent.wrap_up_until = None
        if presence == "wrap_up":
            self._start_wrap_up(agent, now)
        self._reindex(agent, now)
        return agent

    def end_wrap_up(self, agent_id: int, now: float) -> Agent:
        """The agent finished wrap-up early (or the timer ran out): available again."""
        agent = self._agent(agent_id)
        if agent.presence != "wrap_up":
            return agent
        return self.set_presence(agent_id, "available", now)

    def agent_disconnected(self, agent_id: int, now: float) -> list[Offer]:
        """The agent's console is gone: their pending offers go back with cause 'disconnect' and
        the agent goes offline. Returns the offers taken back."""
        taken_back = [o for o in list(self.offers.values()) if o.agent_id == agent_id]
        for offer in taken_back:
            self.reject(offer.contact_id, agent_id, now, cause="disconnect")
        self.set_presence(agent_id, "offline", now)
        return taken_back

    # ------------------------------------------------------------------ offers
    def accept(self, contact_id: int, agent_id: int, now: float) -> Contact:
        """The agent took the offer. Raises OfferNotPending unless it is this agent's live offer."""
        offer = self.offers.get(contact_id)
        if offer is None or offer.agent_id != agent_id:
            raise OfferNotPending(contact_id)
        del self.offers[contact_id]
        contact = self.contacts[contact_id]
        contact.state = "connected"
        self._connected_at[contact_id] = now
        self.agents[agent_id].missed_offers = 0
        predicted = self._predicted.pop(contact_id, None)
        if predicted is not None:
            self.accuracy.record(contact.queue, predicted, now - contact.enqueued_at)
        return contact

    def reject(self, contact_id: int, agent_id: int, now: float, cause: str = "reject") -> bool:
        """Take an offer back (reject, no answer, disconnect): the contact waits again in its
        original place; the agent is backed off. Returns True when the agent went to break for
        ``missed_offers_to_break`` misses in a row. Raises OfferNotPending."""
        if cause not in BACKOFF_CAUSES:
            raise ValueError(f"unknown cause {cause!r}")
        offer = self.offers.get(contact_id)
        if offer is None or offer.agent_id != agent_id:
            raise OfferNotPending(contact_id)
        del self.offers[contact_id]
        agent = self.agents[agent_id]
        self._free_assignment(contact_id, now)
        agent.backoff_until = now + self.config.backoff_s.get(cause, 0)
        agent.missed_offers += 1
        if agent.backoff_until > now:
            self._backed_off.add(agent_id)
        self._timer(agent.backoff_until, "backoff", agent_id, 0)
        to_break = agent.missed_offers >= self.config.agent_group(agent.group).missed_offers_to_break
        if to_break:
            self.set_presence(agent_id, "break", now, reason="missed_offers")
        else:
            self._reindex(agent, now)
        self._enqueue(self.contacts[contact_id], now)
        return to_break

    def release(self, contact_id: int, now: float, *, wrap_up: bool = True) -> float:
        """The agent finished a connected contact: capacity returns (after wrap-up when the group
        has one). Records the handle time for wait estimates and returns it in seconds."""
        contact = self._contact(contact_id)
        if contact.state != "connected":
            raise OfferNotPending(contact_id)
        agent_id, _ = self.assignments[contact_id]
        handled_s = now - self._connected_at.get(contact_id, now)
        self.handle_times.observe(contact.queue, contact.channel, handled_s)
        self.remove_contact(contact_id, now)
        agent = self.agents[agent_id]
        if wrap_up and agent.presence == "available" and self.config.agent_group(agent.group).wrap_up_s > 0:
            self.set_presence(agent_id, "wrap_up", now)
        return handled_s

    # ------------------------------------------------------------------ matching
    def match(self, now: float) -> MatchResult:
        """Process every timer due by ``now``, then offer until settled. Deterministic."""
        result = MatchResult()
        self._advance(now, result)
        self._settle(now, result)
        return result

    def _settle(self, now: float, result: MatchResult) -> None:
        contact_heap = [(self._keys[cid], cid) for cid in self._dirty_contacts
                        if self.contacts[cid].state == "waiting"]
        heapq.heapify(contact_heap)
        agent_heap = []
        for aid in self._dirty_agents:
            best = self._best_contact_key(self.agents[aid], now)
            if best is not None:
                agent_heap.append((best, aid))
        heapq.heapify(agent_heap)
        self._dirty_contacts.clear()
        self._dirty_agents.clear()
        while True:
            while agent_heap:
                key, aid = agent_heap[0]
                current = self._best_contact_key(self.agents[aid], now)
                if current is None:
                    heapq.heappop(agent_heap)
                elif current != key:
                    heapq.heapreplace(agent_heap, (current, aid))
                else:
                    break
            while contact_heap and self.contacts.get(contact_heap[0][1], None) is None \
                    or contact_heap and self.contacts[contact_heap[0][1]].state != "waiting":
                heapq.heappop(contact_heap)
            from_contacts = bool(contact_heap) and (not agent_heap or contact_heap[0][0] <= agent_heap[0][0])
            if not from_contacts and not agent_heap:
                return
            key = contact_heap[0][0] if from_contacts else agent_heap[0][0]
            contact = self.contacts[key[2]]
            agent, trace = self._best_agent_for(contact, now)
            if from_contacts:
                heapq.heappop(contact_heap)
            if agent is None:
                continue
            trace["trigger"] = "contact" if from_contacts else "agent"
            result.offers.append(self._offer(contact, agent, now, trace))

    def _best_contact_key(self, agent: Agent, now: float) -> tuple | None:
        """The best waiting contact key this agent may take now, or None."""
        if agent.presence != "available" or agent.backoff_until > now:
            return None
        free = agent.free()
        best = None
        for channel, buckets in self._buckets_for(agent).items():
            if free < agent.cost(channel):
                continue
            for bucket in buckets:
                head = bucket.head
                if head is not None and (best is None or head < best):
                    best = head
        for key in self._preferred.get(agent.id, ()):
            if free >= agent.cost(self.contacts[key[2]].channel):
                if best is None or key < best:
                    best = key
                break
        return best

    def _best_agent_for(self, contact: Contact, now: float) -> tuple[Agent | None, dict | None]:
        """The longest-idle eligible agent for ``contact`` (ties: higher primary level) and the
        decision trace; (None, None) when nobody may take it now (the common, cheap case)."""
        home = self._home[contact.id]
        if isinstance(home, tuple):
            agent = self.agents.get(home[1])
            if agent is None or matching.exclusion_reason(agent, contact, (), now) is not None:
                return None, None
            trace = self._trace_head(contact, now)
            trace["preferred_agent"] = {"agent_id": agent.id, "window_until": contact.preferred_until}
            return agent, trace
        best, best_key, skipped = None, None, []
        for alt in home.requirement:
            found = self._scan_ready(contact, alt, home.primary, skipped)
            if found is not None:
                key = matching.agent_key(found, home.primary)
                if best_key is None or key < best_key:
                    best, best_key = found, key
        if best is None:
            return None, None
        trace = self._trace_head(contact, now)
        trace["skipped"] = skipped[: self.trace_limit]
        trace["skipped_count"] = len(skipped)
        trace["not_ready"] = self._not_ready_counts(contact.channel, now)
        trace["agent_key"] = {"idle_since": best.idle_since, "primary_level": -best_key[1], "id": best.id}
        return best, trace

    def _scan_ready(self, contact: Contact, alt: matching.Alternative, primary: str | None,
                    skipped: list) -> Agent | None:
        channel = contact.channel
        if alt:
            lists = [self._ready.get((channel, skill)) for skill, _ in alt]
            if any(not lst for lst in lists):
                return None
            line = min(lists, key=len)
        else:
            line = self._ready.get((channel, None))
            if not line:
                return None
        found: Agent | None = None
        for idle_since, aid in line:
            if found is not None and idle_since != found.idle_since:
                break
            agent = self.agents[aid]
            if not matching.satisfies(agent.skills, alt):
                if found is None:
                    skipped.append({"agent_id": aid, "reason": "skill"})
                continue
            if found is None or matching.agent_key(agent, primary) < matching.agent_key(found, primary):
                found = agent
        return found

    def _trace_head(self, contact: Contact, now: float) -> dict:
        step = self.steps[contact.queue][contact.step]
        home = self._home[contact.id]
        key = self._keys[contact.id]
        return {
            "queue": contact.queue, "channel": contact.channel,
            "step": {"index": step.index, "after_s": step.after_s, "label": step.label},
            "requirement": matching.describe(home.requirement) if isinstance(home, _Bucket) else "preferred agent",
            "contact_key": {"priority": int(-key[0] + self.w * now / 60.0), "base_priority": contact.priority,
                            "routing_age_origin": key[1], "id": key[2]},
            "waited_s": round(now - contact.enqueued_at, 3),
        }

    def _not_ready_counts(self, channel: str, now: float) -> dict[str, int]:
        """Agents out of line for ``channel`` by reason, from the indexes (no scan)."""
        counts = {f"state:{p}": n for p, n in self._presence_counts.items() if p != "available" and n}
        available = self._presence_counts.get("available", 0)
        backed_off = sum(1 for aid in self._backed_off if self.agents[aid].presence == "available")
        if backed_off:
            counts["back_off"] = backed_off
        full = available - backed_off - len(self._ready.get((channel, None), ()))
        if full:
            counts["capacity"] = full
        return counts

    def _offer(self, contact: Contact, agent: Agent, now: float, trace: dict) -> Offer:
        self._unhome(contact)
        contact.state = "offered"
        priority, reasons = with_waiting(contact.priority, contact.priority_reasons,
                                         now - contact.routing_age_origin, self.config.priority)
        lease = self.config.lease_s(agent.group)
        offer = Offer(contact.id, agent.id, now, now + lease, priority, reasons, trace,
                      agent.cost(contact.channel), next(self._seq))
        agent.idle_since = now  # served agents go to the back of the line
        self._hold(contact, agent, offer)
        return offer

    def _hold(self, contact: Contact, agent: Agent, offer: Offer) -> None:
        self.offers[contact.id] = offer
        self.assignments[contact.id] = (agent.id, offer.cost)
        agent.load += offer.cost
        self._timer(offer.expires_at, "lease", contact.id, offer.seq)
        self._reindex(agent, offer.created_at)

    # ------------------------------------------------------------------ time
    def _advance(self, now: float, result: MatchResult) -> None:
        while self._timers and self._timers[0][0] <= now:
            _, _, kind, ident, token = heapq.heappop(self._timers)
            getattr(self, f"_on_{kind}")(ident, token, now, result)

    def _on_step(self, contact_id: int, token: int, now: float, result: MatchResult) -> None:
        contact = self.contacts.get(contact_id)
        if contact is not None and contact.state == "waiting" and self._epoch[contact_id] == token:
            self._enqueue(contact, now)

    _on_preferred = _on_step

    def _on_overflow(self, contact_id: int, token: int, now: float, result: MatchResult) -> None:
        contact = self.contacts.get(contact_id)
        if contact is None or contact.state != "waiting":
            return
        if contact.enqueued_at + self.queues[contact.queue].overflow.after_s > now:
            return  # a stale timer from before a transfer
        self.remove_contact(contact_id, now)
        result.overflowed.append((contact, self.queues[contact.queue].overflow.action_for(contact.channel)))

    def _on_lease(self, contact_id: int, token: int, now: float, result: MatchResult) -> None:
        offer = self.offers.get(contact_id)
        if offer is None or offer.seq != token:
            return
        if self.reject(contact_id, offer.agent_id, now, cause="no_answer"):
            result.to_break.append(offer.agent_id)
        result.expired.append(offer)

    def _on_backoff(self, agent_id: int, token: int, now: float, result: MatchResult) -> None:
        agent = self.agents.get(agent_id)
        if agent is not None and agent.backoff_until <= now:
            self._backed_off.discard(agent_id)
            self._reindex(agent, now)

    def _on_wrap_up(self, agent_id: int, token: int, now: float, result: MatchResult) -> None:
        agent = self.agents.get(agent_id)
        if agent is not None and agent.presence == "wrap_up" and agent.wrap_up_until is not None \
                and agent.wrap_up_until <= now:
            self.set_presence(agent_id, "available", now)
            result.back_from_wrap_up.append(agent_id)

    def _start_wrap_up(self, agent: Agent, now: float) -> None:
        wrap_s = self.config.agent_group(agent.group).wrap_up_s
        agent.wrap_up_until = now + wrap_s
        self._timer(agent.wrap_up_until, "wrap_up", agent.id, 0)

    def _timer(self, at: float, kind: str, ident: int, token: int) -> None:
        heapq.heappush(self._timers, (at, next(self._seq), kind, ident, token))

    # ------------------------------------------------------------------ indexes
    def _enqueue(self, contact: Contact, now: float) -> None:
        """(Re)place a waiting contact in its bucket for the step active now; schedule what's next."""
        self._unhome(contact)
        contact.state = "waiting"
        self._epoch[contact.id] += 1
        epoch = self._epoch[contact.id]
        steps = self.steps[contact.queue]
        contact.step = matching.step_for(steps, contact.enqueued_at, now)
        key = self._keys[contact.id]
        if contact.preferred_agent_id is not None and now < contact.preferred_until:
            self._preferred[contact.preferred_agent_id].add(key)
            self._home[contact.id] = ("preferred", contact.preferred_agent_id)
            self._timer(contact.preferred_until, "preferred", contact.id, epoch)
        else:
            bucket = self._bucket(contact)
            bucket.add(key)
            self._home[contact.id] = bucket
        if contact.step + 1 < len(steps):
            self._timer(contact.enqueued_at + steps[contact.step + 1].after_s, "step", contact.id, epoch)
        self._timer(contact.enqueued_at + self.queues[contact.queue].overflow.after_s, "overflow", contact.id, 0)
        self._dirty_contacts.add(contact.id)

    def _unhome(self, contact: Contact) -> None:
        home = self._home.pop(contact.id, None)
        if home is None:
            return
        key = self._keys[contact.id]
        if isinstance(home, _Bucket):
            home.discard(key)
        else:
            self._preferred[home[1]].discard(key)

    def _bucket(self, contact: Contact) -> _Bucket:
        extras = matching.alternative(contact.required_skills)
        key = (contact.queue, contact.channel, contact.step, extras)
        bucket = self._buckets.get(key)
        if bucket is None:
            requirement = matching.contact_requirement(self.steps[contact.queue], contact)
            bucket = _Bucket(key, contact.queue, contact.channel, requirement, matching.primary_skill(requirement))
            self._buckets[key] = bucket
            self._queue_buckets[(contact.queue, contact.channel)].append(bucket)
            for aid in self._agents_meeting(requirement):
                if aid in self._agent_buckets:
                    self._agent_buckets[aid].setdefault(bucket.channel, []).append(bucket)
        return bucket

    def _buckets_for(self, agent: Agent) -> dict[str, list[_Bucket]]:
        """The buckets whose requirement the agent meets (computed once; new buckets are pushed
        to the agents who qualify when they are created)."""
        cached = self._agent_buckets.get(agent.id)
        if cached is None:
            cached = {}
            for bucket in self._buckets.values():
                if matching.meets(agent.skills, bucket.requirement):
                    cached.setdefault(bucket.channel, []).append(bucket)
            self._agent_buckets[agent.id] = cached
        return cached

    def _agents_meeting(self, requirement: Requirement) -> set[int]:
        """Ids of all agents (any presence) meeting ``requirement``, found through the skill index."""
        found: set[int] = set()
        for alt in requirement:
            if not alt:
                return set(self.agents)
            holders = min((self._skill_holders.get(skill, set()) for skill, _ in alt), key=len)
            found.update(aid for aid in holders if matching.satisfies(self.agents[aid].skills, alt))
        return found

    def _free_assignment(self, contact_id: int, now: float) -> None:
        held = self.assignments.pop(contact_id, None)
        if held is None:
            return
        agent = self.agents.get(held[0])
        if agent is not None:
            agent.load -= held[1]
            self._reindex(agent, now)

    def _reindex(self, agent: Agent, now: float) -> None:
        """Put the agent in exactly the ready lines they belong to now; mark them for matching."""
        self._staff_version += 1
        old_entry, old_lines = self._indexed.pop(agent.id, (None, []))
        for line in old_lines:
            self._ready[line].discard(old_entry)
        if agent.presence != "available" or agent.backoff_until > now:
            return  # back-off is lifted by its timer, which re-indexes the agent
        entry = (agent.idle_since, agent.id)
        lines: list[tuple[str, str | None]] = []
        free = agent.free()
        for channel, cost in agent.costs.items():
            if free >= cost:
                lines.append((channel, None))
                lines.extend((channel, skill) for skill in agent.skills)
        for line in lines:
            self._ready[line].add(entry)
        self._indexed[agent.id] = (entry, lines)
        if lines:
            self._dirty_agents.add(agent.id)

    # ------------------------------------------------------------------ queries
    def _contact(self, contact_id: int) -> Contact:
        contact = self.contacts.get(contact_id)
        if contact is None:
            raise UnknownContact(contact_id)
        return contact

    def _agent(self, agent_id: int) -> Agent:
        agent = self.agents.get(agent_id)
        if agent is None:
            raise UnknownAgent(agent_id)
        return agent

    def remove_agent(self, agent_id: int, now: float) -> None:
        """Forget an agent who holds nothing; one still holding contacts is only set offline."""
        agent = self._agent(agent_id)
        if any(held[0] == agent_id for held in self.assignments.values()):
            self.set_presence(agent_id, "offline", now)
            return
        self.set_presence(agent_id, "offline", now)
        self._presence_counts["offline"] -= 1
        self._backed_off.discard(agent_id)
        for skill in agent.skills:
            self._skill_holders[skill].discard(agent_id)
        del self.agents[agent_id]
        self._qualified.clear()
        self._agent_buckets.pop(agent_id, None)
        self._dirty_agents.discard(agent_id)

    def prepare(self) -> None:
        """Fill every agent's bucket cache (after a rebuild), so the first decisions are not slower."""
        for agent in self.agents.values():
            self._buckets_for(agent)

    def next_timer_at(self) -> float | None:
        """When ``match`` next has time-driven work (escalation, lease, back-off, ...), if ever."""
        return self._timers[0][0] if self._timers else None

    def waiting(self, queue: str | None = None) -> list[Contact]:
        """Waiting contacts (optionally of one queue), best first."""
        found = [c for c in self.contacts.values() if c.state == "waiting" and (queue is None or c.queue == queue)]
        return sorted(found, key=lambda c: self._keys[c.id])

    def key_of(self, contact_id: int) -> tuple:
        return self._keys[contact_id]

    def requirement_of(self, contact_id: int) -> Requirement:
        """The requirement the contact is routed by now (its step, plus its own skills)."""
        contact = self._contact(contact_id)
        return matching.contact_requirement(self.steps[contact.queue], contact)

    def position(self, contact_id: int) -> int | None:
        """1-based place among contacts waiting in the same queue and channel; None unless waiting."""
        contact = self._contact(contact_id)
        if contact.state != "waiting":
            return None
        key = self._keys[contact_id]
        ahead = 0
        for bucket in self._queue_buckets.get((contact.queue, contact.channel), ()):
            ahead += bucket.contacts.bisect_left(key)
        return ahead + 1

    def staffing(self, queue: str, channel: str) -> tuple[int, int]:
        """(staffed slots, free slots) of agents who meet the queue's initial requirement.

        Staffed agents are those at work (available or in wrap-up); a slot is room for one contact
        of ``channel`` (an agent with 100 capacity and chats at 25 has four)."""
        cached = self._staffing_cache.get((queue, channel))
        if cached is not None and cached[0] == self._staff_version:
            return cached[1], cached[2]
        qualified = self._qualified.get(queue)
        if qualified is None:  # skills change rarely, presence often: the skill test is kept apart
            requirement = self.steps[queue][0].alternatives
            qualified = self._qualified[queue] = [agent.id for agent in self.agents.values()
                                                  if matching.meets(agent.skills, requirement)]
        staffed = free = 0
        for agent_id in qualified:
            agent = self.agents[agent_id]
            if agent.presence not in ("available", "wrap_up"):
                continue
            cost = agent.cost(channel)
            staffed += agent.capacity // cost
            if agent.id in self._indexed:  # ready: available and not backed off
                free += agent.free() // cost
        self._staffing_cache[(queue, channel)] = (self._staff_version, staffed, free)
        return staffed, free

    def estimated_wait_s(self, contact_id: int) -> float | None:
        """Forecast seconds until this contact is offered (see ``queues.ewt``); None if unknown.

        The first forecast for a contact is kept and compared with its real wait when it is
        accepted, which is what ``announceable`` judges."""
        contact = self._contact(contact_id)
        position = self.position(contact_id)
        if position is None:
            return 0.0
        staffed, free = self.staffing(contact.queue, contact.channel)
        ewt = forecast_wait_s(position, staffed, free, self.handle_times.mean_s(contact.queue, contact.channel))
        if ewt is not None:
            self._predicted.setdefault(contact_id, ewt)
        return ewt

    def announceable(self, queue: str) -> bool:
        return self.accuracy.announceable(queue)

    def explain(self, contact_id: int, now: float) -> dict:
        """Why this contact waits (or who may take it): every agent with the reason they are
        excluded. A full scan, meant for a supervisor's question, not for the routing path."""
        contact = self._contact(contact_id)
        requirement = self.requirement_of(contact_id)
        trace = self._trace_head(contact, now) if contact.id in self._home else {"queue": contact.queue}
        excluded: dict[str, list[int]] = defaultdict(list)
        eligible = []
        for agent in self.agents.values():
            reason = matching.exclusion_reason(agent, contact, requirement, now)
            if reason is None:
                eligible.append(agent.id)
            else:
                excluded[reason].append(agent.id)
        trace.update(state=contact.state, eligible=sorted(eligible),
                     excluded={k: sorted(v) for k, v in sorted(excluded.items())},
                     position=self.position(contact_id))
        return trace
