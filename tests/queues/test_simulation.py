"""The discrete-event simulation counts what happened to every contact, on a virtual clock."""
from __future__ import annotations

import random

import pytest

from queues.config import AgentGroup, Overflow, QueueConfig, RoutingConfig, ServiceLevel, SkillRequirement
from queues.simulation import Arrival, SimAgent, Simulation, poisson_arrivals


def config(**queue) -> RoutingConfig:
    return RoutingConfig(agent_groups={"default": AgentGroup(wrap_up_s=0)}, queues=[
        QueueConfig(name="q", skills=[SkillRequirement(skill="s")], service_level=ServiceLevel(within_s=20), **queue)])


def test_each_contact_is_answered_abandoned_or_overflowed_and_counted():
    arrivals = [
        Arrival(0.0, "q", "voice", handle_s=100.0),  # answered at once
        Arrival(10.0, "q", "voice", handle_s=50.0),  # waits 90 s for the only agent
        Arrival(20.0, "q", "voice", handle_s=10.0, patience_s=30.0),  # hangs up first
        Arrival(30.0, "q", "voice", handle_s=10.0),  # waits past the maximum: overflow
    ]
    report = Simulation(config(overflow=Overflow(after_s=100, action="voicemail")),
                        [SimAgent(1, {"s": 5})], arrivals).run()
    figures = report.queues["q"]
    assert (figures.offered, figures.answered, figures.abandoned, figures.overflowed) == (4, 2, 1, 1)
    assert figures.answered_in_target == 1
    assert figures.service_level == pytest.approx(0.25)
    assert figures.asa_s == pytest.approx(45.0)
    assert figures.ewt_mae_s is not None
    assert report.busy_s == 150.0
    assert report.total().answered == 2


def test_agents_without_the_native_skill_take_longer():
    arrivals = [Arrival(0.0, "q", "voice", handle_s=100.0, native_skill="zh"),
                Arrival(1.0, "q", "voice", handle_s=100.0, native_skill="zh")]
    report = Simulation(config(), [SimAgent(1, {"s": 5})], arrivals, mismatch_factor=2.0).run()
    assert report.busy_s == 400.0
    assert report.queues["q"].asa_s == pytest.approx(199.0 / 2)


def test_warm_up_contacts_are_not_measured_and_empty_runs_report_nothing():
    arrivals = [Arrival(5.0, "q", "voice", handle_s=1.0), Arrival(50.0, "q", "voice", handle_s=1.0)]
    report = Simulation(config(), [SimAgent(1, {"s": 1})], arrivals, warmup_s=10.0).run()
    assert report.queues["q"].offered == 1
    assert report.occupancy == pytest.approx(1.0 / 40.0)
    empty = Simulation(config(), [], []).run()
    assert empty.occupancy == 0.0 and empty.total().service_level == 1.0 and empty.total().asa_s == 0.0


def test_poisson_arrivals_are_reproducible_and_in_range():
    first = poisson_arrivals(random.Random(3), rate_per_s=0.5, duration_s=100, queue="q", mean_handle_s=60)
    again = poisson_arrivals(random.Random(3), rate_per_s=0.5, duration_s=100, queue="q", mean_handle_s=60)
    assert first == again and 20 < len(first) < 90
    assert all(0 < a.at_s < 100 and a.handle_s > 0 for a in first)
