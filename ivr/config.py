"""The ``ivr:`` section of config.yaml: the IVR menu graph as typed data.

Each node is one of a closed set of types (the ``type`` key picks the model), so a misspelt key
or a wrong value fails at start-up with the node's path. Every prompt carries English and
Mandarin text; the graph-level checks (unknown node references, unreachable nodes, loops that never
ask for input) live in ``ivr.validation`` and run when this section is validated.
"""
from __future__ import annotations

import string
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from queues.config import SkillRequirement, Tier

Lang = Literal["en", "zh"]
NodeId = Annotated[str, Field(pattern=r"^[a-z0-9_]+$", max_length=64)]
DTMF_KEYS = frozenset("0123456789*#")
LOOKUP_FIELDS: dict[str, frozenset[str]] = {
    "order_status": frozenset({"number", "status", "placed_on", "expected_on", "delivered_on"}),
    "shipment_status": frozenset({"number", "status", "carrier", "expected_on", "delivered_on"}),
    "complaint_status": frozenset({"reference", "status", "due_on"}),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Prompt(_Strict):
    """A sentence the caller hears, in both languages (text spoken by ``<Say>``)."""

    en: str = Field(min_length=1, max_length=1000)
    zh: str = Field(min_length=1, max_length=1000)

    def text(self, language: str) -> str:
        return self.zh if language == "zh" else self.en


class Words(_Strict):
    """Speech keywords per language (what a caller may say instead of pressing a key)."""

    en: list[str] = Field(default_factory=list)
    zh: list[str] = Field(default_factory=list)

    def of(self, language: str) -> list[str]:
        return self.zh if language == "zh" else self.en


def _check_keys(keys: list[str]) -> None:
    for key in keys:
        if key not in DTMF_KEYS:
            raise ValueError(f"key {key!r} is not a single phone key (0-9, * or #)")


class MenuOption(_Strict):
    goto: NodeId
    words: Words = Words()


class _NodeBase(_Strict):
    description: str = ""

    def targets(self) -> list[tuple[str, str]]:
        """(field path inside the node, node id) for every node this one can lead to."""
        return []

    @property
    def asks_for_input(self) -> bool:
        return False

    @property
    def is_terminal(self) -> bool:
        return False


class _Retrying(_NodeBase):
    """Shared by nodes that wait for the caller: retries on silence or a wrong key, then the fallback."""

    prompt: Prompt
    timeout_s: int = Field(default=6, ge=1, le=60)
    retries: int = Field(default=2, ge=0, le=9)
    no_input: Prompt | None = None  # said before re-prompting after silence; default from ivr.messages
    invalid: Prompt | None = None  # said before re-prompting after a wrong key; default from ivr.messages
    fallback: NodeId

    @property
    def asks_for_input(self) -> bool:
        return True


class SayNode(_NodeBase):
    """Speak a prompt and/or play audio, then continue."""

    type: Literal["say"]
    prompt: Prompt | None = None
    play: dict[Lang, str] | None = None  # audio URL per language
    next: NodeId

    @model_validator(mode="after")
    def _something_to_say(self) -> SayNode:
        if self.prompt is None and not self.play:
            raise ValueError("a say node needs a prompt or play URLs")
        return self

    def targets(self) -> list[tuple[str, str]]:
        return [("next", self.next)]


class GatherNode(_Retrying):
    """Collect digits and/or speech into a call variable (``save_as``), then continue."""

    type: Literal["gather"]
    input: list[Literal["dtmf", "speech"]] = Field(default_factory=lambda: ["dtmf"], min_length=1)
    num_digits: int | None = Field(default=None, ge=1, le=32)
    min_digits: int = Field(default=1, ge=1, le=32)
    max_digits: int = Field(default=20, ge=1, le=32)
    finish_on_key: Literal["#", "*", ""] = "#"
    hints: Words = Words()
    save_as: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=40)
    next: NodeId

    @model_validator(mode="after")
    def _digit_bounds(self) -> GatherNode:
        if self.min_digits > self.max_digits:
            raise ValueError("min_digits must not exceed max_digits")
        return self

    def targets(self) -> list[tuple[str, str]]:
        return [("next", self.next), ("fallback", self.fallback)]


