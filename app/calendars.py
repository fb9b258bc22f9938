"""Business-hours calendars (pure): whether a moment is open, and adding business time.

Stored times are aware UTC; a calendar interprets them in its own IANA zone, so daylight-saving
changes and holidays are handled where they belong.
"""
from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


def _default_week() -> dict[str, list[str]]:
    return {day: (["09:00-18:00"] if day not in ("sat", "sun") else []) for day in WEEKDAYS}


class CalendarConfig(BaseModel):
    """Opening hours per weekday as 'HH:MM-HH:MM' spans, plus holiday dates, in ``timezone``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = "UTC"
    weekly: dict[str, list[str]] = Field(default_factory=_default_week)
    holidays: list[date] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except Exception as exc:  # ZoneInfoNotFoundError or ValueError for malformed keys
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    @field_validator("weekly")
    @classmethod
    def _spans(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for day, spans in value.items():
            if day not in WEEKDAYS:
                raise ValueError(f"unknown weekday {day!r}; use one of {', '.join(WEEKDAYS)}")
            for span in spans:
                match = _SPAN.match(span)
                if not match or span[:5] >= span[6:]:
                    raise ValueError(f"{day}: span {span!r} must look like '09:00-18:00' with start before end")
        return value


def _spans_on(calendar: CalendarConfig, day: date) -> list[tuple[time, time | None]]:
    if day in calendar.holidays:
        return []
    spans = []
    for span in calendar.weekly.get(WEEKDAYS[day.weekday()], []):
        start = time(int(span[0:2]), int(span[3:5]))
        end = None if span[6:] == "24:00" else time(int(span[6:8]), int(span[9:11]))
        spans.append((start, end))
    return sorted(spans, key=lambda s: s[0])


def is_open(calendar: CalendarConfig, at: datetime) -> bool:
    """True when ``at`` (aware) falls inside an opening span of the calendar's local day."""
    local = at.astimezone(ZoneInfo(calendar.timezone))
    now = local.time().replace(tzinfo=None)
    return any(start <= now and (end is None or now < end) for start, end in _spans_on(calendar, local.date()))


def _open_intervals(calendar: CalendarConfig, start: datetime, max_days: int = 800):
    """Yield (open_from, open_until) aware intervals from ``start`` onwards, in order."""
    zone = ZoneInfo(calendar.timezone)
    local_start = start.astimezone(zone)
    for offset in range(max_days):
        day = local_start.date() + timedelta(days=offset)
        for span_start, span_end in _spans_on(calendar, day):
            begin = datetime.combine(day, span_start, tzinfo=zone)
            end = (datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone) if span_end is None
                   else datetime.combine(day, span_end, tzinfo=zone))
            if end <= start:
                continue
            yield max(begin, start), end


def add_business_time(calendar: CalendarConfig, start: datetime, duration: timedelta) -> datetime:
    """The moment ``duration`` of open time has passed after ``start``. Raises ValueError when the
    calendar has no opening hours in the next two years (a calendar that never opens)."""
    remaining = duration
    if remaining <= timedelta(0):
        return start
    for begin, end in _open_intervals(calendar, start):
        available = end - begin
        if remaining <= available:
            return (begin + remaining).astimezone(start.tzinfo)
        remaining -= available
    raise ValueError("calendar has no opening hours in the next two years")


def add_business_days(calendar: CalendarConfig, start: datetime, days: int) -> datetime:
    """End of the ``days``-th business day after ``start``'s local day (the usual 'resolve in N
    business days' reading): counts only days with opening hours, ends at that day's closing time."""
    if days <= 0:
        return start
    zone = ZoneInfo(calendar.timezone)
    day = start.astimezone(zone).date()
    counted = 0
    for _ in range(800):
        day += timedelta(days=1)
        spans = _spans_on(calendar, day)
        if not spans:
            continue
        counted += 1
        if counted == days:
            _, last_end = spans[-1]
            if last_end is None:
                return datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).astimezone(start.tzinfo)
            return datetime.combine(day, last_end, tzinfo=zone).astimezone(start.tzinfo)
    raise ValueError("calendar has no opening hours in the next two years")


def next_open(calendar: CalendarConfig, at: datetime) -> datetime | None:
    """The next moment the calendar is open at or after ``at``; None if never within two years."""
    for begin, _end in _open_intervals(calendar, at):
        return begin.astimezone(at.tzinfo)
    return None
