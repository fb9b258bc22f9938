"""A complaint made in the IVR: what Twilio's callbacks after ``<Record>`` do.

The caller picked a category at a ``complaint`` node and described the complaint after the tone
(``calls._await_complaint_recording`` left ``interaction.attributes['ivr_complaint']`` waiting for the
recording of step ``seq``). Here the recording becomes a Complaint through the complaints intake service
(graded, deadlines set, acknowledged), the caller hears the reference and the final-response date in
their language, and the call walks on to the node's ``next``. Each function adds to the session and
leaves the commit to the webhook layer, which stores its answer in the same transaction (so Twilio's
retries replay it and one recording is one complaint).
"""
from __future__ import annotations

import logging
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session
from twilio.twiml.voice_response import VoiceResponse

from app.complaints import service as complaints
from app.complaints.grading import suggest
from app.complaints.models import Complaint
from app.crm.models import Customer
from app.interactions.models import Interaction
from app.interactions.service import record_fact
from app.interactions.states import State
from ivr import engine
from ivr.calls import (
    ACTOR,
    CallError,
    CallStateError,
    Desk,
    VoiceUrls,
    _apply_step,
    _context,
    _set_attrs,
    find_call,
    get_call,
)
from ivr.config import ComplaintNode
from ivr.engine import Say

log = logging.getLogger(__name__)
MAX_TRANSCRIPT_CHARS = 4000


class ComplaintRefused(CallError):
    """The complaints service refused the intake (a category or customer gone since the call began)."""

    status = 422


def _pending(interaction: Interaction, seq: int) -> dict:
    """The complaint recording step ``seq`` waits for. Raises CallStateError for any other step."""
    pending = dict((interaction.attributes or {}).get("ivr_complaint") or {})
    if pending.get("seq") != seq:
        raise CallStateError(f"call {interaction.external_ref} is not waiting for complaint recording {seq}")
    return pending


def _live(interaction: Interaction) -> bool:
    """Is the caller still in the IVR (Twilio also posts the recording of a caller who hung up)?"""
    return interaction.state == State.IVR


def _walk_on(session: Session, desk: Desk, interaction: Interaction, node_id: str, said: tuple[Say, ...], *,
             seq: int, urls: VoiceUrls, now: datetime) -> VoiceResponse:
    """Say ``said`` and continue the IVR at ``node_id``; a caller who has hung up hears nothing."""
    if not _live(interaction):
        response = VoiceResponse()
        response.hangup()
        return response
    state = engine.IvrState.from_dict(dict((interaction.attributes or {}).get("ivr") or {}))
    step = engine.resume(desk.ivr, state, _context(session, desk, interaction, now), node_id, prompts=said)
    return _apply_step(session, desk, interaction, step, urls, seq=seq + 1, now=now)


def _node(desk: Desk, pending: dict) -> ComplaintNode:
    node = desk.ivr.nodes.get(pending.get("node", ""))
    if not isinstance(node, ComplaintNode):
        raise CallStateError(f"complaint node {pending.get('node')!r} is no longer configured")
    return node


def _description(recording_url: str, transcription: str) -> str:
    text = f"voice complaint, recording {recording_url}"
    transcription = transcription.strip()[:MAX_TRANSCRIPT_CHARS]
    return f"{text}\ntranscription: {transcription}" if transcription else text


