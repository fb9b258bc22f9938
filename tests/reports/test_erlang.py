"""Erlang C against published worked examples.

- Call Centre Helper, "How to use the Erlang C formula to calculate call centre staffing" (the
  classic example): 100 calls in 30 minutes, 180 s average handle time, target 80% in 20 s.
  Traffic = 10 Erlangs; with 11 agents the probability of waiting is 68.21%, the service level
  38.96% and ASA 122.8 s; 14 agents are the first to reach 80% (88.84%), at 71.4% occupancy.
- Westbay Engineers, "The Erlang-C Formula" (erlang.com / westbay.ndirect.co.uk): 360 calls per
  half hour, 4-minute calls, 55 agents, 15 s target: 48 Erlangs, occupancy 87.3%, probability of
  waiting 23.87% (E_C), ASA 8.2 s, service level 84.6%.
"""
from __future__ import annotations

import math

import pytest

from app.reports import erlang


def test_call_centre_helper_example_eleven_agents():
    traffic = erlang.traffic_erlangs(100, 1800, 180)
    assert traffic == pytest.approx(10.0)
    assert erlang.probability_of_waiting(traffic, 11) == pytest.approx(0.6821, abs=5e-5)
    assert erlang.service_level(traffic, 11, 180, 20) == pytest.approx(0.3896, abs=5e-5)
    assert erlang.average_speed_of_answer(traffic, 11, 180) == pytest.approx(122.8, abs=0.05)


def test_call_centre_helper_example_agents_needed_for_80_in_20():
    figures = erlang.agents_needed(10.0, 180, 20, 0.80)
    assert figures.agents == 14
    assert figures.service_level == pytest.approx(0.8884, abs=5e-5)
    assert figures.occupancy == pytest.approx(0.714, abs=5e-4)
    assert erlang.service_level(10.0, 13, 180, 20) < 0.80  # one fewer misses


def test_westbay_example_fifty_five_agents():
    traffic = erlang.traffic_erlangs(360, 1800, 240)
    assert traffic == pytest.approx(48.0)
    figures = erlang.evaluate(traffic, 55, 240, 15)
    assert figures.occupancy == pytest.approx(0.873, abs=5e-4)
    assert figures.probability_of_waiting == pytest.approx(0.2387, abs=5e-5)
    assert figures.asa_s == pytest.approx(8.2, abs=0.05)
    assert figures.service_level == pytest.approx(0.846, abs=5e-4)


@pytest.mark.parametrize("traffic,agents,expected", [
    (0.0, 1, 0.0),  # nobody calls: nobody waits
    (1.0, 1, 1.0),  # offered as much as one agent can do: everyone waits
    (5.0, 4, 1.0),  # overloaded
])
def test_probability_of_waiting_edges(traffic, agents, expected):
    assert erlang.probability_of_waiting(traffic, agents) == pytest.approx(expected)


def test_overloaded_queue_has_no_service_and_infinite_asa():
    assert erlang.service_level(12.0, 10, 180, 20) == 0.0
    assert math.isinf(erlang.average_speed_of_answer(12.0, 10, 180))
    assert erlang.occupancy(12.0, 10) == 1.0


def test_erlang_b_matches_the_textbook_formula():
    traffic, agents = 3.0, 5
    textbook = (traffic ** agents / math.factorial(agents)) / sum(
        traffic ** k / math.factorial(k) for k in range(agents + 1))
    assert erlang.erlang_b(traffic, agents) == pytest.approx(textbook)


def test_large_centres_do_not_overflow():
    assert 0 < erlang.probability_of_waiting(900.0, 950) < 1


def test_max_occupancy_adds_agents():
    loose = erlang.agents_needed(48.0, 240, 15, 0.5)
    capped = erlang.agents_needed(48.0, 240, 15, 0.5, max_occupancy=0.8)
    assert capped.agents > loose.agents and capped.occupancy <= 0.8


@pytest.mark.parametrize("call", [
    lambda: erlang.traffic_erlangs(-1, 1800, 180),
    lambda: erlang.traffic_erlangs(10, 0, 180),
    lambda: erlang.erlang_b(-1.0, 3),
    lambda: erlang.probability_of_waiting(1.0, 0),
    lambda: erlang.agents_needed(10.0, 180, 20, 1.0),
    lambda: erlang.agents_needed(10.0, 180, 20, 0.8, max_occupancy=0),
    lambda: erlang.agents_needed(10.0, 180, 20, 0.8, limit=12),
])
def test_impossible_inputs_raise(call):
    with pytest.raises(erlang.ErlangError):
        call()
