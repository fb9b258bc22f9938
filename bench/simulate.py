"""``python -m bench simulate [--json] [--hours H] [--seed S]``: the real engine under simulated load.

1. One queue, N agents at 85% occupancy, Poisson arrivals, exponential handle times, no wrap-up and
   no abandonment -- exactly Erlang C's model -- so the measured service level, ASA and occupancy are
   printed beside Erlang C's prediction (fields ``sl_measured``, ``sl_erlang_c``, ``asa_measured``,
   ``asa_erlang_c``; the router should land within 0.03 of Erlang C's service level).
2. A multi-skill desk (general, billing, Chinese-speaking callers; specialist and bilingual agents):
   the same figures for skills-based routing (with escalation steps) and for plain FIFO (one line,
   any agent, where an agent without the caller's skill takes ``mismatch_factor`` times longer).
   Erlang C for the pooled desk is printed as the yardstick.

Every scenario also prints the wait-estimate error ``ewt_mae_s``. Figures only; nothing is asserted.
"""
from __future__ import annotations

import argparse
import json
import random
import time

from app.reports import erlang
from queues.config import AgentGroup, EscalationStep, Overflow, QueueConfig, RoutingConfig, ServiceLevel
from queues.config import SkillRequirement as Skill
from queues.simulation import Arrival, SimAgent, Simulation, poisson_arrivals

AHT_S = 180.0
TARGET_S = 20
MULTI_SKILL_ERLANGS = {"general": 12.0, "billing": 5.0, "zh": 4.5}


def _group() -> dict[str, AgentGroup]:
    return {"default": AgentGroup(capacity=100, wrap_up_s=0)}


def _queue(name: str, skills: list[Skill], **extra) -> QueueConfig:
    return QueueConfig(name=name, skills=skills, service_level=ServiceLevel(percent=80, within_s=TARGET_S),
                       overflow=Overflow(after_s=10**9), **extra)


def single_queue(agents: int, occupancy: float, hours: float, seed: int) -> dict:
    config = RoutingConfig(agent_groups=_group(), queues=[_queue("general", [Skill(skill="general")])],
                           priority={"per_minute_waiting": 0})
    traffic = agents * occupancy
    rng = random.Random(seed)
    duration = hours * 3600
    arrivals = poisson_arrivals(rng, rate_per_s=traffic / AHT_S, duration_s=duration, queue="general",
                                mean_handle_s=AHT_S)
    sim = Simulation(config, [SimAgent(i, {"general": 5}) for i in range(1, agents + 1)], arrivals,
                     warmup_s=3600)
    started = time.perf_counter()
    report = sim.run()
    figures = report.queues["general"]
    return {
        "scenario": "single_queue", "agents": agents, "traffic_erlangs": round(traffic, 2),
        "contacts": figures.offered, "sl_target_s": TARGET_S,
        "sl_measured": round(figures.service_level, 4),
        "sl_erlang_c": round(erlang.service_level(traffic, agents, AHT_S, TARGET_S), 4),
        "asa_measured": round(figures.asa_s, 2),
        "asa_erlang_c": round(erlang.average_speed_of_answer(traffic, agents, AHT_S), 2),
        "occupancy_measured": round(report.occupancy, 4), "occupancy_erlang_c": round(occupancy, 4),
        "ewt_mae_s": round(figures.ewt_mae_s or 0.0, 2), "wall_s": round(time.perf_counter() - started, 2),
    }


def _multi_skill_traffic(rng: random.Random, duration: float, queue_of) -> list[Arrival]:
    arrivals: list[Arrival] = []
    for skill, erlangs in MULTI_SKILL_ERLANGS.items():
        arrivals += poisson_arrivals(rng, rate_per_s=erlangs / AHT_S, duration_s=duration, queue=queue_of(skill),
                                     mean_handle_s=AHT_S, native_skill=skill,
                                     required_skills=(("zh", 1),) if skill == "zh" and queue_of(skill) != "all"
                                     else ())
    return arrivals


