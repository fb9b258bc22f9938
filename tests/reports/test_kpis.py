"""The KPI formulas on the fixed data set (tests/reports/scenario.py), every figure worked out by hand."""
from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from app.reports.kpis import (
    ComplaintRecord, ContactInfo, Dimension, EventRecord, Outcome, Period, PresenceSpan, ReportInput,
    SurveyAnswer, aggregate, derive_contact,
)
from tests.reports import scenario as sc

SHANGHAI = ZoneInfo("Asia/Shanghai")
AGENT_IDS = {"ann": 1, "bob": 2}
CUSTOMER_IDS = {"A": 10, "B": 11, "C": 12}
DAY = Period(sc.at(-9 * 3600), sc.at(15 * 3600))  # 2026-03-02 00:00-24:00 Shanghai time


def events_for(contact: sc.Contact) -> list[EventRecord]:
    state = "new"
    out = [EventRecord("created", None, "new", sc.at(contact.created_s))]
    for step in contact.steps:
        if step.kind in ("hold", "unhold"):
            out.append(EventRecord(step.kind, state, state, sc.at(step.at_s), actor="agent:1"))
            continue
        data = {}
        if step.queue:
            data["queue"] = step.queue
        actor = f"agent:{AGENT_IDS[step.agent]}" if step.agent else "router"
        out.append(EventRecord("transition", state, step.kind, sc.at(step.at_s), actor=actor, data=data))
        state = step.kind
    return out


def scenario_input() -> ReportInput:
    contacts, visits, handlings = {}, [], []
    for n, c in enumerate(sc.CONTACTS, start=1):
        info = ContactInfo(n, c.channel, c.queue, customer_id=CUSTOMER_IDS.get(c.customer),
                           created_at=sc.at(c.created_s))
        contacts[n] = info
        v, h = derive_contact(info, events_for(c), short_abandon_s=sc.SHORT_ABANDON_S)
        visits += v
        handlings += h
    ref_id = {c.ref: n for n, c in enumerate(sc.CONTACTS, start=1)}
    return ReportInput(
        contacts=contacts, visits=visits, handlings=handlings,
        surveys=[SurveyAnswer(ref_id[r], score, sc.at(t)) for r, score, t in sc.SURVEYS],
        complaints=[ComplaintRecord(ref_id[r], sc.at(t)) for r, t in sc.COMPLAINTS],
        presence=[PresenceSpan(AGENT_IDS[a], p, sc.at(s0), sc.at(s1)) for a, p, s0, s1 in sc.PRESENCE],
        customer_contacts=[(CUSTOMER_IDS[c.customer], sc.at(c.created_s)) for c in sc.CONTACTS if c.customer])


def report(dimension):
    return aggregate(scenario_input(), DAY, dimension, sl_threshold_s=sc.SL_THRESHOLDS, default_sl_threshold_s=20,
                     fcr_window=timedelta(days=7), tz=SHANGHAI)


def by_key(dimension):
    rows, total = report(dimension)
    return {r.key: r for r in rows}, total


def test_each_contact_becomes_visits_and_handlings():
    data = scenario_input()
    outcomes = [(v.interaction_id, v.queue, v.outcome, v.wait_s) for v in data.visits]
    assert outcomes == [
        (1, "general", Outcome.ANSWERED, 12), (2, "general", Outcome.ANSWERED, 40),
        (3, "general", Outcome.SHORT_ABANDONED, 3), (4, "general", Outcome.ABANDONED, 60),
        (5, "billing", Outcome.ANSWERED, 25), (6, "billing", Outcome.OVERFLOWED, 900),
        (7, "billing", Outcome.WAITING, None), (8, "general", Outcome.ANSWERED, 10),
        (8, "billing", Outcome.ANSWERED, 20), (9, "general", Outcome.WAITING, None)]
    times = [(h.interaction_id, h.agent_id, h.talk_s, h.hold_s, h.wrap_s, h.transferred_out) for h in data.handlings]
    assert times == [(1, 1, 158, 30, 30, False), (2, 2, 300, 0, 20, False), (5, 1, 600, 0, 0, False),
                     (8, 2, 90, 0, 0, True), (8, 1, 100, 0, 30, False)]


