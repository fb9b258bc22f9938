"""Voice call flows: what each Twilio webhook does to the Interaction, and the TwiML it answers with.

Services take a session, the desk configuration and plain values (never a Flask request); they add
their changes to the session and leave the commit to the caller, which stores the webhook receipt in
the same transaction. Each raises a typed ``CallError`` for a request the desk cannot serve.

The IVR position of a call lives in ``interaction.attributes['ivr']`` (the engine's ``IvrState`` plus
``seq``, the number of the step the caller is answering), so a stale or replayed gather is recognised.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache, cached_property
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, exists, select
from sqlalchemy.orm import Session
from twilio.twiml.voice_response import VoiceResponse

from app.crm.phones import try_normalise_phone
from app.interactions.models import Interaction
from app.interactions.service import (create_interaction, record_fact, reserve_interaction_id, transition,
                                      transition_now, update_attributes)
from app.interactions.states import State
from ivr import engine, routing, twiml
from ivr.config import IvrConfig
from ivr.engine import CallerFacts, CallInput, Say, Step
from ivr.lookups import DatabaseLookups

log = logging.getLogger(__name__)
ACTOR = "ivr"
ENDED = ("completed", "busy", "failed", "no-answer", "canceled")


class CallError(Exception):
    """A webhook the desk cannot serve; ``status`` is the HTTP status to answer with."""

    status = 400


class UnknownCall(CallError):
    status = 404


class CallStateError(CallError):
    """The call is not where this webhook expects it (a stale step, a call already ended)."""

    status = 409


@dataclass(frozen=True)
class VoiceUrls:
    """Absolute webhook URLs on the public base (what Twilio is told to request next)."""

    base: str

    @cached_property
    def _prefix(self) -> str:
        return f"{self.base.rstrip('/')}/voice/"

    def _url(self, path: str, **query: int | None) -> str:
        # Every query value is a whole number (int() makes sure), so it needs no escaping: a step builds
        # several of these, and urlencode's quoting was a measurable share of a webhook.
        shown = "&".join(f"{key}={int(value)}" for key, value in query.items() if value is not None)
        return self._prefix + path + (f"?{shown}" if shown else "")

    def gather(self, seq: int) -> str:
        return self._url("gather", s=seq)

    def wait(self, turn: int, announced: int | None = None) -> str:
        """The wait loop's next turn; ``announced`` (epoch seconds of the last position announcement)
        rides in the signed URL, so a waiting turn needs no write to the interaction."""
        return self._url("wait", t=turn, a=announced)

    def wait_key(self, turn: int, announced: int | None = None) -> str:
        return self._url("wait-key", t=turn, a=announced)

    def voicemail_done(self) -> str:
        return self._url("voicemail")

    def recording_status(self, interaction_id: int) -> str:
        return self._url("recording", i=interaction_id)

    def connect(self, interaction_id: int, agent_id: int, bridge: int) -> str:
        return self._url("connect", i=interaction_id, a=agent_id, b=bridge)

    def callback_answer(self, interaction_id: int, agent_id: int) -> str:
        return self._url("callback-answer", i=interaction_id, a=agent_id)

    def callback_status(self, interaction_id: int) -> str:
        return self._url("callback-status", i=interaction_id)

    def hold(self, interaction_id: int, count: int) -> str:
        return self._url("hold", i=interaction_id, n=count)

    def dial_done(self, interaction_id: int) -> str:
        return self._url("dial-done", i=interaction_id)

    def complaint_recorded(self, seq: int) -> str:
        return self._url("complaint", s=seq)

    def complaint_empty(self, seq: int) -> str:
        return self._url("complaint-empty", s=seq)

    def complaint_transcript(self, interaction_id: int, seq: int) -> str:
        return self._url("complaint-transcript", i=interaction_id, s=seq)

    def step_urls(self, seq: int, interaction_id: int) -> twiml.StepUrls:
        return twiml.StepUrls(gather=self.gather(seq), wait=self.wait(1), voicemail_done=self.voicemail_done(),
                              recording_status=self.recording_status(interaction_id),
                              complaint_recorded=self.complaint_recorded(seq),
                              complaint_empty=self.complaint_empty(seq),
                              complaint_transcript=self.complaint_transcript(interaction_id, seq))


@dataclass(frozen=True)
class Desk:
    """What the flows need from the desk's configuration."""

    ivr: IvrConfig
    calendars: dict
    timezone: str
    default_region: str = "CN"

    @classmethod
    def from_config(cls, config) -> Desk:
        return cls(ivr=config.ivr, calendars=dict(config.calendars), timezone=config.desk.timezone,
                   default_region=config.crm.default_country)


