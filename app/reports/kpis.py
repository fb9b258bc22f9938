"""Contact-centre KPIs, computed from the interactions' event timestamps (pure: no database, no Flask).

Two steps, both pure:

1. ``derive_contact(contact, events, ...)`` walks ONE interaction's event log in order and returns its
   *queue visits* (time spent waiting in a queue, and how the wait ended) and its *handlings* (an agent's
   talk, hold and wrap-up on it). Nothing is read from counters: every figure below is a sum or a count
   over these, and they come only from ``interaction_events.occurred_at``.
2. ``aggregate(...)`` groups visits, handlings, survey answers, complaints and agent presence by queue,
   agent, channel or local day, and applies the formulas in ``FORMULAS`` (shown on the reports page too).

How the event log is read (the state machine is in ``app.interactions.states``):

- A *visit* starts when the interaction enters ``queued`` from anywhere except ``offered`` (an offer that
  was rejected or timed out puts the contact back in the SAME visit: it keeps its place and its wait).
  Its queue is ``data["queue"]`` of that event when present, else the interaction's current queue.
- The visit ends: *answered* at the first ``connected``; *abandoned* at ``abandoned`` (a *short abandon*
  when the wait was under the configured threshold -- a caller who hung up at once, counted apart);
  *overflowed* at ``voicemail`` or ``closed`` straight from waiting (the queue's max-wait action);
  ``callback_pending`` keeps the visit open (the customer is still waiting to be served).
- A *handling* starts at ``connected`` and ends at ``wrap_up`` -> ``closed`` (wrap-up time), or at
  ``closed`` / ``queued`` (a transfer) straight from ``connected`` (no wrap-up). Hold is the time between
  a ``hold`` fact and the next ``unhold`` fact (or the end of talk). Talk = connected time minus hold.
  The agent is ``data["agent_id"]`` of the ``connected`` event, else the ``agent:<id>`` actor, else the
  interaction's agent.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from enum import StrEnum

from app.interactions.states import State

HOLD_START_KINDS = frozenset({"hold"})
HOLD_END_KINDS = frozenset({"unhold", "resume"})
STAFFED_PRESENCES = frozenset({"available", "wrap_up", "busy"})

FORMULAS: dict[str, str] = {
    "offered": "offered = queue visits that started in the period",
    "answered": "answered = visits that reached an agent (connected)",
    "abandoned": "abandoned = visits the customer left after waiting at least the short-abandon threshold",
    "short_abandoned": "short abandoned = visits left before the short-abandon threshold (counted apart)",
    "overflowed": "overflowed = visits sent to voicemail or closed by the queue's overflow action",
    "service_level": "service level = answered within the queue's target ÷ (answered + abandoned + overflowed)",
    "abandon_rate": "abandonment = abandoned ÷ (offered − short abandoned)",
    "asa_s": "ASA = Σ wait of answered visits ÷ answered",
    "aht_s": "AHT = Σ (talk + hold + wrap-up) ÷ handled (handlings completed in the period)",
    "occupancy": "occupancy = Σ handle time ÷ Σ staffed time (available, busy or wrap-up)",
    "fcr": "first-contact resolution = handled contacts with no further contact from the same customer "
           "within the window ÷ handled contacts of known customers",
    "csat": "CSAT = survey answers scoring 4 or 5 ÷ all CSAT answers (1-5); average shown beside it",
    "complaints": "complaints = complaints received from the group's interactions in the period",
}


class Dimension(StrEnum):
    QUEUE = "queue"
    AGENT = "agent"
    CHANNEL = "channel"
    DAY = "day"


class Outcome(StrEnum):
    ANSWERED = "answered"
    ABANDONED = "abandoned"
    SHORT_ABANDONED = "short_abandoned"
    OVERFLOWED = "overflowed"
    WAITING = "waiting"


@dataclass(frozen=True, slots=True)
class ContactInfo:
    """The few interaction columns the derivation needs."""

    interaction_id: int
    channel: str
    queue: str | None
    agent_id: int | None = None
    customer_id: int | None = None
    direction: str = "inbound"
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One ``interaction_events`` row as plain values."""

    kind: str
    from_state: str | None
    to_state: str | None
    occurred_at: datetime
    actor: str = ""
    data: Mapping = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class QueueVisit:
    interaction_id: int
    channel: str
    queue: str | None
    started_at: datetime
    outcome: Outcome
    ended_at: datetime | None
    wait_s: float | None
    agent_id: int | None = None  # who answered