# Hand-worked figures, by queue (general target 20 s, billing 30 s):
#  general: visits c1 (12 s, in SL), c2 (40 s), c3 (short), c4 (abandoned), c8a (10 s, in SL)
#   offered 5, answered 3, in SL 2; SL = 2/(3+1+0) = 0.5; abandonment = 1/(5-1) = 0.25; ASA = (12+40+10)/3
#   handled c1 (158+30+30=218), c2 (320), c8a (90): AHT = 628/3; FCR: c1 no (A calls again, c5), c2 yes = 1/2
#   CSAT c1=5, c2=3: 1/2 satisfied, average 4; complaints 1 (c2)
#  billing: c5 (25 s, in SL), c6 (overflow), c7 (waiting), c8b (20 s, in SL)
#   offered 4, answered 2; SL = 2/(2+0+1); abandonment 0/4; ASA = 22.5; AHT = (600+130)/2; FCR c5, c8b = 2/2
#  total: offered 9, answered 5, SL = 4/7, abandonment 1/8, ASA = 107/5, AHT = 1358/5, FCR 3/4, CSAT 2/3
QUEUE_TABLE = [  # noqa: E501 -- a table reads best one row per line
    # key,     offered, answered, abandoned, short, overflowed, waiting, SL,    abandon, ASA,   AHT,      FCR, CSAT, csat_avg, complaints  # noqa: E501
    ("general", 5,      3,        1,         1,     0,          0,       0.5,   0.25,    62 / 3, 628 / 3, 0.5, 0.5,  4.0,      1),  # noqa: E501
    ("billing", 4,      2,        0,         0,     1,          1,       2 / 3, 0.0,     22.5,  365.0,    1.0, 1.0,  4.0,      0),  # noqa: E501
    ("total",   9,      5,        1,         1,     1,          1,       4 / 7, 1 / 8,   21.4,  1358 / 5, 0.75, 2 / 3, 4.0,     1),  # noqa: E501
]


@pytest.mark.parametrize("key, offered, answered, abandoned, short, overflowed, waiting, sl, abandon, asa, aht, fcr,"
                         " csat, csat_avg, complaints", QUEUE_TABLE)
def test_figures_by_queue(key, offered, answered, abandoned, short, overflowed, waiting, sl, abandon, asa, aht, fcr,
                          csat, csat_avg, complaints):
    rows, total = by_key(Dimension.QUEUE)
    row = total if key == "total" else rows[key]
    assert (row.offered, row.answered, row.abandoned, row.short_abandoned, row.overflowed, row.waiting) == (
        offered, answered, abandoned, short, overflowed, waiting)
    assert row.service_level == pytest.approx(sl)
    assert row.abandon_rate == pytest.approx(abandon)
    assert row.asa_s == pytest.approx(asa)
    assert row.aht_s == pytest.approx(aht)
    assert row.fcr == pytest.approx(fcr)
    assert row.csat == pytest.approx(csat)
    assert row.csat_avg == pytest.approx(csat_avg)
    assert row.complaints == complaints


# By agent: ann answered c1, c5, c8b and handled 218 + 600 + 130 = 948 s in 2000 s staffed -> occupancy 0.474;
# bob answered c2, c8a and handled 320 + 90 = 410 s in 1000 + 640 = 1640 s staffed -> occupancy 0.25.
# Unanswered visits (c3, c4, c6, c7) sit under "-", which has no staffed time.
AGENT_TABLE = [
    ("1", 3, 3, 948 / 3, 948 / 2000, 2 / 3),  # FCR: c1 no (A called again), c5 yes, c8b yes
    ("2", 2, 2, 205.0, 0.25, 1 / 1),
    ("-", 4, 0, None, None, None),
]


@pytest.mark.parametrize("key, offered, handled, aht, occupancy, fcr", AGENT_TABLE)
def test_figures_by_agent(key, offered, handled, aht, occupancy, fcr):
    rows, total = by_key(Dimension.AGENT)
    row = rows[key]
    assert (row.offered, row.handled) == (offered, handled)
    assert row.aht_s == pytest.approx(aht)
    assert row.occupancy == pytest.approx(occupancy)
    assert row.fcr == pytest.approx(fcr)
    assert total.occupancy == pytest.approx(1358 / 3640)


def test_figures_by_channel():
    rows, total = by_key(Dimension.CHANNEL)
    assert sorted(rows) == ["chat", "voice"]
    assert (rows["chat"].offered, rows["chat"].answered, rows["chat"].aht_s) == (1, 1, 600)
    voice = rows["voice"]
    # voice: 8 visits; answered c1, c2, c8a, c8b (3 in SL: c1, c8a, c8b); abandoned c4; overflow c6
    assert (voice.offered, voice.answered, voice.answered_in_sl) == (8, 4, 3)
    assert voice.service_level == pytest.approx(3 / 6)
    assert voice.occupancy is None  # agents serve every channel: no per-channel occupancy


def test_figures_by_local_day_include_occupancy():
    rows, total = by_key(Dimension.DAY)
    assert list(rows) == ["2026-03-02"]
    day = rows["2026-03-02"]
    assert day.offered == total.offered == 9
    assert day.occupancy == pytest.approx(1358 / 3640)


def test_the_period_is_half_open():
    data = scenario_input()
    later = Period(sc.at(12), sc.at(15 * 3600))  # starts after c1's visit, at c1's connection
    rows, total = aggregate(data, later, "queue", sl_threshold_s=sc.SL_THRESHOLDS, default_sl_threshold_s=20,
                            fcr_window=timedelta(days=7), tz=SHANGHAI)
    assert total.offered == 8
    assert total.handled == 5  # c1's handling connected at 12 s, the period's first instant