# --- looking calls up ---------------------------------------------------------------------------------

# Built once: every webhook but the first looks its call up, and a prebuilt statement keeps its cache
# key (SQLAlchemy memoises it per statement object) instead of building and hashing a new one each time.
_CALL_BY_SID = select(Interaction).where(Interaction.channel == "voice",
                                         Interaction.external_ref == bindparam("call_sid"))


_WAITING_CALL_BY_SID = select(Interaction.id, Interaction.state, Interaction.agent_id, Interaction.language).where(
    Interaction.channel == "voice", Interaction.external_ref == bindparam("call_sid"))


def find_call(session: Session, call_sid: str) -> Interaction:
    """The voice Interaction of ``call_sid``. Raises UnknownCall."""
    interaction = session.scalar(_CALL_BY_SID, {"call_sid": call_sid})
    if interaction is None:
        raise UnknownCall(f"no call {call_sid}")
    return interaction


def get_call(session: Session, interaction_id: int) -> Interaction:
    interaction = session.get(Interaction, interaction_id)
    if interaction is None or interaction.channel != "voice":
        raise UnknownCall(f"no voice interaction {interaction_id}")
    return interaction


def _set_attrs(interaction: Interaction, **changes: Any) -> dict[str, Any]:
    attributes = dict(interaction.attributes or {})  # JSON columns change only on reassignment
    attributes.update(changes)
    interaction.attributes = attributes
    return attributes


@cache
def _caller_statement():
    """The customer's tier, language and whether a complaint of theirs is open, in one statement (built
    once, on first use: the CRM and complaints models load after this module)."""
    from app.complaints.models import Complaint
    from app.crm.bridges import CLOSED_STATES
    from app.crm.models import Customer

    open_complaint = exists().where(Complaint.customer_id == Customer.id, Complaint.state.not_in(CLOSED_STATES))
    return (select(Customer.id, Customer.is_prospect, Customer.tier, Customer.language,
                   open_complaint.label("open_complaint"))
            .where(Customer.id == bindparam("customer_id")))


def caller_facts(session: Session, interaction: Interaction) -> CallerFacts:
    """What IVR branches may test, from the CRM record the call was matched to (one statement, asked
    at every step: the caller's tier or complaints may change during the call)."""
    if interaction.customer_id is None:
        return CallerFacts()
    customer = session.execute(_caller_statement(), {"customer_id": interaction.customer_id}).first()
    if customer is None or customer.is_prospect:
        return CallerFacts(customer_id=interaction.customer_id)
    return CallerFacts(known=True, customer_id=customer.id, tier=customer.tier,
                       open_complaint=bool(customer.open_complaint),
                       language=customer.language if customer.language in ("en", "zh") else None)


def _context(session: Session, desk: Desk, interaction: Interaction, now: datetime) -> engine.CallContext:
    return engine.CallContext(caller=caller_facts(session, interaction), now=now, calendars=desk.calendars,
                              lookups=DatabaseLookups(session, desk.timezone))


# --- the IVR ------------------------------------------------------------------------------------------

