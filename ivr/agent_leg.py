"""The agent's side of a call: bridging on accept, callbacks, hold, transfer and hang-up.

When the router's offer is accepted (realtime event ``offer.accepted``), the desk moves the waiting
caller's live call to the connect webhook (Twilio REST redirect), or -- for a callback that kept its
place -- places the outbound call and bridges it when the customer answers. The agent takes the call
in the browser softphone (``<Client>``) or on their own phone (``<Number>``), as each agent chooses.
"""
from __future__ import annotations

import logging
from datetime import datetime

from flask import Flask
from sqlalchemy.orm import Session
from twilio.twiml.voice_response import VoiceResponse

from app.auth.models import StaffUser
from app.channels.telephony import Telephony
from app.interactions.models import Interaction
from app.interactions.service import record_fact, transition
from app.interactions.states import State
from ivr import routing, twiml
from ivr.calls import ACTOR, CallStateError, Desk, VoiceUrls, bridge_number, get_call
from ivr.models import AgentVoiceDevice

log = logging.getLogger(__name__)
DEVICES = ("browser", "phone")
UNANSWERED = ("no-answer", "busy", "failed", "canceled")


def client_identity(agent_id: int) -> str:
    """The softphone identity of an agent (the access token and ``<Client>`` use the same)."""
    return f"agent-{agent_id}"


def agent_device(session: Session, agent: StaffUser) -> str:
    row = session.get(AgentVoiceDevice, agent.id)
    device = row.device if row else "browser"
    return "phone" if device == "phone" and agent.phone_e164 else "browser"


def set_agent_device(session: Session, agent: StaffUser, device: str) -> None:
    """Choose where ``agent`` takes calls. Raises ValueError for an unknown device, or 'phone'
    without a phone number on the agent's record. Does not commit."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}")
    if device == "phone" and not agent.phone_e164:
        raise ValueError("the agent has no phone number on record")
    row = session.get(AgentVoiceDevice, agent.id)
    if row is None:
        session.add(AgentVoiceDevice(staff_user_id=agent.id, device=device))
    else:
        row.device = device


def _agent(session: Session, interaction: Interaction, agent_id: int) -> StaffUser:
    """The agent the call is offered to or connected with; CallStateError for anyone else."""
    agent = session.get(StaffUser, agent_id) if interaction.agent_id == agent_id else None
    if agent is None:
        raise CallStateError(f"interaction {interaction.id} belongs to agent {interaction.agent_id}, not {agent_id}")
    return agent


def _dial_agent(session: Session, desk: Desk, interaction: Interaction, agent: StaffUser, urls: VoiceUrls,
                announce=None) -> VoiceResponse:
    language = interaction.language if interaction.language in ("en", "zh") else "en"
    target = ({"number": agent.phone_e164} if agent_device(session, agent) == "phone"
              else {"client_identity": client_identity(agent.id)})
    return twiml.render_connect(desk.ivr, language, **target, caller_id=(interaction.attributes or {}).get("to"),
                                action=urls.dial_done(interaction.id), record=desk.ivr.recording.enabled,
                                recording_status=urls.recording_status(interaction.id), announce=announce,
                                interaction_id=interaction.id)


def connect_agent(session: Session, desk: Desk, *, interaction_id: int, agent_id: int, call_sid: str,
                  urls: VoiceUrls, now: datetime) -> VoiceResponse:
    """The waiting caller's call, redirected here on accept: bridge it to the agent."""
    interaction = get_call(session, interaction_id)
    if interaction.external_ref != call_sid:
        raise CallStateError(f"call {call_sid} is not the call of interaction {interaction_id}")
    if interaction.state not in (State.OFFERED, State.CONNECTED):
        raise CallStateError(f"interaction {interaction_id} is {interaction.state}, not being connected")
    agent = _agent(session, interaction, agent_id)
    record_fact(session, interaction, "voice.bridge", actor=ACTOR, at=now,
                data={"agent_id": agent.id, "device": agent_device(session, agent)})
    return _dial_agent(session, desk, interaction, agent, urls)


def callback_answered(session: Session, desk: Desk, *, interaction_id: int, agent_id: int, call_sid: str,
                      urls: VoiceUrls, now: datetime) -> VoiceResponse:
    """The customer picked up the desk's callback: introduce it and bridge to the agent."""
    interaction = get_call(session, interaction_id)
    if interaction.state not in (State.OFFERED, State.CONNECTED):
        raise CallStateError(f"interaction {interaction_id} is {interaction.state}, not calling back")
    agent = _agent(session, interaction, agent_id)
    attributes = dict(interaction.attributes or {})
    attributes["callback_call_sid"] = call_sid
    interaction.attributes = attributes
    record_fact(session, interaction, "voice.callback_answered", actor=ACTOR, at=now, data={"call_sid": call_sid})
    return _dial_agent(session, desk, interaction, agent, urls, announce=desk.ivr.messages.callback_intro)


