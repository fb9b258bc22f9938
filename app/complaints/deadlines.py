"""Complaint deadlines (pure): when a complaint must be acknowledged and resolved, and when to warn.

A level's deadlines come from config (business hours and days on the complaints calendar, or plain
clock time), then a regulatory profile caps them: the desk may promise faster than the regulator, never
slower. Alerts fall at configured fractions of each clock (default 50%, 80% and the breach itself);
for a business-time clock the fraction is of business time, so a 4-business-hour clock started on
Friday evening warns on Monday morning, not on Sunday.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from app.calendars import (
    CalendarConfig,
    _open_intervals,
    add_business_days,
    add_business_time,
)
from app.complaints.config import LEVELS, DeadlinesConfig, Duration
from app.complaints.grading import Bilingual

UNIT_TEXT = {
    "minutes": ("minute(s)", "分钟"), "hours": ("hour(s)", "小时"), "days": ("day(s)", "天"),
    "weeks": ("week(s)", "周"), "business_hours": ("business hour(s)", "个工作小时"),
    "business_days": ("business day(s)", "个工作日"),
}
KIND_TEXT = {"acknowledge": ("acknowledge", "确认受理"), "resolve": ("resolve", "解决")}


class DeadlineError(ValueError):
    """An unknown level or regulatory profile, or a naive datetime; nothing was computed."""


@dataclass(frozen=True)
class Alert:
    """One warning on a clock: ``name`` is '50%', '80%' or 'breach'."""

    kind: str
    name: str
    fraction: float
    at: datetime


@dataclass(frozen=True)
class Clock:
    kind: str  # acknowledge | resolve
    start: datetime
    due: datetime
    business: bool  # fractions of this clock are measured in business time
    capped_by: str | None  # the regulatory profile that set ``due``, when it did
    explanation: Bilingual
    alerts: tuple[Alert, ...]


@dataclass(frozen=True)
class Deadlines:
    level: str
    profile: str
    acknowledge: Clock
    resolve: Clock
    acknowledge_by: str
    resolution_note: str

    def to_dict(self) -> dict:
        """JSON-safe summary kept with the complaint."""
        return {
            "level": self.level, "profile": self.profile, "acknowledge_by": self.acknowledge_by,
            "resolution_note": self.resolution_note,
            **{clock.kind: {"due": clock.due.isoformat(), "business": clock.business, "capped_by": clock.capped_by,
                            "explanation_en": clock.explanation.en, "explanation_zh": clock.explanation.zh}
               for clock in (self.acknowledge, self.resolve)},
        }


def add_duration(calendar: CalendarConfig, start: datetime, duration: Duration) -> datetime:
    """``start`` plus ``duration``: plain clock time, or open time on ``calendar`` for business units."""
    if start.tzinfo is None:
        raise DeadlineError("deadlines need an aware datetime (use app.db.utcnow())")
    if duration.unit == "business_days":
        return add_business_days(calendar, start, duration.amount)
    if duration.unit == "business_hours":
        return add_business_time(calendar, start, timedelta(hours=duration.amount))
    return start + timedelta(**{duration.unit: duration.amount})


def business_time_between(calendar: CalendarConfig, start: datetime, end: datetime) -> timedelta:
    """Open time on ``calendar`` from ``start`` to ``end`` (zero when end is not after start)."""
    total = timedelta(0)
    if end <= start:
        return total
    for begin, until in _open_intervals(calendar, start):
        if begin >= end:
            break
        total += min(until, end) - begin
    return total


def moment_at_fraction(calendar: CalendarConfig, start: datetime, due: datetime, business: bool,
                       fraction: float) -> datetime:
    """The moment ``fraction`` of a clock has been used (of business time when ``business``)."""
    if fraction >= 1:
        return due
    if not business:
        return start + (due - start) * fraction
    return add_business_time(calendar, start, business_time_between(calendar, start, due) * fraction)


def _alerts(kind: str, calendar: CalendarConfig, start: datetime, due: datetime, business: bool,
            fractions: list[float]) -> tuple[Alert, ...]:
    if due <= start:  # a clock with no time at all ("at first contact") can only be breached
        fractions = [f for f in fractions if f >= 1]
    return tuple(Alert(kind=kind, name="breach" if f >= 1 else f"{round(f * 100)}%", fraction=f,
                       at=moment_at_fraction(calendar, start, due, business, f)) for f in fractions)


def _describe(duration: Duration) -> tuple[str, str]:
    unit_en, unit_zh = UNIT_TEXT[duration.unit]
    return f"{duration.amount} {unit_en}", f"{duration.amount} {unit_zh}"


def _clock(kind: str, start: datetime, own: Duration, cap: Duration | None, profile: str, calendar: CalendarConfig,
           fractions: list[float]) -> Clock:
    due, business, capped_by = add_duration(calendar, start, own), own.is_business, None
    own_en, own_zh = _describe(own)
    kind_en, kind_zh = KIND_TEXT[kind]
    explanation = Bilingual(f"{kind_en} within {own_en} for this level", f"本级别须在 {own_zh} 内{kind_zh}")
    if cap is not None:
        cap_due = add_duration(calendar, start, cap)
        if cap_due < due:
            due, business, capped_by = cap_due, cap.is_business, profile
            cap_en, cap_zh = _describe(cap)
            explanation = Bilingual(
                f"{kind_en} within {cap_en}: the {profile} regulatory limit is earlier than the level's {own_en}",
                f"须在 {cap_zh} 内{kind_zh}：{profile} 监管时限早于本级别的 {own_zh}")
    return Clock(kind=kind, start=start, due=due, business=business, capped_by=capped_by, explanation=explanation,
                 alerts=_alerts(kind, calendar, start, due, business, fractions))


def compute_deadlines(level: str, received_at: datetime, config: DeadlinesConfig, calendar: CalendarConfig, *,
                      profile: str | None = None) -> Deadlines:
    """Acknowledge and resolve deadlines for a complaint received at ``received_at`` (aware).

    ``profile`` (a category's regulatory profile) overrides the configured default. The resolve
    deadline is the final response: the earlier of the level's deadline and the profile's limit.
    Raises DeadlineError for an unknown level or profile or a naive datetime."""
    if level not in LEVELS:
        raise DeadlineError(f"unknown complaint level {level!r}; expected one of {', '.join(LEVELS)}")
    profile_name = profile or config.regulatory_profile
    if profile_name not in config.regulatory_profiles:
        raise DeadlineError(f"unknown regulatory profile {profile_name!r}")
    if received_at.tzinfo is None:
        raise DeadlineError("deadlines need an aware datetime (use app.db.utcnow())")
    rules, limits = config.levels[level], config.regulatory_profiles[profile_name]
    fractions = config.alert_fractions
    return Deadlines(
        level=level, profile=profile_name, acknowledge_by=rules.acknowledge_by, resolution_note=rules.resolution_note,
        acknowledge=_clock("acknowledge", received_at, rules.acknowledge, limits.acknowledge, profile_name, calendar,
                           fractions),
        resolve=_clock("resolve", received_at, rules.resolve, limits.final_response, profile_name, calendar,
                       fractions))


def elapsed_fraction(calendar: CalendarConfig, start: datetime, due: datetime, business: bool,
                     now: datetime) -> float:
    """How much of a clock has been used at ``now``: 0 at the start, 1 at the deadline, above 1 after.

    Used by the at-risk dashboard; a zero-length clock is 0 before its moment and 1 from it on."""
    if due <= start:
        return 1.0 if now >= due else 0.0
    if not business:
        return (now - start) / (due - start)
    total = business_time_between(calendar, start, due)
    if not total:  # a business clock that holds no open time (all closed) is measured on the wall clock
        return (now - start) / (due - start)
    if now <= due:
        return business_time_between(calendar, start, now) / total
    return 1 + business_time_between(calendar, due, now) / total