def incoming_call(session: Session, desk: Desk, *, call_sid: str, from_: str, to: str, urls: VoiceUrls,
                  now: datetime) -> tuple[Interaction, VoiceResponse]:
    """A new call: identify the caller, open the Interaction (state ivr) and run the IVR's first step.
    A CallSid already known is refused by the database (one interaction per channel and external
    reference: IntegrityError at the flush), and the webhook layer answers a retry from its receipt."""
    from app.crm.service import MatchStatus, identify

    found = identify(session, phone=from_, default_region=desk.default_region, create_prospect=False)
    customer_id = found.customer_id if found.status == MatchStatus.MATCHED else None
    # A reserved id: the interaction is inserted once, in state ivr with its first step, at the webhook's
    # flush (which also meets a retried CallSid's unique key) -- not inserted here and updated there.
    interaction = create_interaction(session, channel="voice", actor=ACTOR, external_ref=call_sid,
                                     customer_id=customer_id, at=now,
                                     interaction_id=reserve_interaction_id(session), attributes={
                                         "from": from_, "to": to, "identification": str(found.status),
                                         "candidates": [c.customer_id for c in found.candidates][:10]})
    transition(session, interaction, State.IVR, actor=ACTOR, reason="call_answered", at=now)
    with session.no_autoflush:  # the reads below (caller, lookups, queue) never need the new row written
        step = engine.start(desk.ivr, _context(session, desk, interaction, now))
        if desk.ivr.recording.enabled and desk.ivr.recording.consent is not None:
            consent = Say(desk.ivr.recording.consent.text(step.state.language), step.state.language)
            step = Step(state=step.state, prompts=(consent, *step.prompts), gather=step.gather,
                        action=step.action, facts=step.facts)
        return interaction, _apply_step(session, desk, interaction, step, urls, seq=1, now=now)


def gather_input(session: Session, desk: Desk, *, call_sid: str, seq: int, digits: str, speech: str,
                 urls: VoiceUrls, now: datetime) -> tuple[Interaction, VoiceResponse]:
    """The caller answered step ``seq``. Raises UnknownCall, CallStateError (not in the IVR, or an
    answer to a step that is no longer current)."""
    interaction = find_call(session, call_sid)
    stored = dict((interaction.attributes or {}).get("ivr") or {})
    if interaction.state != State.IVR or not stored:
        raise CallStateError(f"call {call_sid} is not in the IVR (state {interaction.state})")
    if stored.get("seq") != seq:
        raise CallStateError(f"call {call_sid} answered step {seq}, but step {stored.get('seq')} is current")
    try:
        state = engine.IvrState.from_dict(stored)
        step = engine.advance(desk.ivr, state, _context(session, desk, interaction, now),
                              CallInput(digits=digits, speech=speech))
    except engine.IvrStateError as exc:  # the menu changed under a live call: start it again, kindly
        log.warning("call %s: %s; restarting the IVR", call_sid, exc)
        step = engine.start(desk.ivr, _context(session, desk, interaction, now), language=state_language(stored))
    return interaction, _apply_step(session, desk, interaction, step, urls, seq=seq + 1, now=now)


def state_language(stored: dict[str, Any]) -> str:
    return stored.get("language") if stored.get("language") in ("en", "zh") else "en"


