"""Pure matching rules: who may take which contact, in which order, and why not.

Everything here is a function of plain values (no clock, no I/O), so the indexed engine
(``queues.engine``), the naive full-scan baseline below and the tests all share one definition of
eligibility and ordering:

- a contact's requirement is a set of *alternatives*; an agent qualifies when their skills meet every
  (skill, minimum level) of one alternative. An empty alternative means "any agent".
- contacts are ordered by ``contact_key``: highest effective priority first, then earliest
  ``routing_age_origin``, then id. Waiting time adds ``per_minute_waiting`` points a minute to every
  contact alike, so the order never changes while contacts wait and a static key serves.
- agents are ordered by ``agent_key``: idle longest first, then higher level in the queue's first
  skill, then id.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from queues.config import QueueConfig, SkillRequirement

Alternative = tuple[tuple[str, int], ...]  # ((skill, min_level), ...) sorted; () = any agent
Requirement = tuple[Alternative, ...]

PRESENCES = ("offline", "available", "break", "wrap_up")
ANY_AGENT: Alternative = ()


@dataclass(slots=True)
class Contact:
    """A contact waiting for (or holding) an agent. Times are seconds on the engine's clock."""

    id: int
    queue: str
    channel: str
    routing_age_origin: float
    enqueued_at: float
    priority: int = 0  # base points (tier, complaint, callback); waiting time is added by the key
    required_skills: tuple[tuple[str, int], ...] = ()  # contact-specific extras (e.g. language)
    preferred_agent_id: int | None = None
    preferred_until: float = 0.0
    priority_reasons: tuple[dict, ...] = ()
    step: int = 0  # engine-maintained: the active escalation step
    state: str = "waiting"  # engine-maintained: waiting | offered | connected


@dataclass(slots=True)
class Agent:
    """An agent as routing sees them: skills, a capacity budget and what is using it."""

    id: int
    skills: dict[str, int]
    capacity: int = 100
    costs: dict[str, int] = field(default_factory=lambda: {"voice": 100, "chat": 25, "email": 10, "task": 10})
    group: str = "default"
    presence: str = "offline"
    reason: str | None = None
    idle_since: float = 0.0
    backoff_until: float = 0.0
    load: int = 0
    missed_offers: int = 0
    wrap_up_until: float | None = None

    def free(self) -> int:
        return self.capacity - self.load

    def cost(self, channel: str) -> int:
        """Capacity one contact of ``channel`` uses; more than the whole budget when not handled."""
        return self.costs.get(channel, self.capacity + 1)


def alternative(requirements: Iterable[SkillRequirement | tuple[str, int]]) -> Alternative:
    """Normalise skill requirements to a sorted tuple, keeping the highest minimum per skill."""
    best: dict[str, int] = {}
    for item in requirements:
        skill, level = (item.skill, item.min_level) if isinstance(item, SkillRequirement) else item
        best[skill] = max(level, best.get(skill, 0))
    return tuple(sorted(best.items()))


def with_extras(alt: Alternative, extras: Alternative) -> Alternative:
    """``alt`` plus the contact's own required skills; 'any agent' stays any agent."""
    if alt == ANY_AGENT or not extras:
        return alt
    return alternative(alt + extras)


def satisfies(skills: Mapping[str, int], alt: Alternative) -> bool:
    return all(skills.get(skill, 0) >= level for skill, level in alt)


def meets(skills: Mapping[str, int], requirement: Requirement) -> bool:
    return any(satisfies(skills, alt) for alt in requirement)


@dataclass(frozen=True, slots=True)
class CompiledStep:
    """One escalation step of a queue, resolved to alternatives (before contact extras)."""

    index: int
    after_s: float
    alternatives: Requirement
    label: str


def compile_steps(queue: QueueConfig, queues: Mapping[str, QueueConfig]) -> list[CompiledStep]:
    """Turn a queue's skills and escalation steps into cumulative requirements.

    A step's ``skills`` replace the current requirement, ``also_queues`` add the named queues' base
    requirements as alternatives (cumulatively), and ``any_agent`` finally accepts any agent.
    """
    base = alternative(queue.skills)
    steps = [CompiledStep(0, 0.0, (base,), "initial")]
    current, extra_alts = base, []
    for index, step in enumerate(queue.escalation, start=1):
        if step.skills is not None:
            current = alternative(step.skills)
        for other in step.also_queues:
            extra_alts.append(alternative(queues[other].skills))
        alts = (ANY_AGENT,) if step.any_agent else tuple(dict.fromkeys([current, *extra_alts]))
        label = "any agent" if step.any_agent else describe(alts)
        steps.append(CompiledStep(index, float(step.after_s), alts, label))
    return steps


