"""The customer's side of chat over Socket.IO (namespace ``/customer``), the realtime fan-out of chat
events to customers and agents, and the chat jobs. Handlers only translate: they call ``chat`` and
answer with an acknowledgement ``{"ok": True, ...}`` or ``{"ok": False, "error": code}``.

Events a client sends: start, resume, message, typing, read, status, leave, transcript.
Events a client receives: message, typing, read, ended, state.
Agents receive "chat.message", "chat.typing", "chat.read", "chat.ended" in ``/agent`` room ``agent:<id>``.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from flask import current_app, has_app_context, request
from flask_login import current_user
from flask_socketio import Namespace, join_room

from app import realtime
from app.auth import ratelimit
from app.channels import chat
from app.db import utcnow
from app.extensions import db, socketio
from app.portal.models import CustomerAccount

log = logging.getLogger(__name__)
NAMESPACE = "/customer"


def _config():
    return current_app.extensions["desk.config"]


def _redis():
    return current_app.extensions["desk.redis"]


def _base_url() -> str:
    return current_app.config["PUBLIC_BASE_URL"]


def _account_id() -> int | None:
    user = current_user
    if getattr(user, "is_authenticated", False) and isinstance(user._get_current_object(), CustomerAccount):
        return user.id
    return None


def _fail(code: str) -> dict[str, Any]:
    return {"ok": False, "error": code}


def _sockets_key(interaction_id: int) -> str:
    return f"chat:sockets:{interaction_id}"


class CustomerNamespace(Namespace):
    """One connection per browser tab; the chat it serves is kept in the Socket.IO session."""

    def _chat(self):
        chat_id = self._chat_id()
        return db.session.get(chat.ChatSession, chat_id) if chat_id else None

    def _chat_id(self) -> int | None:
        """The chat this connection serves, from the socket's own session (no database read)."""
        return self.get_session(request.sid).get("chat_id") if self._has_session() else None

    def _has_session(self) -> bool:
        try:
            self.get_session(request.sid)
            return True
        except KeyError:
            return False

    def _attach(self, found) -> dict[str, Any]:
        self.save_session(request.sid, {"chat_id": found.id})
        join_room(f"chat:{found.interaction_id}")
        _redis().sadd(_sockets_key(found.interaction_id), request.sid)
        return {"ok": True, "status": chat.status(db.session, found), "history": chat.history(db.session, found),
                "chat": {"name": found.visitor_name, "email": found.visitor_email, "topic": found.topic}}

    def on_connect(self, auth=None):
        self.save_session(request.sid, {})
        token = (auth or {}).get("token") if isinstance(auth, dict) else None
        found = None
        if token:
            try:
                found = chat.resume_chat(db.session, str(token))
            except chat.ChatNotFound:
                found = None
        if found is None and _account_id() is not None:
            found = chat.open_chat_of_account(db.session, _account_id())
        if found is not None:
            self._attach(found)

    def on_disconnect(self, *args):
        found = self._chat()
        if found is not None:
            remaining = _redis()
            remaining.srem(_sockets_key(found.interaction_id), request.sid)
            if found.ended_at is None and remaining.scard(_sockets_key(found.interaction_id)) == 0:
                schedule(left_job, found.token_hash, delay_s=_config().chat.leave_grace_s)

    def on_start(self, data):
        data = data if isinstance(data, dict) else {}
        if self._chat() is not None:
            return _fail("already_started")
        if not ratelimit.hit(_redis(), f"chat-start:{request.remote_addr}", limit=_config().chat.starts_per_address,
                             window_s=600):
            return _fail("rate_limited")
        try:
            started, token = chat.start_chat(
                db.session, _config(), name=str(data.get("name") or ""), email=str(data.get("email") or ""),
                topic=str(data.get("topic") or ""), language=str(data.get("language") or "en"),
                account_id=_account_id(), origin=str(data.get("origin") or ""))
        except chat.ChatError as exc:
            db.session.rollback()
            return _fail(exc.code)
        schedule(unanswered_job, started.token_hash, delay_s=_config().chat.max_wait_s)
        reply = self._attach(started)
        reply["token"] = token
        return reply

    def on_resume(self, data):
        """Resume by token, or (no token) the chat this connection already serves: history + status."""
        token = str((data or {}).get("token") or "") if isinstance(data, dict) else ""
        found = self._chat() if not token else None
        if found is None:
            try:
                found = chat.resume_chat(db.session, token)
            except chat.ChatNotFound:
                return _fail("not_found")
        reply = self._attach(found)
        return reply

    def on_message(self, data):
        # The rate limit first, on the socket's chat id: a connection is taken from the pool (and a
        # transaction begun) only once the message may be stored, and held for no Redis round trip.
        chat_id = self._chat_id()
        if chat_id is None:
            return _fail("no_chat")
        limit = _config().chat.messages_per_minute
        if not ratelimit.hit(_redis(), f"chat-msg:{chat_id}", limit=limit, window_s=60):
            return _fail("rate_limited")
        found = chat.chat_ref(db.session, chat_id)
        if found is None:
            return _fail("no_chat")
        data = data if isinstance(data, dict) else {}
        attachment_id = data.get("attachment_id")
        try:
            message, created = chat.post_customer_message(
                db.session, _config().chat, found, client_id=str(data.get("client_id") or ""),
                text=data.get("text"), attachment_id=int(attachment_id) if attachment_id else None)
        except (chat.ChatError, ValueError) as exc:
            db.session.rollback()
            return _fail(getattr(exc, "code", "invalid"))
        return {"ok": True, "message": message, "duplicate": not created}

    def on_typing(self, data):
        found = self._chat()
        if found is None:
            return _fail("no_chat")
        chat.typing(found.interaction_id, sender="customer", on=bool((data or {}).get("on")),
                    agent_id=found.interaction.agent_id)
        return {"ok": True}

    def on_read(self, data):
        found = self._chat()
        if found is None:
            return _fail("no_chat")
        try:
            upto = int((data or {}).get("upto") or 0)
        except (TypeError, ValueError):
            return _fail("invalid")
        mark = chat.mark_read(db.session, found.interaction_id, reader="customer", upto_id=upto, chat=found)
        return {"ok": True, "upto": mark}

    def on_status(self, data=None):
        found = self._chat()
        if found is None:
            return _fail("no_chat")
        reply = {"ok": True, "status": chat.status(db.session, found)}
        return reply

    def on_leave(self, data=None):
        found = self._chat()
        if found is None:
            return _fail("no_chat")
        case = chat.customer_leaves(db.session, _config(), found, base_url=_base_url())
        reply = {"ok": True, "case_reference": f"C-{case.id}" if case else None}
        return reply

    def on_transcript(self, data=None):
        found = self._chat()
        if found is None:
            return _fail("no_chat")
        if not ratelimit.hit(_redis(), f"chat-transcript:{found.id}", limit=3, window_s=3600):
            return _fail("rate_limited")
        chat.send_transcript(db.session, found)
        reply = {"ok": True, "email": found.visitor_email}
        return reply