def dial_done(session: Session, desk: Desk, *, interaction_id: int, dial_status: str, urls: VoiceUrls,
              now: datetime) -> VoiceResponse:
    """The agent's leg ended. Unanswered: the caller goes back to the queue (same place). Otherwise
    the conversation is over: the interaction moves to wrap-up and the caller hears goodbye."""
    interaction = get_call(session, interaction_id)
    language = interaction.language if interaction.language in ("en", "zh") else "en"
    response = VoiceResponse()
    if interaction.state == State.CONNECTED and dial_status in UNANSWERED:
        record_fact(session, interaction, "voice.agent_unanswered", actor=ACTOR, at=now,
                    data={"agent_id": interaction.agent_id, "status": dial_status})
        if (interaction.attributes or {}).get("callback_call_sid"):  # nobody to hold on a callback: end it
            _wrap_up(session, interaction, "agent_unanswered", now, status=dial_status)
            return twiml.render_message(desk.ivr, language, desk.ivr.messages.agent_left)
        routing.transfer_to_queue(session, interaction, interaction.queue, actor=ACTOR, note="agent_unanswered",
                                  now=now)
        response.redirect(urls.wait(1), method="POST")
        return response
    if interaction.state == State.CONNECTED:
        _wrap_up(session, interaction, "call_ended", now, dial_status=dial_status)
    return twiml.render_message(desk.ivr, language, desk.ivr.messages.agent_left)


def callback_status(session: Session, *, interaction_id: int, status: str, now: datetime) -> Interaction:
    """Status of the desk's outbound callback leg: unanswered or ended moves the agent to wrap-up."""
    interaction = get_call(session, interaction_id)
    if status in UNANSWERED:
        record_fact(session, interaction, "voice.callback_unanswered", actor=ACTOR, at=now, data={"status": status})
    if (status in UNANSWERED or status == "completed") and interaction.state == State.CONNECTED:
        _wrap_up(session, interaction, "callback_completed" if status == "completed" else "callback_unanswered",
                 now, status=status)
    return interaction


def _wrap_up(session: Session, interaction: Interaction, reason: str, now: datetime, **data: str) -> None:
    """The conversation is over on the phone side: connected -> wrap_up, and routing starts the
    agent's wrap-up timer (their capacity is already back: load counts connected contacts only)."""
    transition(session, interaction, State.WRAP_UP, actor=ACTOR, reason=reason, at=now,
               data={"agent_id": interaction.agent_id, **data})
    routing.release_agent(session, interaction, now=now)


def bridge_accepted(session: Session, desk: Desk, telephony: Telephony, urls: VoiceUrls, *,
                    interaction_id: int, agent_id: int, now: datetime) -> str:
    """Act on an accepted offer for a voice contact. Returns what it did: 'redirected' (live caller),
    'called_back' (outbound call placed), or 'nothing' (a voicemail, a call already gone)."""
    interaction = session.get(Interaction, interaction_id)
    if interaction is None or interaction.channel != "voice":
        return "nothing"
    attributes = interaction.attributes or {}
    if attributes.get("voicemail") or interaction.state not in (State.OFFERED, State.CONNECTED):
        return "nothing"
    number = attributes.get("callback_number")
    if number and (attributes.get("call_ended_at") or _was_callback(session, interaction)):
        sid = telephony.place_call(to=number, from_=attributes.get("to") or "", url=urls.callback_answer(
            interaction_id, agent_id), status_callback=urls.callback_status(interaction_id))
        record_fact(session, interaction, "voice.callback_placed", actor=ACTOR, at=now,
                    data={"call_sid": sid, "to": number, "agent_id": agent_id})
        return "called_back"
    if attributes.get("call_ended_at"):
        return "nothing"
    number, new = bridge_number(interaction, agent_id)
    if not new:  # the caller's wait loop got there first
        return "nothing"
    telephony.redirect_call(interaction.external_ref, urls.connect(interaction_id, agent_id, number))
    record_fact(session, interaction, "voice.redirected", actor=ACTOR, at=now, data={"agent_id": agent_id})
    return "redirected"


