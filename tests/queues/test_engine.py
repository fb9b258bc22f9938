"""Stories of the in-memory engine: selection, escalation, preferred agents, leases, back-off,
missed offers, wrap-up, overflow, restore after a restart, and the explanations it gives."""
from __future__ import annotations

import pytest

from queues.config import (AgentGroup, EscalationStep, Overflow, QueueConfig, RoutingConfig, SkillRequirement)
from queues.engine import (DuplicateContact, OfferNotPending, RoutingEngine, UnknownAgent, UnknownContact,
                           UnknownQueue)
from queues.matching import Contact


def config(**changes) -> RoutingConfig:
    values = {
        "agent_groups": {"default": AgentGroup(wrap_up_s=30, missed_offers_to_break=2)},
        "queues": [
            QueueConfig(name="general", channels=["voice", "chat", "email"],
                        skills=[SkillRequirement(skill="general", min_level=5)],
                        escalation=[EscalationStep(after_s=60, skills=[SkillRequirement(skill="general")])],
                        overflow=Overflow(after_s=600, action="callback")),
            QueueConfig(name="billing", skills=[SkillRequirement(skill="billing", min_level=3)],
                        escalation=[EscalationStep(after_s=30, also_queues=["general"])]),
        ],
        "offer_lease_s": 15, "backoff_s": {"reject": 5, "no_answer": 30, "disconnect": 60}}
    values.update(changes)
    return RoutingConfig(**values)


def desk(*agents: tuple[int, dict, float]) -> RoutingEngine:
    engine = RoutingEngine(config())
    for agent_id, skills, available_at in agents:
        engine.upsert_agent(agent_id, skills, available_at)
        engine.set_presence(agent_id, "available", available_at)
    return engine


def call(cid: int, at: float, queue: str = "general", **extra) -> Contact:
    return Contact(cid, queue, extra.pop("channel", "voice"), routing_age_origin=extra.pop("origin", at),
                   enqueued_at=at, **extra)


def offers_of(result) -> list[tuple[int, int]]:
    return [(o.contact_id, o.agent_id) for o in result.offers]


def test_contact_goes_to_the_longest_idle_eligible_agent_with_a_trace():
    engine = desk((1, {"general": 5}, 20.0), (2, {"general": 9}, 10.0), (3, {"general": 2}, 0.0))
    engine.add_contact(call(100, 30.0), 30.0)
    result = engine.match(30.0)
    assert offers_of(result) == [(100, 2)]
    trace = result.offers[0].trace
    assert trace["step"]["index"] == 0 and trace["requirement"] == "general>=5"
    assert trace["skipped"] == [{"agent_id": 3, "reason": "skill"}]  # idle longest, but level 2
    assert trace["agent_key"]["id"] == 2 and trace["trigger"] == "contact"
    assert result.offers[0].expires_at == 45.0


def test_equal_idle_time_goes_to_the_higher_level():
    engine = desk((1, {"general": 5}, 10.0), (2, {"general": 8}, 10.0))
    engine.add_contact(call(100, 20.0), 20.0)
    assert offers_of(engine.match(20.0)) == [(100, 2)]


def test_freed_agent_takes_highest_priority_then_oldest_contact():
    engine = desk((1, {"general": 5, "billing": 5}, 0.0))
    engine.add_contact(call(100, 1.0), 1.0)
    engine.accept(*offers_of(engine.match(1.0))[0], 1.0)
    engine.add_contact(call(101, 2.0), 2.0)
    engine.add_contact(call(102, 3.0, queue="billing", priority=200), 3.0)
    engine.add_contact(call(103, 4.0, origin=-100.0), 4.0)  # re-entered: keeps its earlier place
    assert engine.match(5.0).offers == []
    assert [c.id for c in engine.waiting()] == [102, 103, 101]
    assert engine.position(101) == 2 and engine.position(103) == 1
    engine.release(100, 10.0, wrap_up=False)
    result = engine.match(10.0)
    assert offers_of(result) == [(102, 1)]
    assert result.offers[0].trace["trigger"] == "agent"
    assert result.offers[0].priority == 200  # seven seconds of waiting add no whole point


def test_escalation_widens_the_target_after_the_step_time():
    engine = desk((1, {"general": 2}, 0.0))
    engine.add_contact(call(100, 0.0), 0.0)
    assert engine.match(59.0).offers == []
    why = engine.explain(100, 59.0)
    assert why["excluded"] == {"skill": [1]} and why["eligible"] == [] and why["position"] == 1
    result = engine.match(60.0)
    assert offers_of(result) == [(100, 1)]
    assert result.offers[0].trace["step"] == {"index": 1, "after_s": 60.0, "label": "general>=1"}


def test_also_queues_step_brings_the_other_queues_agents():
    engine = desk((1, {"general": 6}, 0.0))
    engine.add_contact(call(100, 0.0, queue="billing"), 0.0)
    assert engine.match(29.0).offers == []
    assert offers_of(engine.match(30.0)) == [(100, 1)]


