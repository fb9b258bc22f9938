"""Twilio Voice webhooks and the console's call controls (thin: parse, check, call a service, answer).

Every webhook is checked against ``X-Twilio-Signature`` with twilio's RequestValidator over
PUBLIC_BASE_URL + path (so the desk verifies correctly behind a proxy); a bad or missing signature
gets 403 and changes nothing. Each answer is stored with its CallSid and event in the same
transaction as the change it answers, so Twilio's retries get the same TwiML and change nothing twice.
Bad input gets a 4xx with TwiML that apologises and hangs up, logged with the request id.
"""
from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm.exc import StaleDataError
from twilio.request_validator import HMAC_SHA1, HMAC_SHA256, RequestValidator, get_signature_algorithm
from twilio.twiml.voice_response import VoiceResponse

from app import realtime
from app.auth.models import Role
from app.auth.roles import current_staff, role_required
from app.channels import lazy_transaction
from app.channels.lazy_transaction import begin_lazily, reading_alone, single_write
from app.channels.telephony import TelephonyError
from app.db import utcnow
from app.extensions import csrf, db
from app.interactions.models import Interaction
from app.interactions.service import DEFER_KEY, WRITTEN_KEY, insert_new_at_once, write_pending
from ivr import agent_leg, calls, twiml
from ivr.calls import CallError, Desk, VoiceUrls
from ivr.models import VoiceWebhookReceipt
from queues.service import RoutingError

log = logging.getLogger(__name__)
bp = Blueprint("voice", __name__, url_prefix="/voice")
api = Blueprint("voice_api", __name__, url_prefix="/api/voice")
csrf.exempt(bp)

CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")
RECORDING_SID = re.compile(r"^RE[0-9a-fA-F]{32}$")
DIGITS = re.compile(r"^[0-9*#]{0,64}$")
CALL_STATUSES = ("queued", "initiated", "ringing", "in-progress", "answered", "completed", "busy", "failed",
                 "no-answer", "canceled")
MAX_SPEECH_CHARS = 1000
MAX_STEP = 100_000
MAX_ID = 2**31 - 1  # ids are 32-bit integer columns: a bigger one is malformed, not a database error
ATTEMPTS = 3
_FLUSHED = "voice.flushed"  # session.info flag: the handler's changes reached the database
_WEBHOOKS = "voice.webhooks"  # app.extensions key of the per-configuration _Webhooks
_RECEIPTS = VoiceWebhookReceipt.__table__
_RECEIPT_INSERT = _RECEIPTS.insert().inline()  # inline: no RETURNING of an id never read
_SIGNING_ALGORITHMS = (HMAC_SHA1, HMAC_SHA256)


class BadWebhook(CallError):
    status = 400


def init_voice(app) -> None:
    """INITIALISER: choose the telephony implementation and bridge calls on accepted offers."""
    from app.channels.telephony import init_telephony

    init_telephony(app)
    agent_leg.install(app)
    with app.app_context():
        for engine in db.engines.values():
            lazy_transaction.install(engine)


# --- request checks -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Webhooks:
    """What every webhook needs from the app's settings and configuration, built once per configuration
    (not on each request): the flows' view of the desk, the public URLs and the signature validator.
    Rebuilt when the app is given another configuration object (tests swap it)."""

    config: Any
    settings: Any
    desk: Desk
    urls: VoiceUrls
    base: str
    validator: RequestValidator


def _webhooks() -> _Webhooks:
    extensions = current_app.extensions
    config, settings = extensions["desk.config"], extensions["desk.settings"]
    cached = extensions.get(_WEBHOOKS)
    if cached is None or cached.config is not config or cached.settings is not settings:
        cached = extensions[_WEBHOOKS] = _Webhooks(
            config=config, settings=settings, desk=Desk.from_config(config), urls=VoiceUrls(settings.public_base_url),
            base=settings.public_base_url.rstrip("/"), validator=RequestValidator(settings.twilio_auth_token))
    return cached


