"""Twilio webhooks of a complaint made in the IVR (on the voice blueprint: same signature check, same
stored answers): the recording, an empty recording, and Twilio's transcription."""
from __future__ import annotations

import re

from flask import Response, current_app
from twilio.twiml.voice_response import VoiceResponse

from app.channels import voice
from app.channels.voice import (
    MAX_ID,
    RECORDING_SID,
    BadWebhook,
    _bad,
    _call_sid,
    _desk,
    _form,
    _int_arg,
    _optional_int,
    _urls,
    answer,
    bp,
)
from app.extensions import db
from ivr import complaint_calls

MEDIA_URL = re.compile(r"^https?://\S+$")
TRANSCRIPTION_STATUSES = ("completed", "failed")


@bp.post("/complaint")
def complaint_recorded() -> Response:
    """The Record action after a complaint's description: register it (one complaint per step, however
    often Twilio retries), read back the reference, walk on. SLA checks are scheduled after the commit."""
    try:
        seq = _int_arg("s", low=1)
        recording_sid = _form("RecordingSid", RECORDING_SID)
        recording_url = _form("RecordingUrl", MEDIA_URL, max_len=500)
        transcription = _form("TranscriptionText", required=False, max_len=complaint_calls.MAX_TRANSCRIPT_CHARS)
    except BadWebhook as exc:
        return _bad(exc)
    config = current_app.extensions["desk.config"]
    registered: dict[str, int] = {}

    def handler(session):
        registered.clear()
        interaction, response, complaint = complaint_calls.complaint_recorded(
            session, _desk(), config, call_sid=_call_sid(), seq=seq, recording_sid=recording_sid,
            recording_url=recording_url, duration_s=_optional_int("RecordingDuration"), transcription=transcription,
            urls=_urls(), now=voice.utcnow())
        registered["complaint_id"] = complaint.id
        return interaction, response

    reply = answer(f"complaint:{seq}", handler)
    if reply.status_code == 200 and registered:
        _schedule_sla_check(config, registered["complaint_id"], voice.utcnow())
    return reply


def _schedule_sla_check(config, complaint_id: int, now) -> None:
    from app.complaints.flows import schedule_sla_check
    from app.complaints.models import Complaint

    complaint = db.session.get(Complaint, complaint_id)
    if complaint is not None:  # None: a concurrent twin won and its answer was replayed
        schedule_sla_check(config, complaint, now)


@bp.post("/complaint-empty")
def complaint_empty() -> Response:
    try:
        seq = _int_arg("s", low=1)
    except BadWebhook as exc:
        return _bad(exc)
    return answer(f"complaint-empty:{seq}", lambda session: complaint_calls.complaint_not_recorded(
        session, _desk(), call_sid=_call_sid(), seq=seq, urls=_urls(), now=voice.utcnow()))


@bp.post("/complaint-transcript")
def complaint_transcript() -> Response:
    try:
        interaction_id = _int_arg("i", low=1, high=MAX_ID)
        seq = _int_arg("s", low=1)
        recording_sid = _form("RecordingSid", RECORDING_SID)
        status = _form("TranscriptionStatus", max_len=20)
        if status not in TRANSCRIPTION_STATUSES:
            raise BadWebhook(f"unknown TranscriptionStatus {status[:20]!r}")
        text = _form("TranscriptionText", required=False, max_len=complaint_calls.MAX_TRANSCRIPT_CHARS)
    except BadWebhook as exc:
        return _bad(exc)
    config = current_app.extensions["desk.config"]
    return answer(f"complaint-transcript:{recording_sid}", lambda session: (complaint_calls.complaint_transcribed(
        session, config, interaction_id=interaction_id, seq=seq, recording_sid=recording_sid, status=status,
        text=text, now=voice.utcnow()), VoiceResponse()))
