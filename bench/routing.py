"""``python -m bench routing [--json] [--sizes 1000,10000,100000]``: routing decision latency.

The desk: 1,000 agents over 50 skills (five random skills each, levels 1-10), 20 queues (queue i
requires skill ``s<i>`` at level 3, dropping to level 1 after 60 s and adding the next queue's agents
after 300 s); a third of the contacts also need one of 30 extra skills (language, product); 80% voice,
20% chat. Every agent is busy and ``waiting`` contacts wait.

A *decision* is what happens when an agent frees up: the engine finds the best contact among the
queues that agent serves and the best agent for it (``release`` + ``match``), timed together. Each
decision is followed (untimed) by an accept and by a new arrival, so the number waiting stays put.
The baseline answers the same questions with a full scan of every waiting contact and every agent
(``queues.matching.NaiveRouter``), in the same process, on a copy of the same contacts.

One JSON line per size: waiting, agents, p50_us, p99_us, decisions_per_s, baseline_p50_us,
baseline_p99_us (plus wall_p50_us, wall_p99_us). Times are the deciding thread's CPU time
(``time.thread_time``): on a machine shared with other work, wall-clock percentiles mostly measure
how long the scheduler left the process waiting, which the wall_* fields show alongside.
Figures only; nothing is asserted.
"""
from __future__ import annotations

import argparse
import gc
import json
import random
import time

from queues.config import AgentGroup, EscalationStep, Overflow, QueueConfig, RoutingConfig
from queues.config import SkillRequirement as Skill
from queues.engine import RoutingEngine
from queues.matching import Contact, NaiveRouter

AGENTS, QUEUES, SKILLS = 1000, 20, 50


def desk_config() -> RoutingConfig:
    queues = []
    for i in range(QUEUES):
        queues.append(QueueConfig(
            name=f"q{i:02d}", channels=["voice", "chat"], skills=[Skill(skill=f"s{i}", min_level=3)],
            escalation=[EscalationStep(after_s=60, skills=[Skill(skill=f"s{i}", min_level=1)]),
                        EscalationStep(after_s=300, also_queues=[f"q{(i + 1) % QUEUES:02d}"])],
            overflow=Overflow(after_s=10**9)))
    return RoutingConfig(agent_groups={"default": AgentGroup(capacity=100, wrap_up_s=0)}, queues=queues)


def agent_skills(rng: random.Random) -> dict[str, int]:
    primary = rng.sample(range(QUEUES), 3)
    extra = rng.sample(range(QUEUES, SKILLS), 2)
    return {f"s{i}": rng.randint(1, 10) for i in primary + extra}


def new_contact(rng: random.Random, cid: int, now: float, *, fresh: bool = True) -> Contact:
    """A contact; the initial backlog (``fresh=False``) has waited up to an hour."""
    extras = ((f"s{rng.randrange(QUEUES, SKILLS)}", 1),) if rng.random() < 1 / 3 else ()
    origin = now - rng.uniform(0, 50) if fresh else now - rng.uniform(0, 3600)
    return Contact(cid, f"q{rng.randrange(QUEUES):02d}", "voice" if rng.random() < 0.8 else "chat",
                   routing_age_origin=origin, enqueued_at=origin, priority=rng.choice((0, 0, 100, 200, 300)),
                   required_skills=extras)