def signed_url() -> str:
    """The URL Twilio signed: the public base, not whatever host the proxy handed us."""
    query = request.query_string.decode("latin-1")
    return _webhooks().base + request.path + (f"?{query}" if query else "")


def signature_valid() -> bool:
    """Twilio's signature over the public URL and the form, checked with twilio's RequestValidator.

    Twilio signs the URL it requested, which is ours exactly: one signature computed over it settles
    nearly every request. Only when that one does not match is ``validate`` asked, which tries the URL
    with and without its port (and refuses what neither variant signs) -- the same answer for twice
    the work, kept for senders that sign the other variant."""
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature:
        return False
    algorithm = get_signature_algorithm(request.headers.get("X-Twilio-Webhooks-Signature-Settings"))
    validator, url, form = _webhooks().validator, signed_url(), request.form
    if algorithm.upper() in _SIGNING_ALGORITHMS and hmac.compare_digest(
            validator.compute_signature(url, form, algorithm).encode(), signature.encode()):
        return True
    return validator.validate(url, form, signature, algorithm)


@bp.before_request
def _verify_twilio() -> Response | None:
    if not signature_valid():
        log.warning("voice webhook %s refused: bad or missing signature (request %s)", request.path,
                    g.get("request_id"))
        return _twiml_error(403, "bad signature")
    return None


def _desk() -> Desk:
    return _webhooks().desk


def _urls() -> VoiceUrls:
    return _webhooks().urls


def _form(name: str, pattern: re.Pattern | None = None, *, required: bool = True, max_len: int = 200) -> str:
    value = request.form.get(name, "")
    if not value and required:
        raise BadWebhook(f"{name} is missing")
    if len(value) > max_len or (value and pattern is not None and not pattern.match(value)):
        raise BadWebhook(f"{name} is malformed")
    return value


def _int_arg(name: str, *, source=None, low: int = 0, high: int = MAX_STEP) -> int:
    raw = (source or request.args).get(name, "")
    if not raw.isdigit() or not (low <= int(raw) <= high):
        raise BadWebhook(f"{name} must be a whole number from {low} to {high}")
    return int(raw)


def _optional_arg(name: str) -> int | None:
    """A whole-number query argument that may be absent (the wait loop's last announcement)."""
    return _int_arg(name, high=2**40) if name in request.args else None


def _optional_int(name: str) -> int | None:
    raw = request.form.get(name, "")
    return int(raw) if raw.isdigit() and len(raw) < 9 else None


def _call_sid() -> str:
    return _form("CallSid", CALL_SID)


def _twiml_error(status: int, reason: str, language: str = "en") -> Response:
    log.warning("voice webhook %s answered %s: %s (request %s)", request.path, status, reason, g.get("request_id"))
    body = str(twiml.render_apology(current_app.extensions["desk.config"].ivr, language))
    return Response(body, status, mimetype="text/xml")


def _language_of(call_sid: str | None) -> str:
    if not call_sid or not CALL_SID.match(call_sid):
        return "en"
    language = db.session.scalar(select(Interaction.language).where(Interaction.channel == "voice",
                                                                    Interaction.external_ref == call_sid))
    return language if language in ("en", "zh") else "en"


def _stored_answer(call_sid: str, event: str) -> Response | None:
    stored = db.session.scalar(select(VoiceWebhookReceipt).where(
        VoiceWebhookReceipt.call_sid == call_sid, VoiceWebhookReceipt.event == event))
    return Response(stored.body, stored.status_code, mimetype="text/xml") if stored is not None else None


@sa_event.listens_for(OrmSession, "after_flush")
def _note_flush(session: OrmSession, flush_context) -> None:
    session.info[_FLUSHED] = True


def _changed(session) -> bool:
    """Did the handler change anything (pending, already flushed, or announced after commit)?"""
    return bool(session.new or session.dirty or session.deleted or session.info.get(_FLUSHED)
                or session.info.get(WRITTEN_KEY) or session.info.get(realtime.PENDING_KEY))


