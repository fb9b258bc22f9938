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
    offer_timeout_s: int | None = Field(default=None, gt=0)  # None: routing.offer_lease_s
    missed_offers_to_break: int = Field(default=3, gt=0)

    @model_validator(mode="after")
    def _costs_fit_capacity(self) -> AgentGroup:
        too_big = sorted(ch for ch, cost in self.costs.items() if cost > self.capacity or cost <= 0)
        if too_big:
            raise ValueError(f"costs for {', '.join(too_big)} must be between 1 and capacity ({self.capacity})")
        return self


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


OverflowAction = Literal["voicemail", "callback", "message", "case"]
VOICE_OVERFLOW = ("voicemail", "callback")  # a call leaves the queue for one of these
TEXT_OVERFLOW = ("message", "case")  # chat, email and task stay with the desk as a message or a case
DEFAULT_OVERFLOW: dict[str, str] = {"voice": "voicemail", "chat": "message", "email": "case", "task": "case"}


class Overflow(_Strict):
    """What happens to a contact that waited the queue's maximum (``after_s``).

    ``action`` is the queue's choice; ``by_channel`` overrides it per channel. A call takes ``voicemail``
    or ``callback``; chat, email and task take ``message`` or ``case`` (see
    ``queues.service.record_overflow`` for what each does). Where the queue's ``action`` does not fit a
    channel (``callback`` for an email, say), that channel's default applies: voicemail for a call, a
    message for a chat, a case for an email or task — so no contact waits forever."""

    after_s: int = Field(default=900, gt=0)
    action: OverflowAction = "voicemail"
    by_channel: dict[Channel, OverflowAction] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _actions_fit_channels(self) -> Overflow:
        wrong = sorted(ch for ch, act in self.by_channel.items()
                       if act not in (VOICE_OVERFLOW if ch == "voice" else TEXT_OVERFLOW))
        if wrong:
            raise ValueError(f"overflow.by_channel: {', '.join(wrong)} cannot overflow to that action "
                             f"(voice: {'/'.join(VOICE_OVERFLOW)}; others: {'/'.join(TEXT_OVERFLOW)})")
        return self

    def action_for(self, channel: str) -> str:
        """The overflow action for a contact on ``channel`` (always one that fits the channel)."""
        if channel in self.by_channel:
            return self.by_channel[channel]  # type: ignore[index]
        fits = VOICE_OVERFLOW if channel == "voice" else TEXT_OVERFLOW
        return self.action if self.action in fits else DEFAULT_OVERFLOW.get(channel, "case")


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

    def label(self, language: str) -> str:
        """The queue's name for people in ``language`` ("zh" falls back to the English label), else its code."""
        return (self.label_zh if language == "zh" and self.label_zh else self.label_en) or self.name

    @model_validator(mode="after")
    def _steps_in_time_order(self) -> QueueConfig:
        times = [step.after_s for step in self.escalation]
        if times != sorted(set(times)) or (times and times[0] == 0):
            raise ValueError(f"queue {self.name!r}: escalation after_s must be positive and strictly increasing")
        return self


class PriorityWeights(_Strict):
    tier: dict[Tier, int] = Field(default_factory=lambda: {"vip": 300, "major": 200, "ordinary": 100, "small": 0})
    open_complaint: dict[str, int] = Field(
        default_factory=lambda: {"P1": 400, "P2": 250, "P3": 100, "P4": 50})
    callback: int = 50
    per_minute_waiting: int = 5
    overflowed: int = 200  # a chat, email or task that waited past its queue's maximum moves up once


class EwtSettings(_Strict):
    """When an estimated wait is good enough to announce to a caller (measured error over recent contacts)."""

    min_samples: int = Field(default=20, ge=1)
    window: int = Field(default=200, ge=10)
    max_mae_s: float = Field(default=60, gt=0)
    handle_time_prior_s: float = Field(default=240, gt=0)  # until live handle times are known
    smoothing: float = Field(default=0.1, gt=0, le=1)  # EWMA weight of each new handle time


class RouterSettings(_Strict):
    tick_s: float = Field(default=1.0, gt=0)  # wake even without events (escalation, leases)
    lock_ttl_s: int = Field(default=10, gt=0)  # the active router renews its Redis lock within this


class RoutingConfig(_Strict):
    agent_groups: dict[str, AgentGroup] = Field(default_factory=lambda: {"default": AgentGroup()})
    queues: list[QueueConfig] = Field(default_factory=lambda: [QueueConfig(name="general")])
    priority: PriorityWeights = PriorityWeights()
    offer_lease_s: int = Field(default=15, gt=0)
    backoff_s: dict[Literal["reject", "no_answer", "disconnect"], int] = Field(
        default_factory=lambda: {"reject": 5, "no_answer": 30, "disconnect": 60})
    ewt: EwtSettings = EwtSettings()
    router: RouterSettings = RouterSettings()

    @model_validator(mode="after")
    def _queue_names_unique_and_known(self) -> RoutingConfig:
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

    def lease_s(self, group: str) -> int:
        """Seconds an offer to an agent of ``group`` stays open before it expires."""
        configured = self.agent_group(group).offer_timeout_s
        return configured if configured is not None else self.offer_lease_s

    def agent_group(self, name: str) -> AgentGroup:
        """The named group, or ``default`` (or built-in defaults) for an unknown name."""
        return self.agent_groups.get(name) or self.agent_groups.get("default") or AgentGroup()

    def queue(self, name: str) -> QueueConfig:
        for queue in self.queues:
            if queue.name == name:
                return queue
        raise KeyError(name)