def build(waiting: int, rng: random.Random) -> tuple[RoutingEngine, float, int]:
    """An engine with every agent fully busy and ``waiting`` contacts waiting."""
    engine = RoutingEngine(desk_config(), trace_limit=5)
    now = 1_000_000.0
    for aid in range(1, AGENTS + 1):
        engine.upsert_agent(aid, agent_skills(rng), now)
        engine.set_presence(aid, "available", now)
    next_id = 1
    while True:
        count = sum(1 for c in engine.contacts.values() if c.state == "waiting")
        for _ in range(max(0, waiting - count)):
            engine.add_contact(new_contact(rng, next_id, now, fresh=False), now)
            next_id += 1
        offers = engine.match(now).offers
        for offer in offers:
            engine.accept(offer.contact_id, offer.agent_id, now)
        if not offers:
            break
    return engine, now, next_id


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_engine(engine: RoutingEngine, now: float, next_id: int, rng: random.Random, decisions: int,
               wall: list[float] | None = None) -> list[float]:
    samples, wall = [], wall if wall is not None else []
    connected = [cid for cid, c in engine.contacts.items() if c.state == "connected"]
    for _ in range(decisions):
        now += 0.01
        index = rng.randrange(len(connected))
        cid = connected[index]
        connected[index] = connected[-1]
        connected.pop()
        started, started_cpu = time.perf_counter(), time.thread_time()
        engine.release(cid, now, wrap_up=False)
        offers = engine.match(now).offers
        samples.append(time.thread_time() - started_cpu)
        wall.append(time.perf_counter() - started)
        for offer in offers:
            engine.accept(offer.contact_id, offer.agent_id, now)
            connected.append(offer.contact_id)
        engine.add_contact(new_contact(rng, next_id, now), now)
        next_id += 1
        for offer in engine.match(now).offers:
            engine.accept(offer.contact_id, offer.agent_id, now)
            connected.append(offer.contact_id)
    return samples


def run_baseline(engine: RoutingEngine, now: float, rng: random.Random, decisions: int) -> list[float]:
    """Full scans over plain lists holding the same contacts and agents."""
    naive = NaiveRouter(engine.steps, engine.w)
    waiting = {cid: c for cid, c in engine.contacts.items() if c.state == "waiting"}
    agents = list(engine.agents.values())
    samples = []
    for _ in range(decisions):
        agent = rng.choice(agents)
        load, agent.load = agent.load, 0  # as if this agent had just freed up
        started = time.thread_time()
        contact = naive.best_contact_for(agent, waiting.values(), now)
        if contact is not None:
            naive.best_agent_for(contact, agents, now)
        samples.append(time.thread_time() - started)
        agent.load = load
    return samples


def measure(waiting: int, seed: int, decisions: int) -> dict:
    rng = random.Random(seed)
    engine, now, next_id = build(waiting, rng)
    engine.prepare()
    # Untimed warm-up past the first offer leases, so their timers are not all due inside one decision.
    run_engine(engine, now, next_id, rng, 200)
    now += 20.0
    for offer in engine.match(now).offers:
        engine.accept(offer.contact_id, offer.agent_id, now)
    gc.collect()
    gc.freeze()  # as the router does after loading: the long-lived index is not rescanned by the GC
    wall: list[float] = []
    samples = run_engine(engine, now, next_id + 10**6, rng, decisions, wall)
    baseline_runs = max(20, min(decisions, 2_000_000 // waiting))
    baseline = run_baseline(engine, now + 100, rng, baseline_runs)
    return {
        "waiting": waiting, "agents": AGENTS,
        "p50_us": round(percentile(samples, 0.50) * 1e6, 1), "p99_us": round(percentile(samples, 0.99) * 1e6, 1),
        "decisions_per_s": round(len(samples) / sum(samples)),
        "baseline_p50_us": round(percentile(baseline, 0.50) * 1e6, 1),
        "baseline_p99_us": round(percentile(baseline, 0.99) * 1e6, 1),
        "wall_p50_us": round(percentile(wall, 0.50) * 1e6, 1), "wall_p99_us": round(percentile(wall, 0.99) * 1e6, 1),
        "decisions": len(samples), "baseline_decisions": len(baseline),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench routing")
    parser.add_argument("--json", action="store_true", help="print one JSON line per size")
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--decisions", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    rows = [measure(int(size), args.seed, args.decisions) for size in args.sizes.split(",")]
    if args.json:
        for row in rows:
            print(json.dumps(row))
    print(f"{'waiting':>9}{'p50 us':>10}{'p99 us':>10}{'decisions/s':>13}{'naive p50':>12}{'naive p99':>12}")
    for row in rows:
        print(f"{row['waiting']:>9}{row['p50_us']:>10}{row['p99_us']:>10}{row['decisions_per_s']:>13}"
              f"{row['baseline_p50_us']:>12}{row['baseline_p99_us']:>12}")
    return 0