def answer(event: str, handler: Callable[[OrmSession], tuple[Interaction | None, VoiceResponse]]) -> Response:
    """Run ``handler(session)`` once per (CallSid, event): store its TwiML with the change it made, commit,
    and give a retry the stored answer.

    Optimistic: the first delivery (nearly every request) runs at once; the receipt's unique key
    (CallSid, event) refuses a second copy of the change, and only then -- or when the handler refuses
    a retry as stale -- is the stored answer read back. A handler that changed nothing (a waiting turn)
    stores no receipt: a retry simply gets the same answer computed again. Concurrent duplicates: the
    loser rolls back and replays the winner's answer. The handler gets the request's session itself,
    not the scoped proxy (which looks the session up again on every use).

    The transaction opens at the first write, not the first read (``lazy_transaction``): a handler that
    only reads sends no BEGIN and no COMMIT, and one whose only write is the statement that carries the
    receipt (a menu step, a new call, a hang-up) sends that statement on its own, atomic by itself."""
    try:
        call_sid = _call_sid()
    except BadWebhook as exc:
        return _twiml_error(exc.status, str(exc))
    session = db.session()
    for attempt in range(ATTEMPTS):
        session.info.pop(_FLUSHED, None)
        session.info.pop(WRITTEN_KEY, None)
        session.info[DEFER_KEY] = True  # a write at once (a menu step, a hang-up) waits for the receipt
        try:
            begin_lazily(session)
            interaction, response = handler(session)
            body = str(response)
            if _changed(session):
                _store_with_receipt(session, {"call_sid": call_sid, "event": event, "status_code": 200,
                                              "body": body, "created_at": utcnow(),
                                              "interaction_id": interaction.id if interaction else None})
            session.commit()
            return Response(body, 200, mimetype="text/xml")
        except CallError as exc:
            session.rollback()
            return _stored_answer(call_sid, event) or _twiml_error(exc.status, str(exc), _language_of(call_sid))
        except (IntegrityError, StaleDataError) as exc:  # a concurrent twin or an earlier delivery won
            session.rollback()
            stored = _stored_answer(call_sid, event)
            if stored is not None:
                return stored
            log.info("voice webhook %s %s raced (%s), attempt %d", call_sid, event, type(exc).__name__, attempt + 1)
        finally:
            session.info.pop(DEFER_KEY, None)
    return _twiml_error(409, "too many concurrent updates", _language_of(call_sid))


def _store_with_receipt(session: OrmSession, receipt: dict[str, Any]) -> None:
    """The handler's changes first (the receipt may name the interaction they insert), then the receipt as
    a plain insert: it is never read back, so it needs no place in the ORM's session. A write at once the
    handler left pending, or a new call's rows, carry the receipt in their own statement -- then, when
    nothing else was written, the webhook's only write, sent without opening a transaction."""
    with single_write(session):
        if insert_new_at_once(session, ride=(_RECEIPTS, receipt)):  # a new call: one statement
            return
    session.flush()  # a write here opens the transaction; the statement below then joins it
    with single_write(session):
        if not write_pending(session, ride=(_RECEIPTS, receipt)):
            session.execute(_RECEIPT_INSERT, receipt)


def _bad(exc: CallError) -> Response:
    return _twiml_error(exc.status, str(exc), _language_of(request.form.get("CallSid")))


# --- the caller's journey ---------------------------------------------------------------------------------

@bp.post("/incoming")
def incoming() -> Response:
    try:
        from_ = _form("From", max_len=64)
        to = _form("To", max_len=64)
    except BadWebhook as exc:
        return _bad(exc)
    return answer("incoming", lambda session: calls.incoming_call(
        session, _desk(), call_sid=_call_sid(), from_=from_, to=to, urls=_urls(), now=utcnow()))