def test_preferred_agent_is_tried_first_then_anyone():
    engine = desk((1, {"general": 9}, 0.0), (2, {"general": 9}, 5.0))
    engine.set_presence(2, "break", 5.0, reason="lunch")
    engine.add_contact(call(100, 10.0, preferred_agent_id=2, preferred_until=20.0), 10.0)
    assert engine.match(10.0).offers == []  # held for agent 2, agent 1 idle
    assert engine.explain(100, 10.0)["excluded"] == {"reserved": [1], "state:break": [2]}
    assert engine.position(100) == 1
    engine.set_presence(2, "available", 12.0)
    result = engine.match(12.0)
    assert offers_of(result) == [(100, 2)]
    assert result.offers[0].trace["preferred_agent"]["agent_id"] == 2


def test_preferred_window_ends_and_the_contact_goes_to_anyone():
    engine = desk((1, {"general": 9}, 0.0))
    engine.add_contact(call(100, 10.0, preferred_agent_id=7, preferred_until=20.0), 10.0)
    assert engine.match(19.0).offers == []
    assert offers_of(engine.match(20.0)) == [(100, 1)]


def test_freed_preferred_agent_takes_their_reserved_contact():
    engine = desk((2, {"general": 1}, 0.0))
    engine.add_contact(call(99, 0.0), 0.0)
    assert engine.match(0.0).offers == []  # level 1 is not enough yet
    engine.add_contact(call(100, 0.5, channel="chat"), 0.5)
    engine.add_contact(call(101, 1.0, preferred_agent_id=2, preferred_until=50.0), 1.0)
    engine.set_presence(2, "break", 1.0)
    engine.set_presence(2, "available", 2.0)
    assert offers_of(engine.match(2.0)) == [(101, 2)]


def test_reject_keeps_the_place_backs_off_and_missed_offers_lead_to_break():
    engine = desk((1, {"general": 9}, 0.0), (2, {"general": 9}, 50.0))
    engine.set_presence(2, "offline", 50.0)
    engine.add_contact(call(100, 10.0), 10.0)
    engine.add_contact(call(101, 11.0), 11.0)
    assert offers_of(engine.match(11.0)) == [(100, 1)]
    assert engine.reject(100, 1, 12.0, cause="reject") is False
    assert engine.agents[1].backoff_until == 17.0
    assert engine.match(16.0).offers == []
    assert engine.explain(100, 16.0)["excluded"] == {"back_off": [1], "state:offline": [2]}
    assert offers_of(engine.match(17.0)) == [(100, 1)]  # still first: its place survived
    result = engine.match(32.0)  # nobody answered: the lease ran out
    assert [o.contact_id for o in result.expired] == [100]
    assert result.to_break == [1]
    assert engine.agents[1].presence == "break" and engine.agents[1].reason == "missed_offers"
    assert engine.waiting()[0].id == 100


def test_accept_is_single_winner():
    engine = desk((1, {"general": 9}, 0.0), (2, {"general": 9}, 0.0))
    engine.add_contact(call(100, 1.0), 1.0)
    (cid, winner), = offers_of(engine.match(1.0))
    loser = 2 if winner == 1 else 1
    with pytest.raises(OfferNotPending):
        engine.accept(cid, loser, 2.0)
    engine.accept(cid, winner, 2.0)
    with pytest.raises(OfferNotPending):
        engine.accept(cid, winner, 2.0)
    with pytest.raises(OfferNotPending):
        engine.reject(cid, winner, 2.0)
    with pytest.raises(ValueError):
        engine.reject(cid, winner, 2.0, cause="bored")


def test_release_starts_wrap_up_which_ends_by_timer_or_by_the_agent():
    engine = desk((1, {"general": 9}, 0.0))
    engine.add_contact(call(100, 1.0), 1.0)
    engine.match(1.0)
    with pytest.raises(OfferNotPending):
        engine.release(100, 1.5)  # only offered: nothing to release yet
    engine.accept(100, 1, 2.0)
    assert engine.release(100, 62.0) == 60.0
    assert engine.agents[1].presence == "wrap_up" and engine.agents[1].load == 0
    engine.add_contact(call(101, 63.0), 63.0)
    assert engine.match(91.0).offers == []
    result = engine.match(92.0)
    assert result.back_from_wrap_up == [1] and offers_of(result) == [(101, 1)]
    engine.accept(101, 1, 92.0)
    engine.release(101, 100.0)
    assert engine.end_wrap_up(1, 101.0).presence == "available"
    assert engine.end_wrap_up(1, 102.0).presence == "available"  # already back: nothing changes
    assert engine.handle_times.mean_s("general", "voice") == pytest.approx(60 * 0.9 + 8 * 0.1)