def test_unknown_queue_uses_the_default_threshold_and_empty_groups_have_no_ratios():
    info = ContactInfo(1, "voice", "old_queue")
    ev = [EventRecord("transition", "new", "queued", sc.at(0)),
          EventRecord("transition", "queued", "offered", sc.at(1)),
          EventRecord("transition", "offered", "connected", sc.at(15), data={"agent_id": 7})]
    visits, handlings = derive_contact(info, ev, short_abandon_s=5)
    assert handlings[0].agent_id == 7 and handlings[0].ended_at is None
    data = ReportInput(contacts={1: info}, visits=visits, handlings=handlings)
    _, strict = aggregate(data, DAY, "queue", sl_threshold_s={}, default_sl_threshold_s=10,
                          fcr_window=timedelta(days=7), tz=SHANGHAI)
    _, lenient = aggregate(data, DAY, "queue", sl_threshold_s={}, default_sl_threshold_s=20,
                           fcr_window=timedelta(days=7), tz=SHANGHAI)
    assert (strict.service_level, lenient.service_level) == (0.0, 1.0)
    assert strict.handled == 0 and strict.aht_s is None and strict.occupancy is None  # still talking: not handled
    assert strict.csat is None and strict.fcr is None and strict.abandon_rate == 0.0


def test_edge_cases_of_the_event_walk():
    info = ContactInfo(1, "voice", "general", agent_id=3)
    ev = [EventRecord("transition", "new", "queued", sc.at(0)),
          # re-queued from a state that left no ending event (closed -> queued re-opens): the first visit
          # is closed as overflow by the close, the second opens
          EventRecord("transition", "queued", "closed", sc.at(10)),
          EventRecord("transition", "closed", "queued", sc.at(20)),
          EventRecord("transition", "queued", "offered", sc.at(21)),
          EventRecord("transition", "offered", "connected", sc.at(25), actor="staff:9"),
          EventRecord("hold", "connected", "connected", sc.at(30)),
          EventRecord("hold", "connected", "connected", sc.at(35)),  # a second hold while held: ignored
          EventRecord("unhold", "connected", "connected", sc.at(40)),
          EventRecord("unhold", "connected", "connected", sc.at(41)),  # not on hold: ignored
          EventRecord("hold", "connected", "connected", sc.at(50)),   # still on hold when the call ends
          EventRecord("transition", "connected", "closed", sc.at(60)),
          EventRecord("note", "closed", "closed", sc.at(70))]         # a fact after the end: ignored
    visits, handlings = derive_contact(info, ev, short_abandon_s=5)
    assert [(v.outcome, v.wait_s) for v in visits] == [(Outcome.OVERFLOWED, 10), (Outcome.ANSWERED, 5)]
    (h,) = handlings
    assert (h.agent_id, h.talk_s, h.hold_s, h.wrap_s) == (9, 15, 20, 0)


def test_a_visit_reopened_without_an_ending_event_counts_as_overflow():
    info = ContactInfo(1, "voice", "general", agent_id=3)
    ev = [EventRecord("transition", "new", "queued", sc.at(0)),
          EventRecord("transition", "voicemail", "queued", sc.at(30)),  # a log that skipped a step
          EventRecord("transition", "queued", "offered", sc.at(31)),
          EventRecord("transition", "offered", "connected", sc.at(32)),
          EventRecord("transition", "connected", "wrap_up", sc.at(40))]
    visits, handlings = derive_contact(info, ev, short_abandon_s=5)
    assert [v.outcome for v in visits] == [Outcome.OVERFLOWED, Outcome.ANSWERED]
    assert handlings[0].agent_id == 3 and handlings[0].ended_at is None  # still wrapping up


def test_surveys_outside_the_scale_or_period_and_complaints_without_an_interaction():
    data = ReportInput(contacts={}, visits=[], handlings=[],
                       surveys=[SurveyAnswer(None, 9, sc.at(0)), SurveyAnswer(None, 2, sc.at(-10 * 86400)),
                                SurveyAnswer(None, 2, sc.at(0))],
                       complaints=[ComplaintRecord(None, sc.at(0), channel="email"),
                                   ComplaintRecord(None, sc.at(30 * 86400))])
    rows, total = aggregate(data, DAY, "channel", sl_threshold_s={}, default_sl_threshold_s=20,
                            fcr_window=timedelta(days=7), tz=SHANGHAI)
    assert {r.key: (r.csat_responses, r.complaints) for r in rows} == {"-": (1, 0), "email": (0, 1)}
    assert total.csat == 0.0 and total.csat_avg == 2.0
    assert set(total.as_dict()) >= {"offered", "service_level", "aht_s", "csat", "staffed_s"}