@bp.post("/gather")
def gather() -> Response:
    try:
        seq = _int_arg("s", low=1)
        digits = _form("Digits", DIGITS, required=False)
        speech = _form("SpeechResult", required=False, max_len=MAX_SPEECH_CHARS)
    except BadWebhook as exc:
        return _bad(exc)
    return answer(f"gather:{seq}", lambda session: calls.gather_input(
        session, _desk(), call_sid=_call_sid(), seq=seq, digits=digits, speech=speech, urls=_urls(),
        now=utcnow()))


@bp.post("/wait")
def wait() -> Response:
    """A turn of the wait loop. Between announcements a call still waiting is answered from one read
    outside any transaction (it changes nothing: no receipt either); anything else goes through
    ``answer``."""
    try:
        turn = _int_arg("t", low=1)
        announced = _optional_arg("a")
        call_sid = _call_sid()
    except BadWebhook as exc:
        return _bad(exc)
    now = utcnow()
    if not calls.announce_due(_desk(), announced, now):
        with reading_alone(db.engine) as connection:
            quiet = calls.quiet_turn(connection, _desk(), call_sid=call_sid, turn=turn, urls=_urls(), now=now,
                                     announced=announced)
        if quiet is not None:
            return Response(str(quiet), 200, mimetype="text/xml")
    return answer(f"wait:{turn}", lambda session: calls.wait_turn(
        session, _desk(), call_sid=call_sid, turn=turn, urls=_urls(), now=now, announced=announced))


@bp.post("/wait-key")
def wait_key() -> Response:
    try:
        turn = _int_arg("t", low=1)
        announced = _optional_arg("a")
        digits = _form("Digits", DIGITS, required=False)
    except BadWebhook as exc:
        return _bad(exc)
    return answer(f"wait-key:{turn}", lambda session: calls.wait_key(
        session, _desk(), call_sid=_call_sid(), turn=turn, digits=digits, urls=_urls(), now=utcnow(),
        announced=announced))


@bp.post("/voicemail")
def voicemail() -> Response:
    try:
        recording_url = _form("RecordingUrl", required=False, max_len=500)
    except BadWebhook as exc:
        return _bad(exc)
    return answer("voicemail", lambda session: calls.voicemail_done(
        session, _desk(), call_sid=_call_sid(), recording_url=recording_url or None,
        duration_s=_optional_int("RecordingDuration"), now=utcnow()))


@bp.post("/status")
def status() -> Response:
    try:
        call_status = _form("CallStatus", max_len=20)
        if call_status not in CALL_STATUSES:
            raise BadWebhook(f"unknown CallStatus {call_status[:20]!r}")
    except BadWebhook as exc:
        return _bad(exc)
    return answer(f"status:{call_status}", lambda session: (calls.call_status(
        session, call_sid=_call_sid(), status=call_status, duration_s=_optional_int("CallDuration"),
        now=utcnow()), VoiceResponse()))


@bp.post("/recording")
def recording() -> Response:
    try:
        interaction_id = _int_arg("i", low=1, high=MAX_ID)
        sid = _form("RecordingSid", RECORDING_SID)
        url = _form("RecordingUrl", max_len=500)
        rec_status = _form("RecordingStatus", max_len=20)
    except BadWebhook as exc:
        return _bad(exc)
    return answer(f"recording:{sid}:{rec_status}", lambda session: (calls.recording_ready(
        session, interaction_id=interaction_id, recording_url=url, status=rec_status,
        duration_s=_optional_int("RecordingDuration")), VoiceResponse()))


# --- the agent's leg ---------------------------------------------------------------------------------------

@bp.post("/connect")
def connect() -> Response:
    try:
        interaction_id = _int_arg("i", low=1, high=MAX_ID)
        agent_id = _int_arg("a", low=1, high=MAX_ID)
        bridge = _int_arg("b", low=0)
    except BadWebhook as exc:
        return _bad(exc)
    return answer(f"connect:{interaction_id}:{agent_id}:{bridge}", lambda session: (None, agent_leg.connect_agent(
        session, _desk(), interaction_id=interaction_id, agent_id=agent_id, call_sid=_call_sid(), urls=_urls(),
        now=utcnow())))