class MenuNode(_Retrying):
    """Offer options by key (and by spoken keyword when ``speech`` is on)."""

    type: Literal["menu"]
    options: dict[str, MenuOption] = Field(min_length=1)
    speech: bool = False

    @field_validator("options", mode="before")
    @classmethod
    def _shorthand(cls, value):
        if isinstance(value, dict):  # "1": node_id is short for "1": {goto: node_id}
            value = {str(k): ({"goto": v} if isinstance(v, str) else v) for k, v in value.items()}
            _check_keys(list(value))
        return value

    def targets(self) -> list[tuple[str, str]]:
        return [(f"options.{key}", opt.goto) for key, opt in self.options.items()] + [("fallback", self.fallback)]


class LanguageNode(_Retrying):
    """Let the caller pick English or Mandarin. The prompt is spoken in both languages (English text
    in the English voice, then the Mandarin text); ``use_caller_language`` skips the question for a
    caller whose CRM record already names a language. The fallback keeps the current language."""

    type: Literal["language"]
    choices: dict[str, Lang] = Field(min_length=1)
    use_caller_language: bool = False
    next: NodeId

    @field_validator("choices", mode="before")
    @classmethod
    def _keys(cls, value):
        if isinstance(value, dict):
            value = {str(k): v for k, v in value.items()}
            _check_keys(list(value))
        return value

    def targets(self) -> list[tuple[str, str]]:
        return [("next", self.next), ("fallback", self.fallback)]


class HoursNode(_NodeBase):
    """Branch on whether a business-hours calendar (``calendars:``) is open now (holidays included)."""

    type: Literal["hours"]
    calendar: str = "default"
    open: NodeId
    closed: NodeId

    def targets(self) -> list[tuple[str, str]]:
        return [("open", self.open), ("closed", self.closed)]


class CallerCondition(_Strict):
    """Every condition given must hold; a rule with none is refused (it would always match)."""

    known: bool | None = None
    tier: list[Tier] | None = None
    open_complaint: bool | None = None
    language: Lang | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> CallerCondition:
        if all(v is None for v in (self.known, self.tier, self.open_complaint, self.language)):
            raise ValueError("a condition needs at least one of known, tier, open_complaint, language")
        return self


class CallerRule(_Strict):
    when: CallerCondition
    goto: NodeId


class CallerNode(_NodeBase):
    """Branch on the caller's CRM facts; the first matching rule wins, else ``otherwise``."""

    type: Literal["caller"]
    rules: list[CallerRule] = Field(min_length=1)
    otherwise: NodeId

    def targets(self) -> list[tuple[str, str]]:
        return [(f"rules.{i}.goto", rule.goto) for i, rule in enumerate(self.rules)] + [("otherwise", self.otherwise)]


class LookupNode(_Retrying):
    """Self-service: ask for a number, look it up through the caller-supplied port, read back the
    ``found`` template (placeholders from LOOKUP_FIELDS[kind]) in the caller's language."""

    type: Literal["lookup"]
    kind: Literal["order_status", "shipment_status", "complaint_status"]
    min_digits: int = Field(default=3, ge=1, le=32)
    max_digits: int = Field(default=20, ge=1, le=32)
    finish_on_key: Literal["#", "*"] = "#"
    found: Prompt
    not_found: Prompt
    next: NodeId

    @model_validator(mode="after")
    def _placeholders_known(self) -> LookupNode:
        allowed = LOOKUP_FIELDS[self.kind]
        for language in ("en", "zh"):
            for _, name, _, _ in string.Formatter().parse(self.found.text(language)):
                if name is not None and name not in allowed:
                    raise ValueError(f"found.{language}: unknown placeholder {{{name}}} for {self.kind}; "
                                     f"use {', '.join(sorted(allowed))}")
        if self.min_digits > self.max_digits:
            raise ValueError("min_digits must not exceed max_digits")
        return self

    def targets(self) -> list[tuple[str, str]]:
        return [("next", self.next), ("fallback", self.fallback)]