def _apply_step(session: Session, desk: Desk, interaction: Interaction, step: Step, urls: VoiceUrls, *,
                seq: int, now: datetime) -> VoiceResponse:
    """Persist the step's state and facts, carry out its action, and render it.

    A step that only moves the caller through the menu (no action: most of them) is written at once
    by ``update_attributes``, outside the ORM's unit of work; one with an action goes through the
    ORM with the changes the action makes."""
    path = list((interaction.attributes or {}).get("ivr_path") or [])
    facts = []
    for fact in step.facts:
        if fact.kind == "ivr.node":  # the path is kept compactly on the interaction, not as event rows
            path.append(fact.data["node"])
        else:
            facts.append((fact.kind, dict(fact.data)))
    action = step.action
    changes = {"ivr": {**step.state.to_dict(), "seq": seq}, "ivr_path": path[-100:]}
    if action is None:
        update_attributes(session, interaction, changes, language=step.state.language, facts=facts, actor=ACTOR,
                          at=now)
        return twiml.memoised_step(step, desk.ivr, urls.step_urls(seq, interaction.id))
    for kind, data in facts:
        record_fact(session, interaction, kind, actor=ACTOR, data=data, at=now)
    _set_attrs(interaction, **changes)
    interaction.language = step.state.language
    if isinstance(action, engine.Enqueue):
        routing.enqueue_call(session, interaction, action.queue, skills=list(action.skills),
                             priority_bump=action.priority_bump, actor=ACTOR, now=now)
        _set_attrs(interaction, queued_at=now.isoformat())
    elif isinstance(action, engine.Callback):
        return _ivr_callback(session, desk, interaction, action, step, urls, now)
    elif isinstance(action, engine.Voicemail):
        interaction.queue = action.queue
        transition(session, interaction, State.VOICEMAIL, actor=ACTOR, reason="voicemail_requested", at=now)
        _set_attrs(interaction, voicemail={"queue": action.queue})
    elif isinstance(action, engine.Hangup):
        transition(session, interaction, State.CLOSED, actor=ACTOR, reason="ivr_completed", at=now)
    elif isinstance(action, engine.RecordComplaint):
        return _await_complaint_recording(session, desk, interaction, step, urls, seq=seq, now=now)
    return twiml.memoised_step(step, desk.ivr, urls.step_urls(seq, interaction.id))


def complaint_customer(session: Session, desk: Desk, interaction: Interaction, language: str) -> int | None:
    """Who a complaint made in the IVR is from: the customer the call was matched to, else the prospect
    the caller's number makes (linked to the call). None for a withheld number or one several
    customers share: the CRM never guesses, so an agent takes that complaint."""
    from app.crm.service import MatchStatus, identify

    if interaction.customer_id is not None:
        return interaction.customer_id
    found = identify(session, phone=(interaction.attributes or {}).get("from"), default_region=desk.default_region,
                     create_prospect=True, language=language)
    if found.status not in (MatchStatus.MATCHED, MatchStatus.NEW_PROSPECT) or found.customer_id is None:
        return None
    interaction.customer_id = found.customer_id
    return found.customer_id


def _await_complaint_recording(session: Session, desk: Desk, interaction: Interaction, step: Step,
                               urls: VoiceUrls, *, seq: int, now: datetime) -> VoiceResponse:
    """The caller chose a complaint category: record their description, or -- when the desk cannot tell
    who they are -- say so and walk on to the node's fallback (an agent takes it)."""
    node = desk.ivr.nodes[step.state.node]
    action = step.action
    customer_id = complaint_customer(session, desk, interaction, step.state.language)
    if customer_id is None:
        record_fact(session, interaction, "ivr.complaint_unidentified", actor=ACTOR, at=now,
                    data={"node": step.state.node, "category": action.category})
        message = node.unidentified or desk.ivr.messages.complaint_unidentified
        said = Say(message.text(step.state.language), step.state.language)
        fallback = engine.resume(desk.ivr, step.state, _context(session, desk, interaction, now), node.fallback,
                                 prompts=(said,))
        return _apply_step(session, desk, interaction, fallback, urls, seq=seq, now=now)
    _set_attrs(interaction, ivr_complaint={"seq": seq, "node": step.state.node, "category": action.category,
                                           "customer_id": customer_id})
    return twiml.memoised_step(step, desk.ivr, urls.step_urls(seq, interaction.id))


def _callback_number(desk: Desk, interaction: Interaction) -> str | None:
    return try_normalise_phone((interaction.attributes or {}).get("from"), desk.default_region)


