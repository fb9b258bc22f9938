"""The IVR flow engine (pure): (node, call context, caller input) -> the next step.

The engine walks the configured graph from a node, collecting what the caller should hear, until it
reaches a node that waits for input (the step carries a gather spec) or a terminal node (the step
carries an action: enqueue, voicemail, callback, hang-up). It never touches the database or Twilio:
the call's state between webhooks is the plain ``IvrState`` the caller persists, the clock and CRM
facts come in through ``CallContext``, and self-service lookups go through a port the caller supplies.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

from app.calendars import CalendarConfig, is_open
from ivr.config import (
    CallbackNode,
    CallerCondition,
    CallerNode,
    ComplaintNode,
    EnqueueNode,
    GatherNode,
    HangupNode,
    HoursNode,
    IvrConfig,
    LanguageNode,
    LookupNode,
    MenuNode,
    Prompt,
    SayNode,
    VoicemailNode,
)

LANGUAGES = ("en", "zh")
MAX_INPUT_CHARS = 64
_SPELLED_FIELDS = ("number", "reference")


class IvrError(Exception):
    """Base class of the engine's typed errors."""


class IvrStateError(IvrError):
    """The persisted state does not fit the configuration (unknown node, node that takes no input)."""


class IvrLoopError(IvrError):
    """The walk visited more nodes than the graph holds without asking for input (validation prevents
    this for a checked graph; the engine refuses rather than spin)."""


class LookupUnavailable(IvrError):
    """A lookup node was reached but the caller supplied no lookup port."""


@dataclass(frozen=True)
class CallerFacts:
    """What the CRM knows about the caller, reduced to what IVR branches may test."""

    known: bool = False
    customer_id: int | None = None
    tier: str | None = None
    open_complaint: bool = False
    language: str | None = None


@dataclass(frozen=True)
class LookupResult:
    """Fields for a lookup node's ``found`` template: strings, dates, or None for 'not yet known'."""

    fields: Mapping[str, str | date | None]


class LookupPort(Protocol):
    def lookup(self, kind: str, reference: str, caller: CallerFacts) -> LookupResult | None:
        """Return the record's fields, or None when nothing matches ``reference`` for this caller."""


@dataclass(frozen=True)
class CallContext:
    caller: CallerFacts
    now: datetime
    calendars: Mapping[str, CalendarConfig]
    lookups: LookupPort | None = None


@dataclass(frozen=True)
class CallInput:
    """What Twilio's gather reported: pressed digits and/or recognised speech (both empty on silence)."""

    digits: str = ""
    speech: str = ""

    @property
    def empty(self) -> bool:
        return not self.digits and not self.speech.strip()