def describe(requirement: Requirement) -> str:
    """Human-readable requirement, e.g. 'billing>=3 or general>=3'."""
    parts = []
    for alt in requirement:
        parts.append(" and ".join(f"{s}>={lvl}" for s, lvl in alt) if alt else "any agent")
    return " or ".join(parts)


def step_for(steps: Sequence[CompiledStep], enqueued_at: float, now: float) -> int:
    """Index of the step active at ``now`` for a contact queued at ``enqueued_at``.

    Compared as ``enqueued_at + after_s <= now``, the very sum the engine's step timers fire at, so
    a timer and this function never disagree by a rounding error."""
    active = 0
    for step in steps[1:]:
        if enqueued_at + step.after_s <= now:
            active = step.index
    return active


def contact_requirement(steps: Sequence[CompiledStep], contact: Contact) -> Requirement:
    extras = alternative(contact.required_skills)
    return tuple(dict.fromkeys(with_extras(alt, extras) for alt in steps[contact.step].alternatives))


def contact_key(contact: Contact, per_minute_waiting: float) -> tuple[float, float, int]:
    """Sort key, smallest first: effective priority (descending), first arrival, id.

    Effective priority at time t is ``priority + w * (t - origin) / 60``; comparing it between two
    contacts at the same t is the same as comparing ``priority - w * origin / 60``, which is static.
    """
    origin = contact.routing_age_origin
    return (-(contact.priority - per_minute_waiting * origin / 60.0), origin, contact.id)


def primary_skill(requirement: Requirement) -> str | None:
    for alt in requirement:
        if alt:
            return alt[0][0]
    return None


def agent_key(agent: Agent, primary: str | None) -> tuple[float, int, int]:
    """Sort key, smallest first: idle longest, then higher level in the primary skill, then id."""
    level = agent.skills.get(primary, 0) if primary else 0
    return (agent.idle_since, -level, agent.id)


def exclusion_reason(agent: Agent, contact: Contact, requirement: Requirement, now: float) -> str | None:
    """Why ``agent`` may not be offered ``contact`` now, or None when they may.

    Reasons: 'state:<presence>', 'back_off', 'reserved' (the contact is held for its preferred
    agent), 'skill', 'capacity'.
    """
    if agent.presence != "available":
        return f"state:{agent.presence}"
    if agent.backoff_until > now:
        return "back_off"
    if contact.preferred_agent_id is not None and now < contact.preferred_until:
        if agent.id != contact.preferred_agent_id:
            return "reserved"
    elif not meets(agent.skills, requirement):
        return "skill"
    if agent.free() < agent.cost(contact.channel):
        return "capacity"
    return None


class NaiveRouter:
    """The baseline: a full scan of every waiting contact or every agent for each decision.

    It shares the rules above with the indexed engine, so it is both the benchmark baseline and the
    reference the tests compare the engine against.
    """

    def __init__(self, steps_by_queue: Mapping[str, Sequence[CompiledStep]], per_minute_waiting: float):
        self.steps_by_queue = steps_by_queue
        self.per_minute_waiting = per_minute_waiting

    def requirement(self, contact: Contact) -> Requirement:
        return contact_requirement(self.steps_by_queue[contact.queue], contact)

    def best_contact_for(self, agent: Agent, waiting: Iterable[Contact], now: float) -> Contact | None:
        best, best_key = None, None
        for contact in waiting:
            if exclusion_reason(agent, contact, self.requirement(contact), now) is None:
                key = contact_key(contact, self.per_minute_waiting)
                if best_key is None or key < best_key:
                    best, best_key = contact, key
        return best

    def best_agent_for(self, contact: Contact, agents: Iterable[Agent], now: float) -> Agent | None:
        requirement = self.requirement(contact)
        primary = primary_skill(requirement)
        best, best_key = None, None
        for agent in agents:
            if exclusion_reason(agent, contact, requirement, now) is None:
                key = agent_key(agent, primary)
                if best_key is None or key < best_key:
                    best, best_key = agent, key
        return best