def _ivr_callback(session: Session, desk: Desk, interaction: Interaction, action: engine.Callback, step: Step,
                  urls: VoiceUrls, now: datetime) -> VoiceResponse:
    number = _callback_number(desk, interaction)
    language = step.state.language
    if number is None:  # a withheld number cannot be rung back: keep the caller on the line instead
        routing.enqueue_call(session, interaction, action.queue, skills=list(action.skills),
                             priority_bump=action.priority_bump, actor=ACTOR, now=now)
        record_fact(session, interaction, "ivr.callback_impossible", actor=ACTOR, at=now,
                    data={"queue": action.queue})
        _set_attrs(interaction, queued_at=now.isoformat())
        response = twiml.render_message(desk.ivr, language, desk.ivr.messages.callback_unavailable, hangup=False)
        response.redirect(urls.wait(1), method="POST")
        return response
    routing.enqueue_call(session, interaction, action.queue, skills=list(action.skills),
                         priority_bump=action.priority_bump, actor=ACTOR, now=now)
    routing.keep_place_for_callback(session, interaction, actor=ACTOR, number=number, now=now)
    return twiml.render_step(step, desk.ivr, urls.step_urls(0, interaction.id))


# --- the queue ----------------------------------------------------------------------------------------

def _waiting_s(interaction: Interaction, now: datetime) -> int | None:
    origin = interaction.routing_age_origin
    return max(0, int((now - origin).total_seconds())) if origin else None


def bridge_number(interaction: Interaction, agent_id: int) -> tuple[int, bool]:
    """The bridge number (``b`` of the connect URL) for this connection of the call to ``agent_id``,
    and whether this call allocated it. The accept job's REST redirect and the caller's own wait loop
    may both reach for the bridge: whichever comes first allocates it, the other reuses it, so the
    agent is dialled once per connection. Does not commit."""
    attributes = dict(interaction.attributes or {})
    key = [agent_id, round(interaction.state_changed_at.timestamp(), 3)]
    if attributes.get("bridge_for") == key:
        return int(attributes.get("bridges", 1)), False
    attributes["bridges"] = int(attributes.get("bridges", 0)) + 1
    attributes["bridge_for"] = key
    interaction.attributes = attributes
    return attributes["bridges"], True


def _pull_bridge(session: Session, interaction: Interaction, urls: VoiceUrls, now: datetime) -> VoiceResponse:
    """The offer was accepted while the caller's wait turn was in flight (or the REST redirect failed):
    the wait loop itself takes the caller to the agent."""
    number, new = bridge_number(interaction, interaction.agent_id)
    if new:
        record_fact(session, interaction, "voice.bridge_pulled", actor=ACTOR, at=now,
                    data={"agent_id": interaction.agent_id})
    response = VoiceResponse()
    response.redirect(urls.connect(interaction.id, interaction.agent_id, number), method="POST")
    return response


def announce_due(desk: Desk, announced: int | None, now: datetime) -> bool:
    """Is this turn of the wait loop due to announce the position (``announce_every_s`` since the last
    announcement, epoch second ``announced``, or none yet)?"""
    return announced is None or now.timestamp() - announced >= desk.ivr.waiting.announce_every_s


def quiet_turn(connection: Connection, desk: Desk, *, call_sid: str, turn: int, urls: VoiceUrls, now: datetime,
               announced: int | None) -> VoiceResponse | None:
    """A turn of the wait loop between announcements, for a call still waiting: its TwiML, from the four
    columns read on ``connection`` -- a read outside any transaction (the busiest webhook of a busy
    desk changes nothing, so it needs no BEGIN and COMMIT). None when the turn is due to announce or
    the call is not (or no longer) waiting: ``wait_turn`` then answers it."""
    if announce_due(desk, announced, now):
        return None
    call = connection.execute(_WAITING_CALL_BY_SID, {"call_sid": call_sid}).first()
    if call is None or call.state not in (State.QUEUED, State.OFFERED):
        return None
    return _waiting_turn(desk, call.language, turn=turn, urls=urls, announced=announced)