class ComplaintChoice(_Strict):
    category: str = Field(pattern=r"^[a-z0-9_]+$")  # a ``complaints.categories`` code (checked at start)
    words: Words = Words()


COMPLAINT_FIELDS = frozenset({"reference", "resolve_by"})


class ComplaintNode(_Retrying):
    """Take a new complaint: the caller picks a category by key (or word, with ``speech``), then
    describes it after the tone (``<Record>``). The desk registers, grades and acknowledges it, says
    ``registered`` (placeholders {reference}, {resolve_by}) and goes on to ``next``. A caller the desk
    cannot register (withheld or shared number), or who records nothing, goes to ``fallback``."""

    type: Literal["complaint"]
    categories: dict[str, ComplaintChoice] = Field(min_length=1)
    speech: bool = False
    record_prompt: Prompt
    max_length_s: int = Field(default=180, ge=5, le=600)
    transcribe: bool = False  # ask Twilio for a transcription (English calls only: Twilio transcribes English)
    registered: Prompt = Prompt(
        en="Thank you. Your complaint reference is {reference}. We will give you our final response by {resolve_by}.",
        zh="谢谢。您的投诉编号是{reference}。我们将在{resolve_by}前给您最终答复。")
    # what the caller hears before ``fallback`` when the desk cannot tell who they are, or nothing was
    # recorded; unset: the desk-wide messages (which promise a colleague -- wrong where no one is there)
    unidentified: Prompt | None = None
    not_recorded: Prompt | None = None
    next: NodeId

    @field_validator("categories", mode="before")
    @classmethod
    def _shorthand(cls, value):
        if isinstance(value, dict):  # "1": product_quality is short for "1": {category: product_quality}
            value = {str(k): ({"category": v} if isinstance(v, str) else v) for k, v in value.items()}
            _check_keys(list(value))
        return value

    @model_validator(mode="after")
    def _placeholders_known(self) -> ComplaintNode:
        for language in ("en", "zh"):
            for _, name, _, _ in string.Formatter().parse(self.registered.text(language)):
                if name is not None and name not in COMPLAINT_FIELDS:
                    raise ValueError(f"registered.{language}: unknown placeholder {{{name}}}; "
                                     f"use {', '.join(sorted(COMPLAINT_FIELDS))}")
        return self

    def targets(self) -> list[tuple[str, str]]:
        return [("next", self.next), ("fallback", self.fallback)]


class EnqueueNode(_NodeBase):
    """Hand the call to a routing queue, with extra skills and a priority bump."""

    type: Literal["enqueue"]
    queue: str
    skills: list[SkillRequirement] = Field(default_factory=list)
    priority_bump: int = Field(default=0, ge=0, le=1000)
    prompt: Prompt | None = None

    @property
    def is_terminal(self) -> bool:
        return True


class VoicemailNode(_NodeBase):
    """Record a message; the voicemail is worked later by an agent of ``queue``."""

    type: Literal["voicemail"]
    queue: str
    prompt: Prompt
    max_length_s: int = Field(default=120, ge=5, le=600)

    @property
    def is_terminal(self) -> bool:
        return True


class CallbackNode(_NodeBase):
    """Take a callback request: the contact waits in ``queue`` as callback_pending; the caller hangs up."""

    type: Literal["callback"]
    queue: str
    skills: list[SkillRequirement] = Field(default_factory=list)
    priority_bump: int = Field(default=0, ge=0, le=1000)
    prompt: Prompt

    @property
    def is_terminal(self) -> bool:
        return True


class HangupNode(_NodeBase):
    type: Literal["hangup"]
    prompt: Prompt | None = None

    @property
    def is_terminal(self) -> bool:
        return True


