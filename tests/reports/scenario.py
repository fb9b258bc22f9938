"""The fixed data set every KPI test uses: one morning on two queues, described once as plain steps.

T0 = 2026-03-02 01:00 UTC (09:00 in Asia/Shanghai). Offsets are seconds after T0. Agents are named
"ann" and "bob"; customers "A", "B", "C". Queue targets: general 20 s, billing 30 s; short abandon 5 s.
The figures each test expects are worked out by hand in the test that uses them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
SL_THRESHOLDS = {"general": 20, "billing": 30}
SHORT_ABANDON_S = 5


@dataclass(frozen=True)
class Step:
    at_s: float
    kind: str  # a state name (a transition) or a fact kind ("hold", "unhold")
    queue: str | None = None  # for "queued": the queue entered
    agent: str | None = None  # for "connected": who answered


@dataclass(frozen=True)
class Contact:
    ref: str
    channel: str
    queue: str  # the interaction's queue at the end
    customer: str | None
    created_s: float
    steps: list[Step] = field(default_factory=list)


def s(at_s, kind, queue=None, agent=None) -> Step:
    return Step(at_s, kind, queue, agent)


CONTACTS = [
    # 1: answered in 12 s by ann; 30 s on hold; 30 s wrap-up -> talk 158, hold 30, wrap 30
    Contact("c1", "voice", "general", "A", 0, [
        s(0, "queued", "general"), s(5, "offered"), s(12, "connected", agent="ann"), s(60, "hold"), s(90, "unhold"),
        s(200, "wrap_up"), s(230, "closed")]),
    # 2: rejected once, keeps its place; answered after 40 s by bob -> talk 300, wrap 20
    Contact("c2", "voice", "general", "B", 100, [
        s(100, "queued", "general"), s(110, "offered"), s(125, "queued"), s(130, "offered"),
        s(140, "connected", agent="bob"), s(440, "wrap_up"), s(460, "closed")]),
    # 3: hangs up after 3 s -> short abandon
    Contact("c3", "voice", "general", None, 200, [s(200, "queued", "general"), s(203, "abandoned")]),
    # 4: hangs up after 60 s -> abandoned
    Contact("c4", "voice", "general", None, 300, [s(300, "queued", "general"), s(360, "abandoned")]),
    # 5: chat answered in 25 s by ann, closed without wrap-up -> talk 600
    Contact("c5", "chat", "billing", "A", 45, [
        s(50, "queued", "billing"), s(55, "offered"), s(75, "connected", agent="ann"), s(675, "closed")]),
    # 6: waits 900 s, then the queue's overflow sends it to voicemail
    Contact("c6", "voice", "billing", None, 400, [s(400, "queued", "billing"), s(1300, "voicemail")]),
    # 7: still waiting
    Contact("c7", "voice", "billing", None, 500, [s(500, "queued", "billing")]),
    # 8: answered in general after 10 s by bob (talk 90), transferred to billing, answered there after 20 s
    #    by ann (talk 100, wrap 30)
    Contact("c8", "voice", "billing", "C", 600, [
        s(600, "queued", "general"), s(602, "offered"), s(610, "connected", agent="bob"),
        s(700, "queued", "billing"), s(705, "offered"), s(720, "connected", agent="ann"),
        s(820, "wrap_up"), s(850, "closed")]),
    # 9: customer B again, 8 days later: outside the 7-day FCR window (and outside the report period)
    Contact("c9", "email", "general", "B", 8 * 86400, [s(8 * 86400, "queued", "general")]),
]

# CSAT answers (contact ref, score, offset) and complaints (contact ref, offset)
SURVEYS = [("c1", 5, 1000), ("c2", 3, 1000), ("c5", 4, 1000)]
COMPLAINTS = [("c2", 900)]

# Presence spans (agent, presence, start offset, end offset)
PRESENCE = [
    ("ann", "available", -10, 1990),                              # 2000 s staffed
    ("bob", "available", 0, 1000), ("bob", "break", 1000, 1500),  # 1000 s + 640 s staffed
    ("bob", "available", 1500, 2140),
]


def at(offset_s: float) -> datetime:
    return T0 + timedelta(seconds=offset_s)