def wait_turn(session: Session, desk: Desk, *, call_sid: str, turn: int, urls: VoiceUrls, now: datetime,
              announced: int | None = None) -> tuple[Interaction | None, VoiceResponse]:
    """One turn of the wait loop: position and estimated wait every ``announce_every_s`` (counted
    from ``announced``, the epoch second of the last announcement carried by the turn's URL); once an
    agent has accepted, the way to them. A waiting turn changes nothing in the database.

    The most frequent webhook of a busy desk: a quiet turn of a call still waiting reads only the four
    columns it needs (no ORM object; the interaction returned is then None). An announcing turn (the
    queue's position reads the interaction) or a call no longer waiting loads the call."""
    due = announce_due(desk, announced, now)
    if not due:
        call = session.execute(_WAITING_CALL_BY_SID, {"call_sid": call_sid}).first()
        if call is None:
            raise UnknownCall(f"no call {call_sid}")
        if call.state in (State.QUEUED, State.OFFERED):
            return None, _waiting_turn(desk, call.language, turn=turn, urls=urls, announced=announced)
    interaction = find_call(session, call_sid)
    if interaction.state == State.CONNECTED and interaction.agent_id is not None:
        return interaction, _pull_bridge(session, interaction, urls, now)
    if interaction.state not in (State.QUEUED, State.OFFERED):
        raise CallStateError(f"call {call_sid} is not waiting (state {interaction.state})")
    if not due:  # back in the queue since the first read
        return interaction, _waiting_turn(desk, interaction.language, turn=turn, urls=urls, announced=announced)
    position, ewt_s = routing.position_and_wait(session, interaction.id)
    return interaction, _waiting_turn(desk, interaction.language, turn=turn, urls=urls,
                                      announced=int(now.timestamp()), announce=True, position=position, ewt_s=ewt_s)


def _waiting_turn(desk: Desk, language: str, *, turn: int, urls: VoiceUrls, announced: int | None,
                  announce: bool = False, position: int | None = None, ewt_s: int | None = None) -> VoiceResponse:
    return twiml.memoised_wait(desk.ivr, language if language in ("en", "zh") else "en",
                             key_action=urls.wait_key(turn, announced), wait_url=urls.wait(turn + 1, announced),
                             position=position, ewt_s=ewt_s, announce=announce)


def wait_key(session: Session, desk: Desk, *, call_sid: str, turn: int, digits: str, urls: VoiceUrls,
             now: datetime, announced: int | None = None) -> tuple[Interaction, VoiceResponse]:
    """A key pressed while waiting: the callback key keeps the caller's place and hangs up; the
    voicemail key records a message; any other key just goes on waiting."""
    interaction = find_call(session, call_sid)
    language = interaction.language if interaction.language in ("en", "zh") else "en"
    waiting = desk.ivr.waiting
    if interaction.state == State.CONNECTED and interaction.agent_id is not None:
        return interaction, _pull_bridge(session, interaction, urls, now)
    if interaction.state not in (State.QUEUED, State.OFFERED):
        raise CallStateError(f"call {call_sid} is not waiting (state {interaction.state})")
    key = digits[:1]
    if key == waiting.callback_key and interaction.state == State.QUEUED:
        number = _callback_number(desk, interaction)
        if number is None:
            response = twiml.render_message(desk.ivr, language, desk.ivr.messages.callback_unavailable, hangup=False)
            response.redirect(urls.wait(turn + 1, announced), method="POST")
            return interaction, response
        routing.keep_place_for_callback(session, interaction, actor=ACTOR, number=number, now=now)
        return interaction, twiml.render_message(desk.ivr, language, waiting.callback_confirm)
    if key == waiting.voicemail_key and interaction.state == State.QUEUED:
        transition(session, interaction, State.VOICEMAIL, actor=ACTOR, reason="voicemail_from_queue", at=now)
        _set_attrs(interaction, voicemail={"queue": interaction.queue})
        return interaction, twiml.render_voicemail(desk.ivr, language, urls.step_urls(0, interaction.id))
    response = VoiceResponse()
    response.redirect(urls.wait(turn + 1, announced), method="POST")
    return interaction, response