@dataclass(frozen=True)
class IvrState:
    """Where a call is in the graph between webhooks; plain values so it can be stored as JSON."""

    node: str
    language: str = "en"
    attempts: int = 0
    vars: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "language": self.language, "attempts": self.attempts, "vars": dict(self.vars)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IvrState:
        """Rebuild a stored state. Raises IvrStateError when the data is malformed."""
        try:
            node, language, attempts = str(data["node"]), str(data.get("language", "en")), int(data.get("attempts", 0))
            variables = {str(k): str(v) for k, v in dict(data.get("vars") or {}).items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise IvrStateError(f"malformed IVR state: {exc}") from exc
        if language not in LANGUAGES or attempts < 0:
            raise IvrStateError(f"malformed IVR state: language {language!r}, attempts {attempts}")
        return cls(node=node, language=language, attempts=attempts, vars=variables)


@dataclass(frozen=True)
class Say:
    text: str
    language: str


@dataclass(frozen=True)
class Play:
    url: str


Utterance = Say | Play


@dataclass(frozen=True)
class GatherSpec:
    node: str
    input: tuple[str, ...]
    timeout_s: int
    language: str
    num_digits: int | None = None
    finish_on_key: str = ""
    hints: tuple[str, ...] = ()


@dataclass(frozen=True)
class Enqueue:
    queue: str
    skills: tuple[tuple[str, int], ...] = ()
    priority_bump: int = 0


@dataclass(frozen=True)
class Voicemail:
    queue: str
    max_length_s: int


@dataclass(frozen=True)
class Callback:
    queue: str
    skills: tuple[tuple[str, int], ...] = ()
    priority_bump: int = 0


@dataclass(frozen=True)
class Hangup:
    pass


@dataclass(frozen=True)
class RecordComplaint:
    """Record the caller's description of a complaint in ``category`` (the webhook registers it)."""

    category: str
    max_length_s: int
    transcribe: bool = False


Action = Enqueue | Voicemail | Callback | Hangup | RecordComplaint


@dataclass(frozen=True)
class Fact:
    """Something worth a line in the interaction's event log (``kind`` like 'ivr.menu')."""

    kind: str
    data: Mapping[str, Any]


@dataclass(frozen=True)
class Step:
    """The engine's answer: what to say, then either a gather (``gather``) or an ``action``."""

    state: IvrState
    prompts: tuple[Utterance, ...] = ()
    gather: GatherSpec | None = None
    action: Action | None = None
    facts: tuple[Fact, ...] = ()


@dataclass
class _Walk:
    """Accumulates one step's prompts and facts while walking."""

    config: IvrConfig
    ctx: CallContext
    language: str
    vars: dict[str, str]
    prompts: list[Utterance] = field(default_factory=list)
    facts: list[Fact] = field(default_factory=list)

    def say_both(self, prompt: Prompt) -> None:
        self.prompts.extend(Say(prompt.text(language), language) for language in LANGUAGES)

    def say(self, prompt: Prompt | None, **values: str) -> None:
        if prompt is not None:
            text = prompt.text(self.language)
            self.prompts.append(Say(text.format(**values) if values else text, self.language))

    def fact(self, fact_kind: str, /, **data: Any) -> None:
        self.facts.append(Fact(fact_kind, data))

    def step(self, node: str, *, attempts: int = 0, gather: GatherSpec | None = None,
             action: Action | None = None) -> Step:
        state = IvrState(node=node, language=self.language, attempts=attempts, vars=dict(self.vars))
        return Step(state=state, prompts=tuple(self.prompts), gather=gather, action=action, facts=tuple(self.facts))


def start(config: IvrConfig, ctx: CallContext, *, language: str | None = None) -> Step:
    """The first step of a new call, from ``config.entry``."""
    lang = language if language in LANGUAGES else config.default_language
    walk = _Walk(config, ctx, lang, {})
    return _run(walk, config.entry)


def advance(config: IvrConfig, state: IvrState, ctx: CallContext, user_input: CallInput) -> Step:
    """Apply the caller's input to the node ``state`` is waiting at and walk on.

    Raises IvrStateError when that node no longer exists or takes no input (the configuration
    changed under a live call), LookupUnavailable when a lookup node has no port."""
    node = config.nodes.get(state.node)
    if node is None:
        raise IvrStateError(f"the call waits at node {state.node!r}, which the configuration no longer has")
    walk = _Walk(config, ctx, state.language, dict(state.vars))
    if isinstance(node, MenuNode):
        return _menu_input(walk, state, node, user_input)
    if isinstance(node, GatherNode):
        return _gather_input(walk, state, node, user_input)
    if isinstance(node, LanguageNode):
        return _language_input(walk, state, node, user_input)
    if isinstance(node, LookupNode):
        return _lookup_input(walk, state, node, user_input)
    if isinstance(node, ComplaintNode):
        return _complaint_input(walk, state, node, user_input)
    raise IvrStateError(f"node {state.node!r} ({node.type}) does not take input")


def resume(config: IvrConfig, state: IvrState, ctx: CallContext, node_id: str, *,
           prompts: tuple[Utterance, ...] = (), facts: tuple[Fact, ...] = ()) -> Step:
    """Walk on from ``node_id`` in the call's language, after ``prompts`` (a complaint's read-back, or
    why the caller is being put through): how the webhooks continue a call after a recording."""
    walk = _Walk(config, ctx, state.language, dict(state.vars), list(prompts), list(facts))
    return _run(walk, node_id)


def _run(walk: _Walk, node_id: str) -> Step:
    """Walk from ``node_id`` until a node waits for input or ends the IVR."""
    for _ in range(len(walk.config.nodes) + 1):
        node = walk.config.nodes.get(node_id)
        if node is None:
            raise IvrStateError(f"unknown node {node_id!r}")
        walk.fact("ivr.node", node=node_id, type=node.type)
        if isinstance(node, SayNode):
            _say_node(walk, node)
            node_id = node.next
        elif isinstance(node, HoursNode):
            node_id = _hours_branch(walk, node_id, node)
        elif isinstance(node, CallerNode):
            node_id = _caller_branch(walk, node_id, node)
        elif isinstance(node, LanguageNode) and node.use_caller_language and walk.ctx.caller.language in LANGUAGES:
            walk.language = walk.ctx.caller.language
            walk.fact("ivr.language", node=node_id, language=walk.language, source="crm")
            node_id = node.next
        elif node.asks_for_input:
            _ask(walk, node)
            return walk.step(node_id, gather=_gather_spec(walk, node_id, node))
        else:
            return _terminal(walk, node_id, node)
    raise IvrLoopError(f"walked {len(walk.config.nodes) + 1} nodes from {node_id!r} without asking for input")


def _ask(walk: _Walk, node) -> None:
    if isinstance(node, LanguageNode):  # the caller has not chosen yet: ask in both languages
        walk.say_both(node.prompt)
    else:
        walk.say(node.prompt)


def _say_node(walk: _Walk, node: SayNode) -> None:
    walk.say(node.prompt)
    if node.play and node.play.get(walk.language):
        walk.prompts.append(Play(node.play[walk.language]))


def _hours_branch(walk: _Walk, node_id: str, node: HoursNode) -> str:
    calendar = walk.ctx.calendars.get(node.calendar)
    if calendar is None:
        raise IvrStateError(f"node {node_id!r} names unknown calendar {node.calendar!r}")
    opened = is_open(calendar, walk.ctx.now)
    walk.fact("ivr.hours", node=node_id, calendar=node.calendar, open=opened)
    return node.open if opened else node.closed


def caller_matches(condition: CallerCondition, caller: CallerFacts) -> bool:
    """True when every condition given holds for ``caller`` (an unknown caller has no tier)."""
    if condition.known is not None and condition.known != caller.known:
        return False
    if condition.tier is not None and caller.tier not in condition.tier:
        return False
    if condition.open_complaint is not None and condition.open_complaint != caller.open_complaint:
        return False
    return condition.language is None or condition.language == caller.language


def _caller_branch(walk: _Walk, node_id: str, node: CallerNode) -> str:
    for index, rule in enumerate(node.rules):
        if caller_matches(rule.when, walk.ctx.caller):
            walk.fact("ivr.caller", node=node_id, rule=index, goto=rule.goto)
            return rule.goto
    walk.fact("ivr.caller", node=node_id, rule=None, goto=node.otherwise)
    return node.otherwise


def _skills(node: EnqueueNode | CallbackNode) -> tuple[tuple[str, int], ...]:
    return tuple((req.skill, req.min_level) for req in node.skills)


def _terminal(walk: _Walk, node_id: str, node) -> Step:
    if isinstance(node, EnqueueNode):
        walk.say(node.prompt)
        action: Action = Enqueue(node.queue, _skills(node), node.priority_bump)
    elif isinstance(node, VoicemailNode):
        walk.say(node.prompt)
        action = Voicemail(node.queue, node.max_length_s)
    elif isinstance(node, CallbackNode):
        walk.say(node.prompt)
        action = Callback(node.queue, _skills(node), node.priority_bump)
    elif isinstance(node, HangupNode):
        walk.say(node.prompt)
        action = Hangup()
    else:  # pragma: no cover - every node type is handled above; a new type must be added here
        raise IvrStateError(f"node {node_id!r} has unhandled type {node.type!r}")
    walk.fact("ivr.action", node=node_id, action=type(action).__name__.lower())
    return walk.step(node_id, action=action)


def _gather_spec(walk: _Walk, node_id: str, node) -> GatherSpec:
    language = walk.language
    if isinstance(node, (MenuNode, ComplaintNode)):
        choices = node.options if isinstance(node, MenuNode) else node.categories
        hints = tuple(w for opt in choices.values() for w in opt.words.of(language)) if node.speech else ()
        return GatherSpec(node_id, ("dtmf", "speech") if node.speech else ("dtmf",), node.timeout_s, language,
                          num_digits=1, hints=hints)
    if isinstance(node, LanguageNode):
        return GatherSpec(node_id, ("dtmf",), node.timeout_s, language, num_digits=1)
    if isinstance(node, LookupNode):
        return GatherSpec(node_id, ("dtmf",), node.timeout_s, language, finish_on_key=node.finish_on_key)
    return GatherSpec(node_id, tuple(node.input), node.timeout_s, language, num_digits=node.num_digits,
                      finish_on_key=node.finish_on_key, hints=tuple(node.hints.of(language)))


def _retry(walk: _Walk, state: IvrState, node, reason: str, detail: str = "",
           message: Prompt | None = None) -> Step:
    """Re-prompt after silence or a wrong answer, or follow the fallback once retries are spent."""
    attempts = state.attempts + 1
    walk.fact("ivr.retry", node=state.node, reason=reason, attempt=attempts, input=detail[:MAX_INPUT_CHARS])
    sentence = message or _retry_message(walk.config, node, reason)
    if isinstance(node, LanguageNode):
        walk.say_both(sentence)
    else:
        walk.say(sentence)
    if attempts > node.retries:
        walk.fact("ivr.fallback", node=state.node, goto=node.fallback)
        return _run(walk, node.fallback)
    _ask(walk, node)
    return walk.step(state.node, attempts=attempts, gather=_gather_spec(walk, state.node, node))


def _retry_message(config: IvrConfig, node, reason: str) -> Prompt:
    if reason == "no_input":
        return node.no_input or config.messages.no_input
    return node.invalid or config.messages.invalid


def _menu_input(walk: _Walk, state: IvrState, node: MenuNode, user_input: CallInput) -> Step:
    if user_input.empty:
        return _retry(walk, state, node, "no_input")
    key, option, via = _choose(node.options, node.speech, walk.language, user_input)
    if option is None:
        return _retry(walk, state, node, "invalid", user_input.digits or user_input.speech)
    walk.fact("ivr.menu", node=state.node, key=key, via=via, goto=option.goto)
    return _run(walk, option.goto)


def _choose(choices: dict, speech: bool, language: str, user_input: CallInput):
    """(key, choice, via) for a menu option or complaint category picked by key, or by a spoken word
    when the node listens for speech; choice is None when nothing matched."""
    key = user_input.digits[:1] if user_input.digits else ""
    choice = choices.get(key) if key else None
    if choice is not None or not (speech and user_input.speech):
        return key, choice, "dtmf"
    heard = user_input.speech.casefold()
    for key, option in choices.items():
        if any(word.casefold() in heard for word in option.words.of(language) if word):
            return key, option, "speech"
    return "", None, "speech"


def _complaint_input(walk: _Walk, state: IvrState, node: ComplaintNode, user_input: CallInput) -> Step:
    """The caller chose a category: ask for the description and record it."""
    if user_input.empty:
        return _retry(walk, state, node, "no_input")
    key, choice, via = _choose(node.categories, node.speech, walk.language, user_input)
    if choice is None:
        return _retry(walk, state, node, "invalid", user_input.digits or user_input.speech)
    walk.vars["complaint_category"] = choice.category
    walk.fact("ivr.complaint_category", node=state.node, key=key, via=via, category=choice.category)
    walk.say(node.record_prompt)
    action = RecordComplaint(choice.category, node.max_length_s, node.transcribe and walk.language == "en")
    return walk.step(state.node, action=action)


def complaint_read_back(node: ComplaintNode, language: str, *, reference: str, resolve_on: date) -> Say:
    """The ``registered`` sentence: the reference spelt character by character (so 'CMP-100042' is
    heard as C M P, 1 0 0 0 4 2, not a hundred thousand...) and the final-response date."""
    text = node.registered.text(language).format(reference=spelled(reference),
                                                 resolve_by=spoken_date(resolve_on, language))
    return Say(text, language)


def spelled(reference: str) -> str:
    """Letters and digits one by one; separators become a short pause."""
    groups = [" ".join(group) for group in "".join(c if c.isalnum() else " " for c in reference).split()]
    return ", ".join(groups)


def _gather_input(walk: _Walk, state: IvrState, node: GatherNode, user_input: CallInput) -> Step:
    if user_input.empty:
        return _retry(walk, state, node, "no_input")
    digits = user_input.digits.rstrip("#*")
    if digits and "dtmf" in node.input:
        if not (digits.isdigit() and node.min_digits <= len(digits) <= node.max_digits):
            return _retry(walk, state, node, "invalid", digits)
        value, via = digits, "dtmf"
    elif user_input.speech.strip() and "speech" in node.input:
        value, via = user_input.speech.strip()[:MAX_INPUT_CHARS * 4], "speech"
    else:
        return _retry(walk, state, node, "invalid", user_input.digits or user_input.speech)
    walk.vars[node.save_as] = value
    walk.fact("ivr.gather", node=state.node, var=node.save_as, via=via)
    return _run(walk, node.next)


def _language_input(walk: _Walk, state: IvrState, node: LanguageNode, user_input: CallInput) -> Step:
    if user_input.empty:
        return _retry(walk, state, node, "no_input")
    chosen = node.choices.get(user_input.digits[:1])
    if chosen is None:
        return _retry(walk, state, node, "invalid", user_input.digits or user_input.speech)
    walk.language = chosen
    walk.fact("ivr.language", node=state.node, language=chosen, source="caller")
    return _run(walk, node.next)


def _lookup_input(walk: _Walk, state: IvrState, node: LookupNode, user_input: CallInput) -> Step:
    if user_input.empty:
        return _retry(walk, state, node, "no_input")
    reference = user_input.digits.rstrip("#*")
    if not (reference.isdigit() and node.min_digits <= len(reference) <= node.max_digits):
        return _retry(walk, state, node, "invalid", user_input.digits or user_input.speech)
    if walk.ctx.lookups is None:
        raise LookupUnavailable(f"node {state.node!r} needs a lookup port for {node.kind}")
    result = walk.ctx.lookups.lookup(node.kind, reference, walk.ctx.caller)
    walk.fact("ivr.lookup", node=state.node, lookup=node.kind, reference=reference, found=result is not None)
    if result is None:  # "not found" replaces the generic wrong-key sentence: the caller learns why
        return _retry(walk, state, node, "invalid", reference, message=node.not_found)
    walk.say(node.found, **read_back_fields(walk.config, node.kind, result, walk.language))
    return _run(walk, node.next)


def read_back_fields(config: IvrConfig, kind: str, result: LookupResult, language: str) -> dict[str, str]:
    """Every placeholder of ``kind`` as words in ``language``: statuses through ``status_words``,
    numbers spelled digit by digit, dates in the language's form, missing values as 'not yet known'."""
    from ivr.config import LOOKUP_FIELDS

    words: dict[str, str] = {}
    for name in LOOKUP_FIELDS[kind]:
        value = result.fields.get(name)
        if value is None or value == "":
            words[name] = config.messages.unknown_value.text(language)
        elif isinstance(value, date):
            words[name] = spoken_date(value, language)
        elif name == "status" or name.endswith("_status"):
            label = config.status_words.get(str(value))
            words[name] = label.text(language) if label else str(value).replace("_", " ")
        elif name in _SPELLED_FIELDS:
            words[name] = " ".join(str(value))
        else:
            words[name] = str(value)
    return words


_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")


def spoken_date(value: date, language: str) -> str:
    """'March 3, 2026' or '2026年3月3日'."""
    if language == "zh":
        return f"{value.year}年{value.month}月{value.day}日"
    return f"{_MONTHS[value.month - 1]} {value.day}, {value.year}"
