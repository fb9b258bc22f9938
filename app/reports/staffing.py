"""Staffing: agents needed per interval from a forecast (Erlang C), beside the agents scheduled.

Per interval (formulas shown on the staffing page too):
  traffic A = contacts × AHT ÷ interval length (Erlangs);
  on-phone agents N = the fewest with Erlang C service level ≥ target (``app.reports.erlang.agents_needed``);
  agents to schedule = ⌈N ÷ (1 − shrinkage)⌉ (shrinkage: breaks, training, absence);
  gap = scheduled − to schedule (negative: short-staffed).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from app.reports import erlang
from app.reports.models import ScheduledShift, StaffingForecast

FORMULAS = [
    "traffic (Erlangs) = contacts × AHT ÷ interval length",
    "agents needed = fewest agents whose Erlang C service level reaches the target",
    "agents to schedule = ⌈agents needed ÷ (1 − shrinkage)⌉",
    "gap = agents scheduled − agents to schedule",
]


class StaffingError(ValueError):
    """A forecast or target that cannot be planned; ``code``: bad_forecast, bad_shrinkage, bad_shift,
    unreachable (no staffing up to the limit meets the target, or the target is 100%)."""

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(message)


@dataclass(frozen=True)
class IntervalPlan:
    start: datetime
    contacts: int
    aht_s: int
    traffic: float
    agents_needed: int
    agents_to_schedule: int
    scheduled: int
    service_level: float | None  # Erlang C's prediction with ``agents_needed``
    asa_s: float | None
    occupancy: float | None

    @property
    def gap(self) -> int:
        return self.scheduled - self.agents_to_schedule


def plan_interval(start: datetime, contacts: int, aht_s: int, *, interval_s: int, target_level: float,
                  target_s: float, shrinkage: float, scheduled: int, max_agents: int) -> IntervalPlan:
    """Erlang C staffing for one interval. Raises StaffingError for inputs the model cannot plan."""
    if contacts < 0 or aht_s <= 0:
        raise StaffingError("bad_forecast", "contacts must be ≥ 0 and AHT > 0")
    if not 0 <= shrinkage < 1:
        raise StaffingError("bad_shrinkage", "shrinkage must be at least 0 and below 1")
    if contacts == 0:
        return IntervalPlan(start, 0, aht_s, 0.0, 0, 0, scheduled, None, None, None)
    traffic = erlang.traffic_erlangs(contacts, interval_s, aht_s)
    try:
        figures = erlang.agents_needed(traffic, aht_s, target_s, target_level, limit=max_agents)
    except erlang.ErlangError as exc:
        raise StaffingError("unreachable", str(exc)) from exc
    to_schedule = math.ceil(round(figures.agents / (1 - shrinkage), 9))
    return IntervalPlan(start, contacts, aht_s, traffic, figures.agents, to_schedule, scheduled,
                        figures.service_level, figures.asa_s, figures.occupancy)


def scheduled_per_interval(shifts: Iterable[tuple[datetime, datetime]], starts: Sequence[datetime],
                           interval: timedelta) -> list[int]:
    """How many shifts cover each whole interval (a shift covering part of an interval does not count)."""
    shifts = list(shifts)
    return [sum(1 for s, e in shifts if s <= start and e >= start + interval) for start in starts]


def forecast_rows(session: Session, queue: str, start: datetime, end: datetime) -> list[StaffingForecast]:
    return list(session.scalars(select(StaffingForecast).where(
        StaffingForecast.queue == queue, StaffingForecast.interval_start >= start,
        StaffingForecast.interval_start < end).order_by(StaffingForecast.interval_start)))


def save_forecast(session: Session, queue: str, start: datetime, interval_min: int,
                  rows: Sequence[tuple[int, int]]) -> list[StaffingForecast]:
    """Replace the forecast of ``queue`` from ``start`` with consecutive intervals of (contacts, aht_s).
    Does not commit. Raises StaffingError on negative contacts or non-positive AHT."""
    if any(c < 0 or a <= 0 for c, a in rows):
        raise StaffingError("bad_forecast", "contacts must be ≥ 0 and AHT > 0")
    end = start + timedelta(minutes=interval_min * len(rows))
    session.execute(delete(StaffingForecast).where(
        StaffingForecast.queue == queue, StaffingForecast.interval_start >= start,
        StaffingForecast.interval_start < end))
    saved = [StaffingForecast(queue=queue, interval_start=start + timedelta(minutes=interval_min * i),
                              interval_min=interval_min, contacts=c, aht_s=a) for i, (c, a) in enumerate(rows)]
    session.add_all(saved)
    return saved


def add_shift(session: Session, agent_id: int, starts_at: datetime, ends_at: datetime,
              queue: str | None = None) -> ScheduledShift:
    """Roster an agent (does not commit). Raises StaffingError when the shift ends before it starts."""
    if ends_at <= starts_at:
        raise StaffingError("bad_shift", "a shift must end after it starts")
    shift = ScheduledShift(agent_id=agent_id, queue=queue or None, starts_at=starts_at, ends_at=ends_at)
    session.add(shift)
    return shift


def staffing_plan(session: Session, config, queue: str, start: datetime, end: datetime, *,
                  shrinkage: float | None = None) -> list[IntervalPlan]:
    """Plan every forecast interval of ``queue`` in [start, end) against the shifts rostered on that
    queue (or on every queue). The target comes from the queue's service level in config.yaml.
    Raises KeyError for an unknown queue and StaffingError for an impossible target."""
    queue_config = config.routing.queue(queue)
    settings = config.reports.staffing
    shrink = settings.shrinkage if shrinkage is None else shrinkage
    forecasts = forecast_rows(session, queue, start, end)
    shifts = session.execute(select(ScheduledShift.starts_at, ScheduledShift.ends_at).where(
        or_(ScheduledShift.queue == queue, ScheduledShift.queue.is_(None)),
        ScheduledShift.starts_at < end, ScheduledShift.ends_at > start)).all()
    plans = []
    for f in forecasts:
        interval = timedelta(minutes=f.interval_min)
        (scheduled,) = scheduled_per_interval(shifts, [f.interval_start], interval)
        plans.append(plan_interval(
            f.interval_start, f.contacts, f.aht_s, interval_s=f.interval_min * 60,
            target_level=queue_config.service_level.percent / 100, target_s=queue_config.service_level.within_s,
            shrinkage=shrink, scheduled=scheduled, max_agents=settings.max_agents))
    return plans
