"""A discrete-event simulation that drives the real routing engine on a virtual clock.

Contacts arrive (Poisson, or replayed from recorded traffic), the engine offers them, agents accept
at once and handle them for their handle time, then take their group's wrap-up. The simulation
measures per queue what a supervisor reads on the wallboard (service level, ASA, offers, occupancy)
and how far the engine's wait estimates were from the waits that happened (``ewt_mae_s``).

Used by ``python -m bench simulate`` (against Erlang C) and by ``flask routing replay`` (a changed
configuration beside the current one).
"""
from __future__ import annotations

import heapq
import itertools
import random
from collections import defaultdict
from dataclasses import dataclass, field

from queues.config import RoutingConfig
from queues.engine import RoutingEngine
from queues.matching import Contact


@dataclass(frozen=True, slots=True)
class Arrival:
    at_s: float
    queue: str
    channel: str
    handle_s: float
    priority: int = 0
    required_skills: tuple[tuple[str, int], ...] = ()
    native_skill: str | None = None  # an agent without it takes ``mismatch_factor`` times longer
    patience_s: float | None = None  # hangs up after this long waiting (None: never)


@dataclass(frozen=True, slots=True)
class SimAgent:
    id: int
    skills: dict[str, int]
    group: str = "default"


@dataclass
class QueueFigures:
    offered: int = 0
    answered: int = 0
    answered_in_target: int = 0
    abandoned: int = 0
    overflowed: int = 0
    offers: int = 0
    wait_total_s: float = 0.0
    ewt_error_total_s: float = 0.0
    ewt_samples: int = 0

    @property
    def service_level(self) -> float:
        finished = self.answered + self.abandoned + self.overflowed
        return self.answered_in_target / finished if finished else 1.0

    @property
    def asa_s(self) -> float:
        return self.wait_total_s / self.answered if self.answered else 0.0

    @property
    def ewt_mae_s(self) -> float | None:
        return self.ewt_error_total_s / self.ewt_samples if self.ewt_samples else None


@dataclass
class SimReport:
    queues: dict[str, QueueFigures] = field(default_factory=lambda: defaultdict(QueueFigures))
    busy_s: float = 0.0
    measured_s: float = 0.0
    agents: int = 0

    @property
    def occupancy(self) -> float:
        return self.busy_s / (self.agents * self.measured_s) if self.agents and self.measured_s else 0.0

    def total(self) -> QueueFigures:
        out = QueueFigures()
        for figures in self.queues.values():
            for name in vars(out):
                setattr(out, name, getattr(out, name) + getattr(figures, name))
        return out


def poisson_arrivals(rng: random.Random, *, rate_per_s: float, duration_s: float, queue: str,
                     channel: str = "voice", mean_handle_s: float, start_s: float = 0.0,
                     **extra) -> list[Arrival]:
    """Arrivals with exponential gaps and exponential handle times."""
    out, at = [], start_s
    while True:
        at += rng.expovariate(rate_per_s)
        if at >= start_s + duration_s:
            return out
        out.append(Arrival(at, queue, channel, rng.expovariate(1.0 / mean_handle_s), **extra))


class Simulation:
    """One run: build with a config, agents and arrivals, then ``run()``."""

    def __init__(self, config: RoutingConfig, agents: list[SimAgent], arrivals: list[Arrival], *,
                 warmup_s: float = 0.0, mismatch_factor: float = 1.0):
        self.config = config
        self.engine = RoutingEngine(config, trace_limit=0)
        self.arrivals = sorted(arrivals, key=lambda a: a.at_s)
        self.warmup_s = warmup_s
        self.mismatch_factor = mismatch_factor
        self.report = SimReport(agents=len(agents))
        self._events: list[tuple] = []
        self._seq = itertools.count()
        self._by_id: dict[int, Arrival] = {}
        self._predicted: dict[int, float | None] = {}
        for agent in agents:
            self.engine.upsert_agent(agent.id, agent.skills, 0.0, group=agent.group)
            self.engine.set_presence(agent.id, "available", 0.0)

    def run(self) -> SimReport:
        for index, arrival in enumerate(self.arrivals, start=1):
            self._push(arrival.at_s, "arrive", index)
            if arrival.patience_s is not None:
                self._push(arrival.at_s + arrival.patience_s, "abandon", index)
        end_s = self.arrivals[-1].at_s if self.arrivals else 0.0
        while True:
            timer = self.engine.next_timer_at()
            if not self._events and timer is None:
                break
            if timer is not None and (not self._events or timer < self._events[0][0]):
                now = timer
            else:
                now, _, kind, ident = heapq.heappop(self._events)
                getattr(self, f"_{kind}")(ident, now)
            self._settle(now)
        self.report.measured_s = max(0.0, end_s - self.warmup_s)
        return self.report

    def _push(self, at: float, kind: str, ident: int) -> None:
        heapq.heappush(self._events, (at, next(self._seq), kind, ident))

    def _measured(self, arrival: Arrival) -> bool:
        return arrival.at_s >= self.warmup_s

    def _arrive(self, cid: int, now: float) -> None:
        arrival = self.arrivals[cid - 1]
        self._by_id[cid] = arrival
        self.engine.add_contact(Contact(cid, arrival.queue, arrival.channel, now, now, priority=arrival.priority,
                                        required_skills=arrival.required_skills), now)
        self._predicted[cid] = self.engine.estimated_wait_s(cid)
        if self._measured(arrival):
            self.report.queues[arrival.queue].offered += 1

    def _abandon(self, cid: int, now: float) -> None:
        contact = self.engine.contacts.get(cid)
        if contact is None or contact.state != "waiting":
            return
        self.engine.remove_contact(cid, now)
        if self._measured(self._by_id[cid]):
            self.report.queues[contact.queue].abandoned += 1

    def _finish(self, cid: int, now: float) -> None:
        self.engine.release(cid, now)

    def _settle(self, now: float) -> None:
        result = self.engine.match(now)
        for contact, _action in result.overflowed:
            if self._measured(self._by_id[contact.id]):
                self.report.queues[contact.queue].overflowed += 1
        for offer in result.offers:
            self._answer(offer.contact_id, offer.agent_id, now)

    def _answer(self, cid: int, agent_id: int, now: float) -> None:
        arrival = self._by_id[cid]
        self.engine.accept(cid, agent_id, now)
        handle_s = arrival.handle_s
        if arrival.native_skill and not self.engine.agents[agent_id].skills.get(arrival.native_skill):
            handle_s *= self.mismatch_factor
        self._push(now + handle_s, "finish", cid)
        if not self._measured(arrival):
            return
        figures = self.report.queues[arrival.queue]
        waited = now - arrival.at_s
        figures.answered += 1
        figures.offers += 1
        figures.wait_total_s += waited
        figures.answered_in_target += waited <= self.config.queue(arrival.queue).service_level.within_s
        predicted = self._predicted.pop(cid, None)
        if predicted is not None:
            figures.ewt_error_total_s += abs(predicted - waited)
            figures.ewt_samples += 1
        self.report.busy_s += handle_s