def test_capacity_is_a_budget_across_channels():
    engine = desk((1, {"general": 9}, 0.0))
    for cid in range(100, 106):
        engine.add_contact(call(cid, float(cid), channel="chat"), float(cid))
    engine.add_contact(call(200, 300.0, channel="email"), 300.0)
    result = engine.match(300.0)
    assert sorted(c for c, _ in offers_of(result)) == [100, 101, 102, 103]  # four chats fill 100
    assert engine.agents[1].load == 100
    assert engine.staffing("general", "chat") == (4, 0)


def test_abandon_rescinds_and_overflow_after_max_wait():
    engine = desk((1, {"general": 9}, 0.0))
    engine.add_contact(call(100, 0.0), 0.0)
    engine.add_contact(call(101, 1.0), 1.0)
    assert offers_of(engine.match(1.0)) == [(100, 1)]
    rescinded = engine.remove_contact(100, 2.0)
    assert rescinded.agent_id == 1 and engine.agents[1].load == 0
    assert offers_of(engine.match(2.0)) == [(101, 1)]
    engine.accept(101, 1, 2.0)
    engine.add_contact(call(102, 3.0), 3.0)
    result = engine.match(603.0)
    assert [(c.id, action) for c, action in result.overflowed] == [(102, "callback")]
    assert 102 not in engine.contacts
    with pytest.raises(UnknownContact):
        engine.remove_contact(102, 604.0)


def test_agent_disconnect_takes_offers_back_and_goes_offline():
    engine = desk((1, {"general": 9}, 0.0))
    engine.add_contact(call(100, 0.0), 0.0)
    engine.match(0.0)
    taken = engine.agent_disconnected(1, 1.0)
    assert [o.contact_id for o in taken] == [100]
    assert engine.agents[1].presence == "offline" and engine.agents[1].backoff_until == 61.0
    assert engine.contacts[100].state == "waiting"


def test_restore_after_restart_keeps_offers_and_connected_load():
    engine = desk((1, {"general": 9}, 0.0), (2, {"general": 9}, 0.0))
    engine.restore_offer(call(100, 0.0), 1, expires_at=20.0, now=5.0)
    engine.restore_connected(call(101, 0.0), 2, connected_at=3.0, now=5.0)
    assert engine.agents[1].load == 100 and engine.agents[2].load == 100
    engine.add_contact(call(102, 5.0), 5.0)
    assert engine.match(5.0).offers == []
    result = engine.match(20.0)
    assert [o.contact_id for o in result.expired] == [100]
    assert engine.release(101, 23.0, wrap_up=False) == 20.0
    assert sorted(offers_of(engine.match(23.0))) == [(100, 2)]


def test_agents_change_skills_leave_and_are_forgotten():
    engine = desk((1, {"general": 2}, 0.0))
    engine.add_contact(call(100, 0.0), 0.0)
    assert engine.match(0.0).offers == []
    engine.upsert_agent(1, {"general": 7}, 1.0)  # trained up
    assert offers_of(engine.match(1.0)) == [(100, 1)]
    engine.remove_agent(1, 2.0)  # still holding an offer: only set offline
    assert engine.agents[1].presence == "offline"
    engine.remove_contact(100, 3.0)
    engine.remove_agent(1, 4.0)
    assert 1 not in engine.agents
    with pytest.raises(UnknownAgent):
        engine.set_presence(1, "available", 5.0)


def test_typed_errors():
    engine = desk((1, {"general": 9}, 0.0))
    with pytest.raises(UnknownQueue):
        engine.add_contact(call(1, 0.0, queue="nope"), 0.0)
    engine.add_contact(call(1, 0.0), 0.0)
    with pytest.raises(DuplicateContact):
        engine.add_contact(call(1, 0.0), 0.0)
    with pytest.raises(ValueError):
        engine.set_presence(1, "dancing", 0.0)


def test_wait_estimate_is_recorded_and_judged():
    engine = RoutingEngine(config(ewt={"min_samples": 1, "max_mae_s": 10, "handle_time_prior_s": 100}))
    engine.upsert_agent(1, {"general": 9}, 0.0)
    engine.set_presence(1, "available", 0.0)
    engine.add_contact(call(100, 0.0), 0.0)
    engine.match(0.0)
    engine.add_contact(call(101, 1.0), 1.0)
    assert engine.estimated_wait_s(101) == 100.0  # one agent, one ahead of nobody: one handle time
    assert engine.estimated_wait_s(100) == 0.0  # offered: no longer waits
    engine.accept(100, 1, 0.0)
    engine.release(100, 95.0, wrap_up=False)
    engine.match(95.0)
    engine.accept(101, 1, 95.0)
    # contact 100: predicted 0, waited 0; contact 101: predicted 100, waited 94
    assert engine.accuracy.mae_s("general") == pytest.approx(3.0)
    assert engine.announceable("general")
    engine.set_presence(1, "offline", 96.0)
    engine.add_contact(call(102, 96.0), 96.0)
    assert engine.estimated_wait_s(102) is None  # nobody at work
    assert engine.next_timer_at() is not None
    assert engine.requirement_of(102) == ((("general", 5),),)