Node = Annotated[
    SayNode | GatherNode | MenuNode | LanguageNode | HoursNode | CallerNode | LookupNode | ComplaintNode
    | EnqueueNode | VoicemailNode | CallbackNode | HangupNode,
    Field(discriminator="type"),
]
INPUT_NODE_TYPES = (GatherNode, MenuNode, LanguageNode, LookupNode, ComplaintNode)


class WaitingConfig(_Strict):
    """What a queued caller hears: hold music, position and wait every ``announce_every_s``, and the
    keys for a place-keeping callback or a voicemail."""

    announce_every_s: int = Field(default=30, ge=10, le=600)
    hold_music_url: str | None = "http://com.twilio.music.classical.s3.amazonaws.com/BusyStrings.mp3"
    position: Prompt = Prompt(en="You are number {position} in the queue.", zh="您目前排在第{position}位。")
    wait: Prompt = Prompt(en="The estimated wait is about {minutes} minutes.", zh="预计等待时间约为{minutes}分钟。")
    wait_short: Prompt = Prompt(en="An agent should be with you in less than a minute.",
                                zh="客服人员将在一分钟内为您服务。")
    options: Prompt = Prompt(en="To be called back without losing your place, press 1. To leave a voicemail, press 2.",
                             zh="如需保留排队位置并等待回电，请按1。如需留言，请按2。")
    callback_key: str = "1"
    voicemail_key: str = "2"
    callback_confirm: Prompt = Prompt(
        en="Thank you. We will call you back on this number when an agent is free. Your place is kept. Goodbye.",
        zh="谢谢。客服人员空闲时将回拨此号码，您的排队位置将被保留。再见。")
    voicemail_prompt: Prompt = Prompt(en="Please leave your message after the tone. Press the hash key when done.",
                                      zh="请在提示音后留言，结束后请按井号键。")
    voicemail_max_length_s: int = Field(default=120, ge=5, le=600)
    connecting: Prompt = Prompt(en="Connecting you to an agent now.", zh="正在为您接通客服人员。")

    @model_validator(mode="after")
    def _keys(self) -> WaitingConfig:
        _check_keys([self.callback_key, self.voicemail_key])
        if self.callback_key == self.voicemail_key:
            raise ValueError("callback_key and voicemail_key must differ")
        for field, allowed in (("position", {"position"}), ("wait", {"minutes"})):
            for language in ("en", "zh"):
                for _, name, _, _ in string.Formatter().parse(getattr(self, field).text(language)):
                    if name is not None and name not in allowed:
                        raise ValueError(f"{field}.{language}: unknown placeholder {{{name}}}; "
                                         f"use {{{next(iter(allowed))}}}")
        return self


class RecordingConfig(_Strict):
    enabled: bool = False
    consent: Prompt | None = Prompt(en="This call may be recorded for quality and training.",
                                    zh="为保证服务质量，本次通话可能会被录音。")


class Messages(_Strict):
    """Sentences the engine and the webhooks use outside any node."""

    no_input: Prompt = Prompt(en="Sorry, I didn't hear anything.", zh="抱歉，没有听到您的输入。")
    invalid: Prompt = Prompt(en="Sorry, that is not one of the choices.", zh="抱歉，您的选择无效。")
    apology: Prompt = Prompt(en="We are sorry, something went wrong with this call. Please call again later. Goodbye.",
                             zh="非常抱歉，本次通话出现问题，请稍后再拨。再见。")
    goodbye: Prompt = Prompt(en="Thank you for calling. Goodbye.", zh="感谢您的来电，再见。")
    voicemail_saved: Prompt = Prompt(en="Your message has been saved. Goodbye.", zh="您的留言已保存。再见。")
    unknown_value: Prompt = Prompt(en="not yet known", zh="暂未确定")
    callback_intro: Prompt = Prompt(en="Hello, this is the service desk returning your call.",
                                    zh="您好，这里是客户服务中心，现在为您回电。")
    on_hold: Prompt = Prompt(en="Please hold, your agent will be right back.", zh="请稍候，客服人员马上回来。")
    agent_left: Prompt = Prompt(en="Your agent has left the call. Thank you for calling. Goodbye.",
                                zh="客服人员已结束通话。感谢您的来电，再见。")
    callback_unavailable: Prompt = Prompt(
        en="Sorry, we cannot call back a withheld number. Please stay on the line.",
        zh="抱歉，无法回拨隐藏的号码，请继续等待。")
    complaint_unidentified: Prompt = Prompt(
        en="To take your complaint we need to know who you are, so we will put you through to a colleague.",
        zh="为受理您的投诉，我们需要核实您的身份，现在为您转接客服人员。")
    complaint_not_recorded: Prompt = Prompt(
        en="Sorry, we did not get a message, so we will put you through to a colleague.",
        zh="抱歉，没有录到您的留言，现在为您转接客服人员。")