def _multi_skill_agents() -> list[SimAgent]:
    agents, next_id = [], 1
    for count, skills in ((14, {"general": 6}), (6, {"billing": 6, "general": 2}),
                          (5, {"zh": 6, "general": 4}), (5, {"general": 5, "billing": 4, "zh": 4})):
        for _ in range(count):
            agents.append(SimAgent(next_id, dict(skills)))
            next_id += 1
    return agents


def multi_skill(hours: float, seed: int, mismatch_factor: float = 1.5) -> list[dict]:
    skills_config = RoutingConfig(agent_groups=_group(), priority={"per_minute_waiting": 0}, queues=[
        _queue("general", [Skill(skill="general", min_level=3)],
               escalation=[EscalationStep(after_s=30, skills=[Skill(skill="general")])]),
        _queue("billing", [Skill(skill="billing", min_level=3)],
               escalation=[EscalationStep(after_s=20, also_queues=["general"])]),
        _queue("zh", [Skill(skill="zh", min_level=3)],
               escalation=[EscalationStep(after_s=40, skills=[Skill(skill="zh")])]),
    ])
    fifo_config = RoutingConfig(agent_groups=_group(), priority={"per_minute_waiting": 0},
                                queues=[_queue("all", [])])
    agents = _multi_skill_agents()
    traffic = sum(MULTI_SKILL_ERLANGS.values())
    rows = []
    for mode, config, queue_of in (("skills_based", skills_config, lambda skill: skill),
                                   ("plain_fifo", fifo_config, lambda skill: "all")):
        arrivals = _multi_skill_traffic(random.Random(seed), hours * 3600, queue_of)
        started = time.perf_counter()
        report = Simulation(config, agents, arrivals, warmup_s=3600, mismatch_factor=mismatch_factor).run()
        total = report.total()
        rows.append({
            "scenario": "multi_skill", "routing": mode, "agents": len(agents), "traffic_erlangs": traffic,
            "contacts": total.offered, "sl_target_s": TARGET_S, "sl_measured": round(total.service_level, 4),
            "sl_erlang_c": round(erlang.service_level(traffic, len(agents), AHT_S, TARGET_S), 4),
            "asa_measured": round(total.asa_s, 2),
            "asa_erlang_c": round(erlang.average_speed_of_answer(traffic, len(agents), AHT_S), 2),
            "occupancy_measured": round(report.occupancy, 4),
            "occupancy_erlang_c": round(traffic / len(agents), 4),
            "ewt_mae_s": round(total.ewt_mae_s or 0.0, 2),
            "per_queue": {name: {"sl": round(f.service_level, 4), "asa_s": round(f.asa_s, 2), "contacts": f.offered}
                          for name, f in sorted(report.queues.items())},
            "wall_s": round(time.perf_counter() - started, 2),
        })
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench simulate")
    parser.add_argument("--json", action="store_true", help="print one JSON line per result")
    parser.add_argument("--hours", type=float, default=200.0, help="simulated hours per scenario")
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    rows = [single_queue(args.agents, 0.85, args.hours, args.seed)]
    rows += multi_skill(max(1.0, args.hours / 4), args.seed)
    if args.json:
        for row in rows:
            print(json.dumps(row))
    print(f"{'scenario':<28}{'SL meas':>9}{'SL ErlC':>9}{'ASA meas':>10}{'ASA ErlC':>10}{'occ':>7}{'ewt_mae_s':>11}")
    for row in rows:
        name = row["scenario"] + (f"/{row['routing']}" if "routing" in row else "")
        print(f"{name:<28}{row['sl_measured']:>9.3f}{row['sl_erlang_c']:>9.3f}{row['asa_measured']:>10.1f}"
              f"{row['asa_erlang_c']:>10.1f}{row['occupancy_measured']:>7.3f}{row['ewt_mae_s']:>11.1f}")
    return 0