# ------------------------------------------------------------------------------------ jobs

def schedule(job, chat_key: str, *, delay_s: int) -> None:
    """Run a chat job later (RQ's scheduler, or a timer in the embedded desk); tests may turn timers off
    with ``CHAT_TIMERS = False`` and call the jobs directly. Jobs name the chat by its random key (the
    token hash), never by a row id that a restored or emptied database could give to another chat."""
    if not current_app.config.get("CHAT_TIMERS", True):
        return
    from app.jobs import enqueue

    enqueue(job, chat_key, delay=timedelta(seconds=delay_s))


def _by_key(chat_key: str):
    from sqlalchemy import select

    return db.session.scalar(select(chat.ChatSession).where(chat.ChatSession.token_hash == chat_key))


def unanswered_job(chat_key: str) -> bool:
    """Job: the chat waited ``chat.max_wait_s`` -- if still unanswered it becomes an email case."""
    found = _by_key(chat_key)
    if found is None or not chat.waiting_too_long(found, _config().chat.max_wait_s, utcnow()):
        return False
    chat.convert_to_email_case(db.session, _config(), found, reason="no_agent", base_url=_base_url())
    return True


def left_job(chat_key: str) -> bool:
    """Job: a dropped customer who has not reconnected within the grace period has left."""
    found = _by_key(chat_key)
    if found is None or found.ended_at is not None or _redis().scard(_sockets_key(found.interaction_id)) > 0:
        return False
    chat.customer_leaves(db.session, _config(), found, base_url=_base_url())
    return True


def survey_job(interaction_id: int) -> bool:
    """Job: a chat an agent answered has closed -- email the satisfaction survey to its address."""
    from sqlalchemy import select

    from app.portal.surveys import send_survey

    try:
        found = chat.chat_of_interaction(db.session, interaction_id)
    except chat.ChatNotFound:
        return False
    answered = db.session.scalar(select(chat.ChatMessage.id).where(chat.ChatMessage.chat_id == found.id,
                                                                   chat.ChatMessage.sender == "agent").limit(1))
    if answered is None:
        return False
    sent = send_survey(db.session, interaction_id, base_url=_base_url(), secret_key=current_app.secret_key,
                       to=found.visitor_email)
    db.session.commit()
    return sent


# ------------------------------------------------------------------------------------ fan-out

_CUSTOMER_EVENTS = {"chat.message": "message", "chat.read": "read", "chat.ended": "ended", "chat.typing": "typing"}


def fan_out(name: str, payload: dict[str, Any]) -> None:
    """Realtime listener: deliver committed chat events to the customer's room and the agent's room."""
    if name in _CUSTOMER_EVENTS:
        public = {k: v for k, v in payload.items() if k not in ("agent_id", "chat_id")}
        if not (name == "chat.typing" and payload.get("sender") == "customer"):
            socketio.emit(_CUSTOMER_EVENTS[name], public, namespace=NAMESPACE, to=f"chat:{payload['interaction_id']}")
        agent_id = payload.get("agent_id")
        if agent_id and not (name == "chat.typing" and payload.get("sender") == "agent"):
            socketio.emit(name, payload, namespace="/agent", to=f"agent:{agent_id}")
    elif name == "interaction.state" and payload.get("channel") == "chat":
        socketio.emit("state", {"interaction_id": payload["id"], "state": payload["to"]}, namespace=NAMESPACE,
                      to=f"chat:{payload['id']}")
        if payload["to"] == "closed" and has_app_context():
            from app.jobs import enqueue

            enqueue(survey_job, payload["id"], queue="email")


def init_chat(app) -> None:
    """INITIALISER: the /customer namespace, the fan-out and the portal's email delivery listener."""
    import app.channels.email.outbound  # noqa: F401  (registers its session hooks now, not mid-commit)
    from app.portal.mail import on_event

    socketio.on_namespace(CustomerNamespace(NAMESPACE))
    realtime.subscribe(fan_out)
    realtime.subscribe(on_event)


def sweep_chats_job() -> list[int]:
    """Periodic safety net (a lost timer, a restarted worker): every chat no agent answered within
    ``chat.max_wait_s`` becomes an email case. Returns the chat interaction ids converted."""
    return chat.sweep_unanswered(db.session, _config(), base_url=_base_url())