def voicemail_done(session: Session, desk: Desk, *, call_sid: str, recording_url: str | None,
                   duration_s: int | None, now: datetime) -> tuple[Interaction, VoiceResponse]:
    """The Record verb finished: keep the message and queue it for an agent, or close an empty one."""
    interaction = find_call(session, call_sid)
    language = interaction.language if interaction.language in ("en", "zh") else "en"
    if interaction.state != State.VOICEMAIL:
        raise CallStateError(f"call {call_sid} is not leaving a voicemail (state {interaction.state})")
    store_voicemail(session, interaction, recording_url=recording_url, duration_s=duration_s, now=now)
    return interaction, twiml.render_message(desk.ivr, language, desk.ivr.messages.voicemail_saved)


def store_voicemail(session: Session, interaction: Interaction, *, recording_url: str | None,
                    duration_s: int | None, now: datetime) -> None:
    """A call in ``voicemail`` left a message: queue it for an agent (in the queue the menu named), or
    close the interaction when nothing was recorded. Does not commit."""
    if recording_url and (duration_s or 0) > 0:
        interaction.recording_url = recording_url
        interaction.recording_duration_s = duration_s
        queue = ((interaction.attributes or {}).get("voicemail") or {}).get("queue") or interaction.queue
        routing.enqueue_call(session, interaction, queue, skills=[], priority_bump=0, actor=ACTOR, now=now)
    else:
        transition(session, interaction, State.CLOSED, actor=ACTOR, reason="voicemail_empty", at=now)


# --- the end of a call, recordings ----------------------------------------------------------------------

def call_status(session: Session, *, call_sid: str, status: str, duration_s: int | None,
                now: datetime) -> Interaction:
    """Twilio's status callback for the caller's leg. A caller who hangs up in the IVR or while waiting
    is recorded as abandoned (with the wait); mid-conversation, the agent moves to wrap-up. The end of
    the call is noted in the attributes; a move that touches nothing else is written at once
    (``transition_now``) with that note."""
    interaction = find_call(session, call_sid)
    if status not in ENDED:
        return interaction
    ended = {"call_ended_at": now.isoformat(), "call_status": status, "call_duration_s": duration_s}
    state = interaction.state
    if state == State.IVR and (interaction.attributes or {}).get("ivr_complaint"):
        # hung up while (or just after) describing a complaint: Twilio still posts the recording
        transition_now(session, interaction, State.CLOSED, actor=ACTOR, reason="ivr_complaint", at=now,
                       attributes=ended)
    elif state == State.IVR:
        routing.abandon(session, interaction, actor=ACTOR, wait_s=None, where="ivr", now=now, attributes=ended)
    elif state in (State.QUEUED, State.OFFERED):
        routing.abandon(session, interaction, actor=ACTOR, wait_s=_waiting_s(interaction, now), where="queue",
                        now=now, attributes=ended)
    elif state == State.CONNECTED:
        _set_attrs(interaction, **ended)
        transition(session, interaction, State.WRAP_UP, actor=ACTOR, reason="caller_hung_up", at=now,
                   data={"agent_id": interaction.agent_id})
        routing.release_agent(session, interaction, now=now)
    elif state == State.VOICEMAIL and not interaction.recording_url:
        transition_now(session, interaction, State.CLOSED, actor=ACTOR, reason="voicemail_empty", at=now,
                       attributes=ended)
    else:
        _set_attrs(interaction, **ended)
    return interaction


def recording_ready(session: Session, *, interaction_id: int, recording_url: str, duration_s: int | None,
                    status: str) -> Interaction:
    """A recording (conversation or voicemail) is available: store where and how long."""
    interaction = get_call(session, interaction_id)
    if status != "completed":
        return interaction
    interaction.recording_url = recording_url
    interaction.recording_duration_s = duration_s
    record_fact(session, interaction, "voice.recording", actor="twilio",
                data={"url": recording_url, "duration_s": duration_s})
    return interaction