def complaint_recorded(session: Session, desk: Desk, config, *, call_sid: str, seq: int, recording_sid: str,
                       recording_url: str, duration_s: int | None, transcription: str, urls: VoiceUrls,
                       now: datetime) -> tuple[Interaction, VoiceResponse, Complaint]:
    """Register the complaint the caller recorded at step ``seq`` (channel ``ivr``, the call linked),
    read back its reference and final-response date, and walk on to the node's ``next``.

    Raises UnknownCall, CallStateError (no complaint recording pending at ``seq``), ComplaintRefused."""
    interaction = find_call(session, call_sid)
    pending = _pending(interaction, seq)
    node = _node(desk, pending)
    language = interaction.language if interaction.language in ("en", "zh") else "en"
    try:
        complaint = complaints.raise_complaint(
            session, config, channel="ivr", customer_id=pending.get("customer_id"),
            category=pending.get("category"), description=_description(recording_url, transcription),
            interaction_id=interaction.id, language=language, actor=ACTOR, at=now)
    except complaints.IntakeInvalid as exc:
        raise ComplaintRefused(f"complaint refused: {exc}") from exc
    complaints.record_event(session, complaint, "intake_source", actor=ACTOR, at=now,
                            note=f"IVR node {pending['node']}: category chosen by key, description recorded",
                            data={"node": pending["node"], "recording_sid": recording_sid,
                                  "recording_url": recording_url, "duration_s": duration_s,
                                  "transcribed": bool(transcription.strip())})
    done = list((interaction.attributes or {}).get("ivr_complaints") or [])
    done.append({"seq": seq, "complaint_id": complaint.id, "recording_sid": recording_sid})
    _set_attrs(interaction, ivr_complaint=None, ivr_complaints=done[-20:])
    record_fact(session, interaction, "ivr.complaint_registered", actor=ACTOR, at=now, data={
        "complaint_id": complaint.id, "reference": complaint.reference, "level": complaint.level,
        "category": complaint.category, "recording_sid": recording_sid, "duration_s": duration_s})
    customer = session.get(Customer, complaint.customer_id)
    zone = ZoneInfo(customer.timezone or config.desk.timezone)
    read_back = engine.complaint_read_back(node, language, reference=complaint.reference,
                                           resolve_on=complaint.resolve_due_at.astimezone(zone).date())
    response = _walk_on(session, desk, interaction, node.next, (read_back,), seq=seq, urls=urls, now=now)
    return interaction, response, complaint


def complaint_not_recorded(session: Session, desk: Desk, *, call_sid: str, seq: int, urls: VoiceUrls,
                           now: datetime) -> tuple[Interaction, VoiceResponse]:
    """Twilio read on past ``<Record>``: nothing was recorded. Tell the caller and walk on to the node's
    fallback (an agent). Raises UnknownCall, CallStateError."""
    interaction = find_call(session, call_sid)
    pending = _pending(interaction, seq)
    node = _node(desk, pending)
    language = interaction.language if interaction.language in ("en", "zh") else "en"
    _set_attrs(interaction, ivr_complaint=None)
    record_fact(session, interaction, "ivr.complaint_not_recorded", actor=ACTOR, at=now,
                data={"node": pending["node"], "category": pending.get("category")})
    said = (Say((node.not_recorded or desk.ivr.messages.complaint_not_recorded).text(language), language),)
    return interaction, _walk_on(session, desk, interaction, node.fallback, said, seq=seq, urls=urls, now=now)


def complaint_transcribed(session: Session, config, *, interaction_id: int, seq: int, recording_sid: str,
                          status: str, text: str, now: datetime) -> Interaction:
    """Twilio's transcription of a complaint recording: added to the complaint's description, audited,
    with the grading keywords it contains as suggestions for the owner to confirm (the grade itself
    changes only by a person's regrade). A failed transcription is only noted.
    Raises UnknownCall, CallStateError (no complaint registered from that recording)."""
    interaction = get_call(session, interaction_id)
    done = (interaction.attributes or {}).get("ivr_complaints") or []
    entry = next((e for e in done if e.get("seq") == seq and e.get("recording_sid") == recording_sid), None)
    if entry is None:
        raise CallStateError(f"no complaint was registered from recording {recording_sid} (step {seq})")
    complaint = complaints.get_complaint(session, entry["complaint_id"])
    text = text.strip()[:MAX_TRANSCRIPT_CHARS]
    if status != "completed" or not text:
        complaints.record_event(session, complaint, "transcription", actor="twilio", at=now,
                                note=f"no transcription ({status or 'empty'})",
                                data={"recording_sid": recording_sid, "status": status})
        return interaction
    complaint.description = f"{complaint.description}\ntranscription: {text}"
    suggested = suggest(text, config.complaints.grading)
    complaints.record_event(session, complaint, "transcription", actor="twilio", at=now, note=text,
                            data={"recording_sid": recording_sid, "status": status,
                                  "suggestions": {f: item.score for f, item in suggested.items()},
                                  "evidence": {f: list(item.evidence) for f, item in suggested.items()}})
    return interaction
