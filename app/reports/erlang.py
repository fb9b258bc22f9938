"""Erlang C staffing figures (pure): probability of waiting, service level, ASA, agents needed.

The model (M/M/N, no abandonment): contacts arrive at random (Poisson) and are handled in an
exponentially distributed time by N interchangeable agents; traffic A = arrival rate x handle time
in Erlangs. It is the industry's standard planning tool and the reference the simulation benchmark
compares the router against.

Erlang C is computed through the Erlang B recursion B(0)=1, B(n)=A*B(n-1)/(n+A*B(n-1)) and
C = N*B / (N - A*(1-B)), which stays accurate for hundreds of agents where the textbook factorial
form overflows.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


class ErlangError(ValueError):
    """Inputs outside the model (negative traffic, no agents, an impossible target)."""


def traffic_erlangs(contacts: float, interval_s: float, handle_time_s: float) -> float:
    """Offered traffic: ``contacts`` arriving in ``interval_s``, each taking ``handle_time_s``."""
    if contacts < 0 or interval_s <= 0 or handle_time_s <= 0:
        raise ErlangError("contacts must be >= 0, interval and handle time > 0")
    return contacts * handle_time_s / interval_s


def erlang_b(traffic: float, agents: int) -> float:
    """Blocking probability of ``agents`` servers offered ``traffic`` Erlangs (no queue)."""
    if traffic < 0 or agents < 0:
        raise ErlangError("traffic and agents must be >= 0")
    blocking = 1.0
    for n in range(1, agents + 1):
        blocking = traffic * blocking / (n + traffic * blocking)
    return blocking


def probability_of_waiting(traffic: float, agents: int) -> float:
    """Erlang C: the chance an arriving contact finds every agent busy. 1.0 when overloaded."""
    if agents <= 0:
        raise ErlangError("agents must be > 0")
    if traffic >= agents:
        return 1.0
    blocking = erlang_b(traffic, agents)
    return agents * blocking / (agents - traffic * (1 - blocking))


def service_level(traffic: float, agents: int, handle_time_s: float, target_s: float) -> float:
    """Share of contacts answered within ``target_s``: 1 - C * exp(-(N - A) * t / AHT)."""
    if traffic >= agents:
        return 0.0
    waiting = probability_of_waiting(traffic, agents)
    return 1.0 - waiting * math.exp(-(agents - traffic) * target_s / handle_time_s)


def average_speed_of_answer(traffic: float, agents: int, handle_time_s: float) -> float:
    """ASA in seconds: C * AHT / (N - A). Infinite when the agents cannot keep up."""
    if traffic >= agents:
        return math.inf
    return probability_of_waiting(traffic, agents) * handle_time_s / (agents - traffic)


def occupancy(traffic: float, agents: int) -> float:
    return min(1.0, traffic / agents)


@dataclass(frozen=True)
class Staffing:
    agents: int
    probability_of_waiting: float
    service_level: float
    asa_s: float
    occupancy: float


def evaluate(traffic: float, agents: int, handle_time_s: float, target_s: float) -> Staffing:
    """Every figure for one staffing level."""
    return Staffing(agents, probability_of_waiting(traffic, agents),
                    service_level(traffic, agents, handle_time_s, target_s),
                    average_speed_of_answer(traffic, agents, handle_time_s), occupancy(traffic, agents))


def agents_needed(traffic: float, handle_time_s: float, target_s: float, target_level: float,
                  *, max_occupancy: float = 1.0, limit: int = 10_000) -> Staffing:
    """The fewest agents meeting ``target_level`` within ``target_s`` (and at most
    ``max_occupancy``), with the figures they achieve. Raises ErlangError for impossible targets."""
    if not 0 < target_level < 1 or not 0 < max_occupancy <= 1:
        raise ErlangError("target level must be in (0, 1) and max occupancy in (0, 1]")
    agents = max(1, math.floor(traffic) + 1)
    while agents <= limit:
        figures = evaluate(traffic, agents, handle_time_s, target_s)
        if figures.service_level >= target_level and figures.occupancy <= max_occupancy:
            return figures
        agents += 1
    raise ErlangError(f"no staffing up to {limit} agents meets the target")
