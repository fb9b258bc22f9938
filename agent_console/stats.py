"""An agent's own figures for today, computed from the interactions' event timestamps (pure).

Never kept as counters: the event log is the one source, so these agree with the supervisor's reports.

Definitions (each interaction's transitions, in order):
- a *handle* is a transition into ``connected`` attributed to the agent (the routing service records the
  agent as ``data.agent_id``, or the actor is ``agent:<id>``/``staff:<id>``), starting today (agent's local day);
- *talk* runs from that transition to the next transition out of ``connected`` (or now, while still
  connected); *wrap* runs from the following ``wrap_up`` transition to the next one (or now);
- ``average_handle_s`` = (talk + wrap of completed handles) / completed handles, where a handle is
  completed once its interaction left ``wrap_up`` (or left ``connected`` other than into wrap-up);
- ``rejected`` counts offers taken back from the agent today: a transition out of ``offered`` to
  ``queued``/``callback_pending`` attributed to the agent (reject, no answer, disconnect).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

RETURNED = frozenset({"queued", "callback_pending"})


@dataclass(frozen=True)
class EventRow:
    interaction_id: int
    from_state: str | None
    to_state: str | None
    actor: str
    data: Mapping[str, Any]
    occurred_at: datetime


@dataclass
class DayStats:
    handled: int = 0
    by_channel: dict[str, int] = field(default_factory=dict)
    talk_s: int = 0
    wrap_s: int = 0
    average_handle_s: int | None = None
    rejected: int = 0
    day_started_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"handled": self.handled, "by_channel": dict(self.by_channel), "talk_s": self.talk_s,
                "wrap_s": self.wrap_s, "average_handle_s": self.average_handle_s, "rejected": self.rejected,
                "day_started_at": self.day_started_at.isoformat() if self.day_started_at else ""}


def day_start(now: datetime, timezone: str) -> datetime:
    """Midnight of ``now``'s day in ``timezone`` (unknown zones fall back to UTC), as an aware datetime."""
    try:
        zone = ZoneInfo(timezone)
    except (KeyError, ValueError):
        zone = ZoneInfo("UTC")
    local = now.astimezone(zone)
    return datetime.combine(local.date(), time(0), tzinfo=zone)


def attributed_to(row: EventRow, agent_id: int) -> bool:
    """The agent's own row: ``data.agent_id`` names them, or the actor is ``agent:<id>`` / ``staff:<id>``."""
    return row.data.get("agent_id") == agent_id or row.actor in (f"agent:{agent_id}", f"staff:{agent_id}")


def agent_day_stats(rows: Iterable[EventRow], channels: Mapping[int, str], agent_id: int, *,
                    since: datetime, now: datetime) -> DayStats:
    """Today's figures for ``agent_id`` from the transition rows of the interactions they touched
    (``rows`` in occurrence order; rows of other agents are fine and ignored where not theirs)."""
    stats = DayStats(day_started_at=since)
    per_interaction: dict[int, list[EventRow]] = {}
    for row in rows:
        per_interaction.setdefault(row.interaction_id, []).append(row)
    completed_s = completed = 0
    for interaction_id, history in per_interaction.items():
        for index, row in enumerate(history):
            if row.occurred_at < since or not attributed_to(row, agent_id):
                continue
            if row.from_state == "offered" and row.to_state in RETURNED:
                stats.rejected += 1
            if row.to_state != "connected":
                continue
            talk_s, wrap_s, done = _handle_span(history[index + 1:], row.occurred_at, now)
            stats.handled += 1
            channel = channels.get(interaction_id, "unknown")
            stats.by_channel[channel] = stats.by_channel.get(channel, 0) + 1
            stats.talk_s += talk_s
            stats.wrap_s += wrap_s
            if done:
                completed += 1
                completed_s += talk_s + wrap_s
    stats.average_handle_s = round(completed_s / completed) if completed else None
    return stats


def _seconds(start: datetime, end: datetime) -> int:
    return max(0, int((end - start) / timedelta(seconds=1)))


def _handle_span(after: list[EventRow], connected_at: datetime, now: datetime) -> tuple[int, int, bool]:
    """(talk seconds, wrap seconds, completed?) of one handle, from the rows after its connect."""
    left = next((r for r in after if r.from_state == "connected"), None)
    if left is None:
        return _seconds(connected_at, now), 0, False
    talk_s = _seconds(connected_at, left.occurred_at)
    if left.to_state != "wrap_up":
        return talk_s, 0, True
    ended = next((r for r in after if r.from_state == "wrap_up" and r.occurred_at >= left.occurred_at), None)
    if ended is None:
        return talk_s, _seconds(left.occurred_at, now), False
    return talk_s, _seconds(left.occurred_at, ended.occurred_at), True