def _was_callback(session: Session, interaction: Interaction) -> bool:
    """True when the contact was waiting as callback_pending when it was offered."""
    from sqlalchemy import select

    from app.interactions.models import InteractionEvent

    last_waiting = session.scalar(select(InteractionEvent.from_state).where(
        InteractionEvent.interaction_id == interaction.id, InteractionEvent.to_state == State.OFFERED,
        InteractionEvent.kind == "transition").order_by(InteractionEvent.id.desc()).limit(1))
    return last_waiting == State.CALLBACK_PENDING


# --- console controls -------------------------------------------------------------------------------------

def _count(interaction: Interaction, key: str) -> int:
    """Bump and return a per-call counter; it makes each bridge/hold a distinct webhook event."""
    attributes = dict(interaction.attributes or {})
    attributes[key] = int(attributes.get(key, 0)) + 1
    interaction.attributes = attributes
    return attributes[key]


def _live_call_sid(interaction: Interaction) -> str:
    attributes = interaction.attributes or {}
    if interaction.state != State.CONNECTED:
        raise CallStateError(f"interaction {interaction.id} is {interaction.state}, not in a call")
    return attributes.get("callback_call_sid") or interaction.external_ref


def hold(session: Session, telephony: Telephony, urls: VoiceUrls, interaction: Interaction, *, on: bool,
         actor: str, now: datetime) -> None:
    """Put the customer on hold music (the agent's leg drops) or bring them back to the agent. Recorded
    as the interaction facts ``hold`` / ``unhold``, from which the reports count hold time."""
    sid = _live_call_sid(interaction)
    target = (urls.hold(interaction.id, _count(interaction, "holds")) if on
              else urls.connect(interaction.id, interaction.agent_id, _count(interaction, "bridges")))
    telephony.redirect_call(sid, target)
    record_fact(session, interaction, "hold" if on else "unhold", actor=actor, at=now,
                data={"agent_id": interaction.agent_id})


def hangup(session: Session, telephony: Telephony, interaction: Interaction, *, actor: str, now: datetime) -> None:
    """End the customer's call from the console; the status callback then moves it to wrap-up."""
    telephony.hangup_call(_live_call_sid(interaction))
    record_fact(session, interaction, "voice.hangup", actor=actor, at=now)


def transfer_to_queue(session: Session, telephony: Telephony, urls: VoiceUrls, interaction: Interaction,
                      queue: str, *, actor: str, now: datetime, note: str = "") -> None:
    """Send the caller back to waiting, in ``queue``, keeping their original place in line (routing's
    ``transfer_to_queue``), then move the live call to the wait loop. Raises CallStateError when the
    call is not connected, ``queues.service.UnknownQueue``, TelephonyError. No commit."""
    sid = _live_call_sid(interaction)
    routing.transfer_to_queue(session, interaction, queue, actor=actor, note=note, now=now)
    telephony.redirect_call(sid, urls.wait(1))


def render_hold(desk: Desk, interaction: Interaction) -> VoiceResponse:
    language = interaction.language if interaction.language in ("en", "zh") else "en"
    response = twiml.render_message(desk.ivr, language, desk.ivr.messages.on_hold, hangup=False)
    if desk.ivr.waiting.hold_music_url:
        response.play(desk.ivr.waiting.hold_music_url, loop=0)
    else:
        response.pause(length=600)
    return response


def on_realtime_event(name: str, payload: dict) -> None:
    """Realtime listener: an accepted voice offer starts the bridging job (after the accept commits)."""
    from flask import has_app_context

    if name != "offer.accepted" or not has_app_context():
        return
    interaction_id, agent_id = payload.get("interaction_id"), payload.get("agent_id")
    if not isinstance(interaction_id, int) or not isinstance(agent_id, int):
        return
    if payload.get("channel") not in (None, "voice"):
        return
    from app.jobs import enqueue

    enqueue(run_bridge, interaction_id, agent_id)


def install(app: Flask) -> None:
    """Bridge calls when offers are accepted (one module-level listener serves every app)."""
    from app import realtime

    realtime.subscribe(on_realtime_event)


def run_bridge(interaction_id: int, agent_id: int) -> str:
    """Job: open a session and bridge (commits the facts it records)."""
    from flask import current_app

    from app.db import utcnow
    from app.extensions import db

    desk = Desk.from_config(current_app.extensions["desk.config"])
    urls = VoiceUrls(current_app.extensions["desk.settings"].public_base_url)
    telephony = current_app.extensions["desk.telephony"]
    try:
        outcome = bridge_accepted(db.session, desk, telephony, urls, interaction_id=interaction_id,
                                  agent_id=agent_id, now=utcnow())
        db.session.commit()
    except Exception:
        db.session.rollback()
        log.exception("bridging interaction %s to agent %s failed", interaction_id, agent_id)
        raise
    return outcome