@bp.post("/callback-answer")
def callback_answer() -> Response:
    try:
        interaction_id = _int_arg("i", low=1, high=MAX_ID)
        agent_id = _int_arg("a", low=1, high=MAX_ID)
    except BadWebhook as exc:
        return _bad(exc)
    return answer("callback-answer", lambda session: (None, agent_leg.callback_answered(
        session, _desk(), interaction_id=interaction_id, agent_id=agent_id, call_sid=_call_sid(),
        urls=_urls(), now=utcnow())))


@bp.post("/callback-status")
def callback_status() -> Response:
    try:
        interaction_id = _int_arg("i", low=1, high=MAX_ID)
        call_status = _form("CallStatus", max_len=20)
        if call_status not in CALL_STATUSES:
            raise BadWebhook(f"unknown CallStatus {call_status[:20]!r}")
    except BadWebhook as exc:
        return _bad(exc)
    return answer(f"callback-status:{call_status}", lambda session: (agent_leg.callback_status(
        session, interaction_id=interaction_id, status=call_status, now=utcnow()), VoiceResponse()))


@bp.post("/dial-done")
def dial_done() -> Response:
    try:
        interaction_id = _int_arg("i", low=1, high=MAX_ID)
        dial_status = _form("DialCallStatus", max_len=20)
        if dial_status not in CALL_STATUSES:
            raise BadWebhook(f"unknown DialCallStatus {dial_status[:20]!r}")
        leg = _form("DialCallSid", CALL_SID, required=False) or "none"
    except BadWebhook as exc:
        return _bad(exc)
    return answer(f"dial-done:{interaction_id}:{leg}", lambda session: (None, agent_leg.dial_done(
        session, _desk(), interaction_id=interaction_id, dial_status=dial_status, urls=_urls(), now=utcnow())))


@bp.post("/hold")
def hold_music() -> Response:
    try:
        interaction_id = _int_arg("i", low=1, high=MAX_ID)
        count = _int_arg("n", low=0)
    except BadWebhook as exc:
        return _bad(exc)

    def handler(session):
        interaction = calls.get_call(session, interaction_id)
        return interaction, agent_leg.render_hold(_desk(), interaction)

    return answer(f"hold:{interaction_id}:{count}", handler)


# --- console controls (JSON, signed-in agents) ---------------------------------------------------------------

def _own_interaction(interaction_id: int) -> Interaction:
    interaction = db.session.get(Interaction, interaction_id)
    staff = current_staff()
    if interaction is None or interaction.channel != "voice":
        from flask import abort

        abort(404)
    if interaction.agent_id != staff.id and not staff.has_role(Role.SUPERVISOR):
        from flask import abort

        abort(403)
    return interaction


def _control(interaction_id: int, action: Callable[[Interaction], None]):
    interaction = _own_interaction(interaction_id)
    try:
        action(interaction)
        db.session.commit()
    except (CallError, RoutingError) as exc:
        db.session.rollback()
        return jsonify(error="call_state", message=str(exc)), 409
    except TelephonyError as exc:
        db.session.rollback()
        log.warning("telephony refused %s on interaction %s: %s", request.path, interaction_id, exc)
        return jsonify(error="telephony", message=str(exc)), 502
    return jsonify(ok=True, state=interaction.state)


def _telephony():
    return current_app.extensions["desk.telephony"]


@api.post("/<int:interaction_id>/hold")
@role_required(Role.AGENT)
def api_hold(interaction_id: int):
    on = bool((request.get_json(silent=True) or {}).get("on", True))
    actor = f"staff:{current_staff().id}"
    return _control(interaction_id, lambda i: agent_leg.hold(db.session, _telephony(), _urls(), i, on=on,
                                                             actor=actor, now=utcnow()))


