"""The ``routing:`` section of config.yaml: agent groups (capacity budgets), queues, priority weights."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Channel = Literal["voice", "chat", "email", "task"]
Tier = Literal["vip", "major", "ordinary", "small"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentGroup(_Strict):
    """Capacity as a cost budget: 'one call, or four chats, or two chats and five emails' is one rule."""

    capacity: int = Field(default=100, gt=0)
    costs: dict[Channel, int] = Field(default_factory=lambda: {"voice": 100, "chat": 25, "email": 10, "task": 10})
    wrap_up_s: int = Field(default=30, ge=0)
    offer_timeout_s: int = Field(default=15, gt=0)
    missed_offers_to_break: int = Field(default=3, gt=0)


class SkillRequirement(_Strict):
    skill: str
    min_level: int = Field(default=1, ge=1, le=10)


class EscalationStep(_Strict):
    """After ``after_s`` seconds in queue, widen the target in the manner of TaskRouter workflows."""

    after_s: int = Field(ge=0)
    skills: list[SkillRequirement] | None = None  # replaces the requirement; None keeps the previous
    also_queues: list[str] = Field(default_factory=list)  # agents of these queues become eligible too
    any_agent: bool = False  # finally: any agent with any skill


class ServiceLevel(_Strict):
    percent: float = Field(default=80, gt=0, le=100)
    within_s: int = Field(default=20, gt=0)


class Overflow(_Strict):
    after_s: int = Field(default=900, gt=0)
    action: Literal["voicemail", "callback", "message", "case"] = "voicemail"


class QueueConfig(_Strict):
    name: str = Field(pattern=r"^[a-z0-9_]+$")
    label_en: str = ""
    label_zh: str = ""
    channels: list[Channel] = Field(default_factory=lambda: ["voice"])
    skills: list[SkillRequirement] = Field(default_factory=list)
    service_level: ServiceLevel = ServiceLevel()
    escalation: list[EscalationStep] = Field(default_factory=list)
    overflow: Overflow = Overflow()
    calendar: str = "default"
    preferred_agent_window_days: int = Field(default=30, ge=0)
    preferred_agent_wait_s: int = Field(default=10, ge=0)


class PriorityWeights(_Strict):
    tier: dict[Tier, int] = Field(default_factory=lambda: {"vip": 300, "major": 200, "ordinary": 100, "small": 0})
    open_complaint: dict[str, int] = Field(
        default_factory=lambda: {"P1": 400, "P2": 250, "P3": 100, "P4": 50})
    callback: int = 50
    per_minute_waiting: int = 5


class RoutingConfig(_Strict):
    agent_groups: dict[str, AgentGroup] = Field(default_factory=lambda: {"default": AgentGroup()})
    queues: list[QueueConfig] = Field(default_factory=lambda: [QueueConfig(name="general")])
    priority: PriorityWeights = PriorityWeights()
    offer_lease_s: int = Field(default=15, gt=0)
    backoff_s: dict[Literal["reject", "no_answer", "disconnect"], int] = Field(
        default_factory=lambda: {"reject": 5, "no_answer": 30, "disconnect": 60})

    @model_validator(mode="after")
    def _queue_names_unique_and_known(self) -> "RoutingConfig":
        names = [q.name for q in self.queues]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"queue names must be unique; repeated: {', '.join(dupes)}")
        for queue in self.queues:
            for step in queue.escalation:
                unknown = [q for q in step.also_queues if q not in names]
                if unknown:
                    raise ValueError(f"queue {queue.name!r} escalates to unknown queue(s) {unknown}")
        return self

    def queue(self, name: str) -> QueueConfig:
        for queue in self.queues:
            if queue.name == name:
                return queue
        raise KeyError(name)