def _default_status_words() -> dict[str, Prompt]:
    pairs = {
        "placed": ("placed", "已下单"), "received": ("received", "已收到"),
        "response_proposed": ("awaiting our response", "待答复"), "approved": ("approved", "已批准"),
        "compensation_issued": ("compensated", "已补偿"), "reopened": ("reopened", "已重新受理"),
        "pending": ("pending", "待处理"), "paid": ("paid", "已付款"), "processing": ("being prepared", "备货中"),
        "shipped": ("shipped", "已发货"), "delivered": ("delivered", "已送达"), "cancelled": ("cancelled", "已取消"),
        "returned": ("returned", "已退货"), "refunded": ("refunded", "已退款"),
        "label_created": ("waiting for the carrier", "等待承运商揽收"), "in_transit": ("on its way", "运输中"),
        "out_for_delivery": ("out for delivery", "派送中"), "exception": ("delayed", "配送异常"),
        "open": ("open", "已受理"), "acknowledged": ("acknowledged", "已确认"),
        "investigating": ("being investigated", "调查中"), "awaiting_approval": ("awaiting approval", "等待审批"),
        "resolved": ("resolved", "已解决"), "closed": ("closed", "已结案"), "rejected": ("declined", "未受理"),
    }
    return {code: Prompt(en=en, zh=zh) for code, (en, zh) in pairs.items()}


def _default_nodes() -> dict[str, Node]:
    """A desk with no ``ivr:`` section greets the caller and queues them in ``general``."""
    return {
        "welcome": SayNode(type="say", prompt=Prompt(en="Thank you for calling.", zh="感谢您的来电。"), next="queue"),
        "queue": EnqueueNode(type="enqueue", queue="general"),
    }


class IvrConfig(_Strict):
    entry: NodeId = "welcome"
    default_language: Lang = "en"
    say_language: dict[Lang, str] = Field(default_factory=lambda: {"en": "en-US", "zh": "cmn-CN"})
    speech_language: dict[Lang, str] = Field(default_factory=lambda: {"en": "en-US", "zh": "cmn-Hans-CN"})
    voice: dict[Lang, str] = Field(default_factory=dict)  # optional TTS voice per language, e.g. Polly.Zhiyu
    nodes: dict[NodeId, Node] = Field(default_factory=_default_nodes)
    waiting: WaitingConfig = WaitingConfig()
    recording: RecordingConfig = RecordingConfig()
    messages: Messages = Messages()
    status_words: dict[str, Prompt] = Field(default_factory=_default_status_words)

    @field_validator("status_words", mode="before")
    @classmethod
    def _merge_status_words(cls, value):
        if isinstance(value, dict):  # config adds to / overrides the built-in words
            return {**_default_status_words(), **value}
        return value

    @model_validator(mode="after")
    def _graph(self) -> IvrConfig:
        from ivr.validation import check_graph

        check_graph(self)
        return self

    def node(self, node_id: str) -> Node:
        return self.nodes[node_id]