@api.post("/<int:interaction_id>/hangup")
@role_required(Role.AGENT)
def api_hangup(interaction_id: int):
    actor = f"staff:{current_staff().id}"
    return _control(interaction_id, lambda i: agent_leg.hangup(db.session, _telephony(), i, actor=actor,
                                                               now=utcnow()))


@api.post("/<int:interaction_id>/transfer")
@role_required(Role.AGENT)
def api_transfer(interaction_id: int):
    data = request.get_json(silent=True) or {}
    queue, note = str(data.get("queue", "")), str(data.get("note") or "")[:500]
    known = {q.name for q in current_app.extensions["desk.config"].routing.queues}
    if queue not in known:
        return jsonify(error="unknown_queue", message=f"unknown queue {queue[:64]!r}"), 400
    actor = f"staff:{current_staff().id}"
    return _control(interaction_id, lambda i: agent_leg.transfer_to_queue(
        db.session, _telephony(), _urls(), i, queue, actor=actor, note=note, now=utcnow()))


@api.post("/mute")
@role_required(Role.AGENT)
def api_mute():
    """Muting happens in the softphone (the browser stops sending audio); the desk logs it."""
    data = request.get_json(silent=True) or {}
    interaction_id = data.get("interaction_id")
    if not isinstance(interaction_id, int):
        return jsonify(error="bad_request", message="interaction_id is required"), 400
    interaction = _own_interaction(interaction_id)
    from app.interactions.service import record_fact

    record_fact(db.session, interaction, "voice.mute" if data.get("on", True) else "voice.unmute",
                actor=f"staff:{current_staff().id}")
    db.session.commit()
    return jsonify(ok=True)


@api.route("/device", methods=["GET", "POST"])
@role_required(Role.AGENT)
def api_device():
    staff = current_staff()
    if request.method == "POST":
        try:
            agent_leg.set_agent_device(db.session, staff, str((request.get_json(silent=True) or {}).get("device")))
        except ValueError as exc:
            db.session.rollback()
            return jsonify(error="bad_request", message=str(exc)), 400
        db.session.commit()
    return jsonify(device=agent_leg.agent_device(db.session, staff), phone=staff.phone_e164)


@api.get("/token")
@role_required(Role.AGENT)
def api_token():
    """A short-lived access token for the browser softphone (Twilio Voice JS SDK)."""
    staff = current_staff()
    token, identity = access_token(staff.id)
    return jsonify(token=token, identity=identity, ttl_s=TOKEN_TTL_S)


TOKEN_TTL_S = 3600


def access_token(agent_id: int) -> tuple[str, str]:
    """Mint the softphone token with twilio's AccessToken + VoiceGrant (incoming calls allowed).
    Signed with the API key in the Flask config (TWILIO_API_KEY_SID / TWILIO_API_KEY_SECRET), or the
    account's own sid and auth token where none is configured (enough for the demo simulator)."""
    from twilio.jwt.access_token import AccessToken
    from twilio.jwt.access_token.grants import VoiceGrant

    settings = current_app.extensions["desk.settings"]
    identity = agent_leg.client_identity(agent_id)
    token = AccessToken(settings.twilio_account_sid,
                        current_app.config.get("TWILIO_API_KEY_SID") or settings.twilio_account_sid,
                        current_app.config.get("TWILIO_API_KEY_SECRET") or settings.twilio_auth_token,
                        identity=identity, ttl=TOKEN_TTL_S)
    token.add_grant(VoiceGrant(outgoing_application_sid=current_app.config.get("TWILIO_TWIML_APP_SID"),
                               incoming_allow=True))
    jwt = token.to_jwt()
    return (jwt.decode() if isinstance(jwt, bytes) else jwt), identity


from app.channels import voice_complaints  # noqa: E402,F401 - its routes join ``bp`` (it imports this module)
