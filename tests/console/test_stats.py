"""Today's agent figures from event timestamps: table-driven, hand-computed."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone, UTC

import pytest
from hypothesis import given, strategies as st

from agent_console.stats import EventRow, agent_day_stats, attributed_to, day_start

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ME, OTHER = 7, 8


def row(iid, frm, to, minute, *, agent=ME, actor=None):
    data = {"agent_id": agent} if agent is not None and actor is None else {}
    return EventRow(iid, frm, to, actor or "router", data, T0 + timedelta(minutes=minute))


def test_completed_call_counts_talk_and_wrap():
    rows = [row(1, "queued", "offered", 0), row(1, "offered", "connected", 1),
            row(1, "connected", "wrap_up", 6), row(1, "wrap_up", "closed", 7)]
    stats = agent_day_stats(rows, {1: "voice"}, ME, since=T0, now=T0 + timedelta(hours=1))
    assert (stats.handled, stats.talk_s, stats.wrap_s, stats.average_handle_s) == (1, 300, 60, 360)
    assert stats.by_channel == {"voice": 1}
    assert stats.rejected == 0


@pytest.mark.parametrize("rows, now_min, expected", [
    # still talking at now: talk counts to now, not completed -> no average
    ([row(1, "offered", "connected", 0)], 10, (1, 600, 0, None)),
    # in wrap-up at now
    ([row(1, "offered", "connected", 0), row(1, "connected", "wrap_up", 2)], 3, (1, 120, 60, None)),
    # transferred away (connected -> queued): completed without wrap
    ([row(1, "offered", "connected", 0), row(1, "connected", "queued", 4)], 30, (1, 240, 0, 240)),
    # two handles, averaged: (300+60 + 100+20)/2 = 240
    ([row(1, "offered", "connected", 0), row(1, "connected", "wrap_up", 5), row(1, "wrap_up", "closed", 6),
      EventRow(2, "offered", "connected", "x", {"agent_id": ME}, T0 + timedelta(minutes=10)),
      EventRow(2, "connected", "wrap_up", "x", {}, T0 + timedelta(minutes=10, seconds=100)),
      EventRow(2, "wrap_up", "closed", "x", {}, T0 + timedelta(minutes=10, seconds=120))], 60, (2, 400, 80, 240)),
    # another agent's handle is not mine
    ([row(1, "offered", "connected", 0, agent=OTHER), row(1, "connected", "wrap_up", 5)], 10, (0, 0, 0, None)),
    # attributed by actor instead of data
    ([row(1, "offered", "connected", 0, actor=f"agent:{ME}"), row(1, "connected", "closed", 1)], 10,
     (1, 60, 0, 60)),
])
def test_table(rows, now_min, expected):
    stats = agent_day_stats(rows, {1: "voice", 2: "chat"}, ME, since=T0, now=T0 + timedelta(minutes=now_min))
    assert (stats.handled, stats.talk_s, stats.wrap_s, stats.average_handle_s) == expected


def test_yesterday_is_not_today_and_returned_offers_count_as_rejected():
    rows = [row(1, "offered", "connected", -60 * 24), row(1, "connected", "wrap_up", -60 * 24 + 5),
            row(2, "offered", "queued", 3), row(3, "offered", "callback_pending", 4),
            row(4, "offered", "queued", 5, agent=OTHER)]
    stats = agent_day_stats(rows, {}, ME, since=T0, now=T0 + timedelta(hours=2))
    assert stats.handled == 0 and stats.rejected == 2


def test_day_start_uses_the_agents_zone():
    now = datetime(2026, 3, 2, 17, 30, tzinfo=UTC)  # 01:30 on the 3rd in Shanghai
    assert day_start(now, "Asia/Shanghai") == datetime(2026, 3, 3, 0, 0, tzinfo=timezone(timedelta(hours=8)))
    assert day_start(now, "Not/AZone") == datetime(2026, 3, 2, tzinfo=UTC)
    assert day_start(now, "UTC").isoformat().startswith("2026-03-02T00:00:00")


def test_to_dict_is_json_ready():
    stats = agent_day_stats([], {}, ME, since=T0, now=T0)
    assert stats.to_dict() == {"handled": 0, "by_channel": {}, "talk_s": 0, "wrap_s": 0, "average_handle_s": None,
                               "rejected": 0, "day_started_at": T0.isoformat()}


@given(st.lists(st.tuples(st.integers(0, 500), st.integers(0, 500), st.integers(0, 500)), max_size=12))
def test_talk_and_wrap_add_up_for_completed_handles(spans):
    """Invariant: for completed handles, talk + wrap equals the sum of their spans, and the average
    is that total over the count."""
    rows, cursor, total = [], 0, 0
    for iid, (wait, talk, wrap) in enumerate(spans, start=1):
        cursor += wait
        rows.append(EventRow(iid, "offered", "connected", "r", {"agent_id": ME}, T0 + timedelta(seconds=cursor)))
        cursor += talk
        rows.append(EventRow(iid, "connected", "wrap_up", "r", {}, T0 + timedelta(seconds=cursor)))
        cursor += wrap
        rows.append(EventRow(iid, "wrap_up", "closed", "r", {}, T0 + timedelta(seconds=cursor)))
        total += talk + wrap
    stats = agent_day_stats(rows, {}, ME, since=T0, now=T0 + timedelta(seconds=cursor + 1))
    assert stats.handled == len(spans)
    assert stats.talk_s + stats.wrap_s == total
    assert stats.average_handle_s == (round(total / len(spans)) if spans else None)


def test_attribution():
    assert attributed_to(EventRow(1, None, None, "agent:3", {}, T0), 3)
    assert not attributed_to(EventRow(1, None, None, "agent:31", {"agent_id": 4}, T0), 3)
