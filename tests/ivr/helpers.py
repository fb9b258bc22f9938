"""Shared builders for the IVR tests: small configs from dicts, a fake lookup port, a fixed clock."""
from __future__ import annotations

from datetime import UTC, date, datetime
from functools import lru_cache

from app.calendars import CalendarConfig
from app.config import load_desk_config
from ivr.config import IvrConfig
from ivr.engine import CallContext, CallerFacts, LookupResult

# Thursday 2026-11-26 10:00 in Shanghai (open) and 22:00 (closed); Oct 1 2026 is a holiday.
OPEN_AT = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
CLOSED_AT = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
HOLIDAY_AT = datetime(2026, 10, 1, 2, 0, tzinfo=UTC)
CALENDARS = {"default": CalendarConfig(timezone="Asia/Shanghai", holidays=[date(2026, 10, 1)])}


def P(en: str, zh: str | None = None) -> dict[str, str]:
    return {"en": en, "zh": zh or f"ZH:{en}"}


def ivr(nodes: dict, entry: str = "start", **extra) -> IvrConfig:
    return IvrConfig.model_validate({"entry": entry, "nodes": nodes, **extra})


class FakeLookups:
    """A lookup port over a dict {(kind, reference): fields}; records every question asked."""

    def __init__(self, records: dict[tuple[str, str], dict] | None = None):
        self.records = records or {}
        self.asked: list[tuple[str, str, CallerFacts]] = []

    def lookup(self, kind: str, reference: str, caller: CallerFacts) -> LookupResult | None:
        self.asked.append((kind, reference, caller))
        fields = self.records.get((kind, reference))
        return LookupResult(fields) if fields is not None else None


def ctx(caller: CallerFacts | None = None, at: datetime = OPEN_AT, lookups=None) -> CallContext:
    return CallContext(caller=caller or CallerFacts(), now=at, calendars=CALENDARS, lookups=lookups)


@lru_cache(maxsize=1)
def demo_config():
    """The desk's own config.yaml (the demo menu)."""
    return load_desk_config()