@dataclass(frozen=True, slots=True)
class Handling:
    interaction_id: int
    channel: str
    queue: str | None
    agent_id: int | None
    connected_at: datetime
    talk_s: float
    hold_s: float
    wrap_s: float
    ended_at: datetime | None  # None: still connected or wrapping up (not counted in AHT)
    customer_id: int | None = None
    transferred_out: bool = False  # ended by a transfer to another queue: the contact is not finished

    @property
    def handle_s(self) -> float:
        return self.talk_s + self.hold_s + self.wrap_s


@dataclass(frozen=True, slots=True)
class SurveyAnswer:
    interaction_id: int | None
    score: int  # CSAT 1-5
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class ComplaintRecord:
    interaction_id: int | None
    received_at: datetime
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class PresenceSpan:
    """An agent in one presence from ``start`` to ``end`` (``end`` None: still in it)."""

    agent_id: int
    presence: str
    start: datetime
    end: datetime | None


def _seconds(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds()


def _agent_of(event: EventRecord, fallback: int | None) -> int | None:
    raw = event.data.get("agent_id") if event.data else None
    if isinstance(raw, int):
        return raw
    prefix, _, rest = (event.actor or "").partition(":")
    if prefix in ("agent", "staff") and rest.isdigit():
        return int(rest)
    return fallback


class _Walker:
    """Accumulates one interaction's visits and handlings while its events are replayed in order."""

    def __init__(self, contact: ContactInfo, short_abandon_s: float):
        self.contact, self.short_abandon_s = contact, short_abandon_s
        self.visits: list[QueueVisit] = []
        self.handlings: list[Handling] = []
        self.visit: tuple[datetime, str | None] | None = None
        self.handling: dict | None = None

    def close_visit(self, at: datetime, outcome: Outcome, agent_id: int | None = None) -> None:
        started, queue = self.visit  # type: ignore[misc]
        wait = _seconds(started, at)
        if outcome == Outcome.ABANDONED and wait < self.short_abandon_s:
            outcome = Outcome.SHORT_ABANDONED
        self.visits.append(QueueVisit(self.contact.interaction_id, self.contact.channel, queue, started,
                                      outcome, at, wait, agent_id))
        self.visit = None

    def end_talk(self, at: datetime) -> None:
        h = self.handling
        if h["hold_from"] is not None:
            h["hold_s"] += _seconds(h["hold_from"], at)
            h["hold_from"] = None
        h["talk_end"] = at

    def finish_handling(self, at: datetime | None, *, transferred: bool = False) -> None:
        h = self.handling
        talk_end = h["talk_end"] or at
        talk_total = _seconds(h["connected_at"], talk_end) if talk_end else 0.0
        wrap = _seconds(h["wrap_from"], at) if (h["wrap_from"] and at) else 0.0
        self.handlings.append(Handling(
            self.contact.interaction_id, self.contact.channel, h["queue"], h["agent_id"], h["connected_at"],
            talk_s=talk_total - h["hold_s"], hold_s=h["hold_s"], wrap_s=wrap, ended_at=at,
            customer_id=self.contact.customer_id, transferred_out=transferred))
        self.handling = None

    def transition(self, ev: EventRecord) -> None:
        to, at = ev.to_state, ev.occurred_at
        if self.handling is not None and ev.from_state == State.CONNECTED:
            self.end_talk(at)
            if to == State.WRAP_UP:
                self.handling["wrap_from"] = at
            else:  # closed, or queued (a transfer): the handling ends without wrap-up
                self.finish_handling(at, transferred=to == State.QUEUED)
        elif self.handling is not None and ev.from_state == State.WRAP_UP:
            self.finish_handling(at)
        if to == State.QUEUED and ev.from_state != State.OFFERED:
            if self.visit is not None:  # a visit left without an ending event: count it as overflow
                self.close_visit(at, Outcome.OVERFLOWED)
            self.visit = (at, (ev.data or {}).get("queue") or self.contact.queue)
        elif to == State.CONNECTED:
            agent = _agent_of(ev, self.contact.agent_id)
            queue = self.visit[1] if self.visit else self.contact.queue
            if self.visit is not None:
                self.close_visit(at, Outcome.ANSWERED, agent)
            self.handling = {"connected_at": at, "agent_id": agent, "queue": queue, "hold_s": 0.0,
                             "hold_from": None, "talk_end": None, "wrap_from": None}
        elif to == State.ABANDONED and self.visit is not None:
            self.close_visit(at, Outcome.ABANDONED)
        elif to in (State.VOICEMAIL, State.CLOSED) and self.visit is not None:
            self.close_visit(at, Outcome.OVERFLOWED)

    def fact(self, ev: EventRecord) -> None:
        h = self.handling
        if h is None or h["talk_end"] is not None:
            return
        if ev.kind in HOLD_START_KINDS and h["hold_from"] is None:
            h["hold_from"] = ev.occurred_at
        elif ev.kind in HOLD_END_KINDS and h["hold_from"] is not None:
            h["hold_s"] += _seconds(h["hold_from"], ev.occurred_at)
            h["hold_from"] = None


def derive_contact(contact: ContactInfo, events: Iterable[EventRecord], *,
                   short_abandon_s: float) -> tuple[list[QueueVisit], list[Handling]]:
    """Replay one interaction's events (in log order) into its queue visits and handlings.

    A visit still open at the end is returned with outcome ``waiting``; a handling still open is returned
    with ``ended_at=None`` (its talk so far is not counted: it is not handled yet)."""
    walker = _Walker(contact, short_abandon_s)
    for ev in events:
        if ev.kind in ("transition", "created"):
            walker.transition(ev)
        else:
            walker.fact(ev)
    if walker.visit is not None:
        started, queue = walker.visit
        walker.visits.append(QueueVisit(contact.interaction_id, contact.channel, queue, started,
                                        Outcome.WAITING, None, None))
    if walker.handling is not None:
        walker.finish_handling(None)
    return walker.visits, walker.handlings


# ---------------------------------------------------------------------------------------------- aggregate
@dataclass(frozen=True, slots=True)
class Period:
    """Half-open [start, end) in aware UTC."""

    start: datetime
    end: datetime

    def __contains__(self, at: datetime | None) -> bool:
        return at is not None and self.start <= at < self.end


@dataclass(slots=True)
class KpiRow:
    key: str
    offered: int = 0
    answered: int = 0
    answered_in_sl: int = 0
    abandoned: int = 0
    short_abandoned: int = 0
    overflowed: int = 0
    waiting: int = 0
    wait_answered_s: float = 0.0
    handled: int = 0
    talk_s: float = 0.0
    hold_s: float = 0.0
    wrap_s: float = 0.0
    staffed_s: float | None = None
    fcr_base: int = 0
    fcr_resolved: int = 0
    csat_responses: int = 0
    csat_satisfied: int = 0
    csat_sum: int = 0
    complaints: int = 0

    # -- the formulas (FORMULAS says the same in words) --
    @property
    def service_level(self) -> float | None:
        base = self.answered + self.abandoned + self.overflowed
        return self.answered_in_sl / base if base else None

    @property
    def abandon_rate(self) -> float | None:
        base = self.offered - self.short_abandoned
        return self.abandoned / base if base > 0 else None

    @property
    def asa_s(self) -> float | None:
        return self.wait_answered_s / self.answered if self.answered else None

    @property
    def handle_s(self) -> float:
        return self.talk_s + self.hold_s + self.wrap_s

    @property
    def aht_s(self) -> float | None:
        return self.handle_s / self.handled if self.handled else None

    @property
    def occupancy(self) -> float | None:
        return self.handle_s / self.staffed_s if self.staffed_s else None

    @property
    def fcr(self) -> float | None:
        return self.fcr_resolved / self.fcr_base if self.fcr_base else None

    @property
    def csat(self) -> float | None:
        return self.csat_satisfied / self.csat_responses if self.csat_responses else None

    @property
    def csat_avg(self) -> float | None:
        return self.csat_sum / self.csat_responses if self.csat_responses else None

    def as_dict(self) -> dict:
        counts = {name: getattr(self, name) for name in (
            "offered", "answered", "answered_in_sl", "abandoned", "short_abandoned", "overflowed", "waiting",
            "handled", "complaints", "csat_responses")}
        ratios = {name: getattr(self, name) for name in (
            "service_level", "abandon_rate", "asa_s", "aht_s", "occupancy", "fcr", "csat", "csat_avg")}
        times = {"talk_s": self.talk_s, "hold_s": self.hold_s, "wrap_s": self.wrap_s, "staffed_s": self.staffed_s}
        return {"key": self.key, **counts, **ratios, **times}


@dataclass(frozen=True, slots=True)
class ReportInput:
    """Everything ``aggregate`` needs, as plain values."""

    contacts: Mapping[int, ContactInfo]
    visits: Sequence[QueueVisit]
    handlings: Sequence[Handling]
    surveys: Sequence[SurveyAnswer] = ()
    complaints: Sequence[ComplaintRecord] = ()
    presence: Sequence[PresenceSpan] = ()
    # For first-contact resolution: (customer_id, created_at) of every inbound interaction, any period.
    customer_contacts: Sequence[tuple[int, datetime]] = ()


NO_KEY = "-"


def _key_fn(dimension: Dimension, tz: tzinfo) -> Callable[[datetime, str | None, str | None, int | None], str]:
    def key(at: datetime, queue: str | None, channel: str | None, agent_id: int | None) -> str:
        if dimension == Dimension.DAY:
            return at.astimezone(tz).date().isoformat()
        value = {Dimension.QUEUE: queue, Dimension.CHANNEL: channel, Dimension.AGENT: agent_id}[dimension]
        return NO_KEY if value is None else str(value)

    return key


def _clip_s(span: PresenceSpan, start: datetime, end: datetime) -> float:
    lo, hi = max(span.start, start), min(span.end or end, end)
    return max(0.0, _seconds(lo, hi))


def _staffed_by(data: ReportInput, period: Period, dimension: Dimension, tz: tzinfo) -> dict[str, float] | None:
    """Staffed seconds per group; only agents and days have one (queues and channels share agents)."""
    spans = [s for s in data.presence if s.presence in STAFFED_PRESENCES]
    if dimension == Dimension.AGENT:
        out: dict[str, float] = defaultdict(float)
        for span in spans:
            out[str(span.agent_id)] += _clip_s(span, period.start, period.end)
        return out
    if dimension == Dimension.DAY:
        out = defaultdict(float)
        day = datetime.combine(period.start.astimezone(tz).date(), datetime.min.time(), tz)
        while day < period.end:
            nxt = (day + timedelta(days=1, hours=3)).replace(hour=0)  # DST-safe next local midnight
            lo, hi = max(day, period.start), min(nxt, period.end)
            total = sum(_clip_s(span, lo, hi) for span in spans)
            if total:
                out[day.date().isoformat()] = total
            day = nxt
        return out
    return None


def _first_contact_resolved(handling: Handling, later: Mapping[int, Sequence[datetime]], window: timedelta) -> bool:
    contact_times = later.get(handling.customer_id, ())
    return not any(handling.connected_at < t <= handling.connected_at + window for t in contact_times)


def aggregate(data: ReportInput, period: Period, dimension: Dimension | str, *, sl_threshold_s: Mapping[str, float],
              default_sl_threshold_s: float, fcr_window: timedelta, tz: tzinfo) -> tuple[list[KpiRow], KpiRow]:
    """Group the period's figures by ``dimension``; return (rows sorted by key, the total row).

    Visits count in the period they started, handlings in the period they connected, surveys and
    complaints when recorded/received. ``sl_threshold_s`` maps a queue to its "answered within" seconds.
    FCR counts each handling that finished a contact (not one ended by a transfer); its repeat check
    looks for ``data.customer_contacts`` (interactions' created_at, any period) after the handling began."""
    dimension = Dimension(dimension)
    key = _key_fn(dimension, tz)
    rows: dict[str, KpiRow] = {}
    total = KpiRow("total")

    def rows_for(k: str) -> tuple[KpiRow, KpiRow]:
        return rows.setdefault(k, KpiRow(k)), total

    for v in data.visits:
        if v.started_at not in period:
            continue
        for row in rows_for(key(v.started_at, v.queue, v.channel, v.agent_id)):
            _add_visit(row, v, sl_threshold_s.get(v.queue or "", default_sl_threshold_s))

    later: dict[int, list[datetime]] = defaultdict(list)
    for customer_id, created in data.customer_contacts:
        later[customer_id].append(created)
    for h in data.handlings:
        if h.connected_at not in period or h.ended_at is None:
            continue
        counts_for_fcr = h.customer_id is not None and not h.transferred_out
        resolved = _first_contact_resolved(h, later, fcr_window) if counts_for_fcr else None
        for row in rows_for(key(h.connected_at, h.queue, h.channel, h.agent_id)):
            _add_handling(row, h, resolved)

    for s in data.surveys:
        c = data.contacts.get(s.interaction_id) if s.interaction_id is not None else None
        if s.recorded_at not in period or not 1 <= s.score <= 5:
            continue
        for row in rows_for(key(s.recorded_at, c and c.queue, c and c.channel, c and c.agent_id)):
            row.csat_responses += 1
            row.csat_sum += s.score
            row.csat_satisfied += s.score >= 4

    for comp in data.complaints:
        c = data.contacts.get(comp.interaction_id) if comp.interaction_id is not None else None
        if comp.received_at not in period:
            continue
        channel = c.channel if c else comp.channel
        for row in rows_for(key(comp.received_at, c and c.queue, channel, c and c.agent_id)):
            row.complaints += 1

    staffed = _staffed_by(data, period, dimension, tz)
    if staffed is not None:
        for k, seconds in staffed.items():
            rows_for(k)[0].staffed_s = seconds
    total.staffed_s = sum(_clip_s(s, period.start, period.end) for s in data.presence
                          if s.presence in STAFFED_PRESENCES) or None
    return [rows[k] for k in sorted(rows)], total


def _add_visit(row: KpiRow, v: QueueVisit, threshold_s: float) -> None:
    row.offered += 1
    if v.outcome == Outcome.ANSWERED:
        row.answered += 1
        row.wait_answered_s += v.wait_s or 0.0
        row.answered_in_sl += (v.wait_s or 0.0) <= threshold_s
    elif v.outcome == Outcome.ABANDONED:
        row.abandoned += 1
    elif v.outcome == Outcome.SHORT_ABANDONED:
        row.short_abandoned += 1
    elif v.outcome == Outcome.OVERFLOWED:
        row.overflowed += 1
    else:
        row.waiting += 1


def _add_handling(row: KpiRow, h: Handling, resolved: bool | None) -> None:
    row.handled += 1
    row.talk_s += h.talk_s
    row.hold_s += h.hold_s
    row.wrap_s += h.wrap_s
    if resolved is not None:
        row.fcr_base += 1
        row.fcr_resolved += resolved
