"""Table-driven tests of the pure routing rules: config checks, eligibility, order keys, priority, EWT."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from queues import matching
from queues.config import (AgentGroup, EscalationStep, EwtSettings, PriorityWeights, QueueConfig, RoutingConfig,
                           SkillRequirement)
from queues.ewt import AccuracyTracker, HandleTimes, forecast_wait_s
from queues.matching import Agent, Contact
from queues.priority import PriorityInputs, base_priority, waiting_points, with_waiting, worst_grade


def skill(name: str, level: int = 1) -> SkillRequirement:
    return SkillRequirement(skill=name, min_level=level)


# ---------------------------------------------------------------- config
@pytest.mark.parametrize("build,message", [
    (lambda: AgentGroup(capacity=100, costs={"voice": 150}), "between 1 and capacity"),
    (lambda: QueueConfig(name="q", escalation=[EscalationStep(after_s=60), EscalationStep(after_s=30)]),
     "strictly increasing"),
    (lambda: QueueConfig(name="q", escalation=[EscalationStep(after_s=0)]), "strictly increasing"),
    (lambda: RoutingConfig(queues=[QueueConfig(name="a"), QueueConfig(name="a")]), "unique"),
    (lambda: RoutingConfig(queues=[QueueConfig(name="a", escalation=[EscalationStep(after_s=5, also_queues=["b"])])]),
     "unknown queue"),
])
def test_config_refuses_inconsistent_routing(build, message):
    with pytest.raises(ValidationError, match=message):
        build()


def test_config_lookups_and_lease_defaults():
    config = RoutingConfig(agent_groups={"default": AgentGroup(), "chat_team": AgentGroup(offer_timeout_s=30)},
                           offer_lease_s=12)
    assert config.lease_s("default") == 12  # the group says nothing: the desk-wide lease
    assert config.lease_s("chat_team") == 30
    assert config.agent_group("nobody").capacity == 100  # unknown group: the default one
    assert RoutingConfig(agent_groups={}).agent_group("x") == AgentGroup()
    assert config.queue("general").name == "general"
    with pytest.raises(KeyError):
        config.queue("nope")


# ---------------------------------------------------------------- steps and requirements
def billing_desk() -> dict[str, QueueConfig]:
    general = QueueConfig(name="general", skills=[skill("general", 3)])
    billing = QueueConfig(name="billing", skills=[skill("billing", 5)], escalation=[
        EscalationStep(after_s=30, skills=[skill("billing", 2)]),
        EscalationStep(after_s=60, also_queues=["general"]),
        EscalationStep(after_s=120, any_agent=True)])
    return {"general": general, "billing": billing}


def test_escalation_steps_widen_cumulatively():
    steps = matching.compile_steps(billing_desk()["billing"], billing_desk())
    assert [s.alternatives for s in steps] == [
        ((("billing", 5),),),
        ((("billing", 2),),),
        ((("billing", 2),), (("general", 3),)),
        ((),),
    ]
    assert steps[2].label == "billing>=2 or general>=3"
    assert steps[3].label == "any agent"


@pytest.mark.parametrize("waited_s,step", [(0, 0), (29.9, 0), (30, 1), (59, 1), (60, 2), (119, 2), (120, 3), (9e9, 3)])
def test_step_for_waiting_time(waited_s, step):
    steps = matching.compile_steps(billing_desk()["billing"], billing_desk())
    assert matching.step_for(steps, 1000.0, 1000.0 + waited_s) == step


def test_contact_extras_apply_until_any_agent():
    steps = matching.compile_steps(billing_desk()["billing"], billing_desk())
    contact = Contact(1, "billing", "voice", 0, 0, required_skills=(("zh", 2), ("billing", 7)))
    contact.step = 0
    assert matching.contact_requirement(steps, contact) == ((("billing", 7), ("zh", 2)),)  # highest minimum wins
    contact.step = 3
    assert matching.contact_requirement(steps, contact) == ((),)


@pytest.mark.parametrize("skills,eligible", [
    ({"billing": 5}, True), ({"billing": 4}, False), ({"general": 9}, False), ({}, False),
    ({"billing": 10, "general": 1}, True),
])
def test_meets(skills, eligible):
    assert matching.meets(skills, ((("billing", 5),),)) is eligible
    assert matching.meets(skills, ((),)) is True  # any agent


def test_describe_requirement():
    assert matching.describe(((("a", 1), ("b", 2)), ())) == "a>=1 and b>=2 or any agent"


# ---------------------------------------------------------------- exclusion reasons and keys
def agent(**changes) -> Agent:
    base = Agent(1, {"billing": 5}, presence="available", idle_since=10.0)
    for name, value in changes.items():
        setattr(base, name, value)
    return base


REQ = ((("billing", 5),),)


@pytest.mark.parametrize("changes,contact_changes,reason", [
    ({}, {}, None),
    ({"presence": "break"}, {}, "state:break"),
    ({"presence": "offline"}, {}, "state:offline"),
    ({"backoff_until": 101.0}, {}, "back_off"),
    ({"skills": {"billing": 4}}, {}, "skill"),
    ({"load": 10}, {}, "capacity"),  # a call needs the whole budget
    ({"load": 75}, {"channel": "chat"}, None),  # one more chat fits
    ({"load": 80}, {"channel": "chat"}, "capacity"),
    ({}, {"preferred_agent_id": 2, "preferred_until": 105.0}, "reserved"),
    ({"skills": {}}, {"preferred_agent_id": 1, "preferred_until": 105.0}, None),  # the preferred agent, any skill
    ({"skills": {}}, {"preferred_agent_id": 1, "preferred_until": 99.0}, "skill"),  # window over
    ({"costs": {"voice": 100}}, {"channel": "email"}, "capacity"),  # a channel the group does not take
])
def test_exclusion_reason(changes, contact_changes, reason):
    contact = Contact(7, "billing", "voice", 0.0, 0.0)
    for name, value in contact_changes.items():
        setattr(contact, name, value)
    assert matching.exclusion_reason(agent(**changes), contact, REQ, now=100.0) == reason


def test_contact_key_orders_priority_then_first_arrival_and_waiting_time_compensates():
    w = 5.0  # points a minute
    vip_late = Contact(1, "q", "voice", routing_age_origin=600.0, enqueued_at=600.0, priority=300)
    ordinary_early = Contact(2, "q", "voice", routing_age_origin=0.0, enqueued_at=0.0, priority=100)
    ordinary_later = Contact(3, "q", "voice", routing_age_origin=60.0, enqueued_at=60.0, priority=100)
    ordinary_very_early = Contact(4, "q", "voice", routing_age_origin=-3000.0, enqueued_at=0.0, priority=100)
    keys = {c.id: matching.contact_key(c, w) for c in (vip_late, ordinary_early, ordinary_later, ordinary_very_early)}
    # 200 points = 40 minutes of waiting: the VIP who came 10 minutes later still goes first ...
    assert keys[1] < keys[2] < keys[3]
    # ... but not before someone who has waited 50 minutes longer.
    assert keys[4] < keys[1]


def test_contact_key_without_waiting_weight_is_priority_then_fifo_then_id():
    a = Contact(5, "q", "voice", 10.0, 10.0, priority=0)
    b = Contact(4, "q", "voice", 10.0, 10.0, priority=0)
    c = Contact(3, "q", "voice", 20.0, 20.0, priority=50)
    assert sorted([a, b, c], key=lambda x: matching.contact_key(x, 0)) == [c, b, a]


def test_agent_key_idle_longest_then_higher_level():
    first = Agent(1, {"s": 3}, idle_since=5.0)
    tie_better = Agent(2, {"s": 9}, idle_since=10.0)
    tie_worse = Agent(3, {"s": 4}, idle_since=10.0)
    ordered = sorted([tie_worse, tie_better, first], key=lambda a: matching.agent_key(a, "s"))
    assert [a.id for a in ordered] == [1, 2, 3]
    assert matching.agent_key(first, None) == (5.0, 0, 1)
    assert matching.primary_skill(((), (("x", 1),))) == "x"
    assert matching.primary_skill(((),)) is None


def test_naive_router_agrees_with_the_rules():
    queues = billing_desk()
    steps = {name: matching.compile_steps(q, queues) for name, q in queues.items()}
    naive = matching.NaiveRouter(steps, per_minute_waiting=0)
    agents = [agent(), Agent(2, {"billing": 9}, presence="available", idle_since=10.0),
              Agent(3, {"general": 9}, presence="available", idle_since=1.0)]
    older = Contact(1, "billing", "voice", 0.0, 0.0)
    newer = Contact(2, "billing", "voice", 5.0, 5.0)
    assert naive.best_contact_for(agents[0], [newer, older], now=10.0) is older
    assert naive.best_contact_for(agents[2], [newer, older], now=10.0) is None  # no billing skill yet
    assert naive.best_agent_for(older, agents, now=10.0).id == 2  # same idle time: higher level


# ---------------------------------------------------------------- priority
WEIGHTS = PriorityWeights()


@pytest.mark.parametrize("inputs,points,codes", [
    (PriorityInputs(), 0, []),
    (PriorityInputs(tier="vip"), 300, ["tier"]),
    (PriorityInputs(tier="small"), 0, ["tier"]),
    (PriorityInputs(tier="unknown"), 0, []),
    (PriorityInputs(tier="ordinary", open_complaint_grades=("P4", "P2", "P3")), 350, ["tier", "open_complaint"]),
    (PriorityInputs(open_complaint_grades=("P9",)), 0, []),
    (PriorityInputs(tier="major", callback=True), 250, ["tier", "callback"]),
])
def test_base_priority_is_explained(inputs, points, codes):
    total, reasons = base_priority(inputs, WEIGHTS)
    assert total == points
    assert [r["code"] for r in reasons] == codes
    assert sum(r["points"] for r in reasons) == points
    assert all(r["en"] and r["zh"] for r in reasons)  # both languages, always


def test_only_the_worst_complaint_counts():
    assert worst_grade(["P3", "P1", "P4"], WEIGHTS) == "P1"
    assert worst_grade([], WEIGHTS) is None


def test_waiting_time_adds_points_with_a_reason():
    assert waiting_points(-5, WEIGHTS) == 0
    total, reasons = with_waiting(100, [{"code": "tier", "points": 100}], 185.0, WEIGHTS)
    assert total == 115  # 5 points a minute, 3 whole minutes... and a bit
    assert reasons[-1]["code"] == "waiting" and reasons[-1]["waited_s"] == 185
    assert with_waiting(100, [], 10.0, WEIGHTS) == (100, [])  # under a point: no reason


# ---------------------------------------------------------------- estimated wait
@pytest.mark.parametrize("position,staffed,free,handle_s,expected", [
    (1, 0, 0, 200, None),  # nobody at work: no honest number
    (1, 5, 1, 200, 0.0),  # a free agent takes it now
    (3, 5, 1, 200, 80.0),  # two ahead of the free slot: 2 * 200 / 5
    (1, 4, 0, 240, 60.0),
])
def test_forecast_wait(position, staffed, free, handle_s, expected):
    assert forecast_wait_s(position, staffed, free, handle_s) == expected


def test_handle_times_start_from_the_prior_and_follow_live_values():
    times = HandleTimes(EwtSettings(handle_time_prior_s=300, smoothing=0.5))
    assert times.mean_s("q", "voice") == 300
    times.observe("q", "voice", 100)
    times.observe("q", "voice", 200)
    assert times.mean_s("q", "voice") == 150
    assert times.mean_s("q", "chat") == 300


def test_announce_only_when_accurate_enough():
    tracker = AccuracyTracker(EwtSettings(min_samples=3, max_mae_s=30, window=10))
    assert not tracker.announceable("q") and tracker.mae_s("q") is None
    for predicted, actual in ((60, 70), (60, 50), (60, 60)):
        tracker.record("q", predicted, actual)
    assert tracker.samples("q") == 3 and tracker.mae_s("q") == pytest.approx(20 / 3)
    assert tracker.announceable("q")
    for _ in range(10):
        tracker.record("q", 10, 200)  # the window forgets the good days
    assert not tracker.announceable("q")
