"""Web chat service: the one home for every chat state change, called by the customer socket
namespace (``chat_socket``) and by the agent console.

Promises:
- every message is committed before the sender's acknowledgement, and a resend with the same client id
  returns the stored row (the database's unique constraint decides, even between two web nodes);
- events are announced only after the commit (``realtime.after_commit``): "chat.message", "chat.read",
  "chat.ended"; typing is ephemeral ("chat.typing", published at once, never stored);
- a chat never just disappears: out of hours, no agent within ``chat.max_wait_s``, or the customer
  leaving while waiting turn what they wrote into an email case (``convert_to_email_case``);
- text is stored as typed (control characters removed, length capped) and never as HTML: every
  renderer escapes it.
Functions that take a session commit it unless their docstring says otherwise.
"""
from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask_babel import force_locale, gettext as _
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from app import realtime
from app.auth.models import StaffUser
from app.calendars import is_open
from app.channels.chat_models import ChatMessage, ChatSession
from app.crm.service import MatchStatus, identify
from app.db import utcnow
from app.interactions.models import Interaction
from app.interactions.service import create_interaction, transition
from app.interactions.states import State
from app.portal import routing
from app.portal.cases import case_reference
from app.portal.mail import record_email
from app.portal.models import Attachment, CaseMessage, CustomerAccount

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{8,64}$")
LIVE_STATES = (State.NEW, State.QUEUED, State.OFFERED, State.CONNECTED)


class ChatError(Exception):
    """Base of chat refusals; ``code`` is what the client is told."""

    code = "chat_error"


class ChatNotFound(ChatError):
    code = "not_found"


class ChatEnded(ChatError):
    code = "ended"


class NotYourChat(ChatError):
    code = "forbidden"


class MessageInvalid(ChatError):
    def __init__(self, code: str):
        self.code = code
        super().__init__(code)


class NewerCustomerMessages(ChatError):
    """The customer wrote after the message the agent last saw: the agent's message is held (nothing
    stored) until they have read ``messages`` (the newer ones, oldest first) and send again."""

    code = "newer_messages"

    def __init__(self, messages: list[dict[str, Any]]):
        self.messages = messages
        super().__init__(f"{len(messages)} newer customer message(s)")


# ------------------------------------------------------------------------------------ helpers

def hash_token(raw: str) -> str:
    return hashlib.sha256((raw or "").encode()).hexdigest()


def clean_text(text: Any, max_chars: int) -> str:
    """The text as typed minus control characters (newlines and tabs kept), trimmed. Raises
    MessageInvalid("too_long") beyond ``max_chars``."""
    text = _CONTROL.sub("", str(text or "")).replace("\r\n", "\n").replace("\r", "\n").strip()
    if len(text) > max_chars:
        raise MessageInvalid("too_long")
    return text


def queue_of_topic(chat_config, topic: str) -> str:
    found = next((t for t in chat_config.topics if t.code == topic), None)
    if found is None:
        raise MessageInvalid("unknown_topic")
    return found.queue


def queue_is_open(desk_config, queue_name: str, at: datetime) -> bool:
    queue = next((q for q in desk_config.routing.queues if q.name == queue_name), None)
    calendar = desk_config.calendars.get(queue.calendar if queue else "default")
    return True if calendar is None else is_open(calendar, at)


def message_dict(message: ChatMessage, attachment: Attachment | None = None) -> dict[str, Any]:
    return _message_data(message.id, message.client_id, message.sender, message.body, message.created_at, attachment)


def _message_data(message_id: int, client_id: str, sender: str, body: str, at: datetime,
                  attachment: Attachment | None) -> dict[str, Any]:
    data: dict[str, Any] = {"id": message_id, "client_id": client_id, "sender": sender, "body": body,
                            "at": at.isoformat(), "attachment": None}
    if attachment is not None:
        data["attachment"] = {"id": attachment.id, "filename": attachment.filename,
                              "content_type": attachment.content_type, "size": attachment.size_bytes,
                              "url": f"/chat/attachments/{attachment.id}"}
    return data


def _system_message(session: Session, chat: ChatSession, body: str) -> ChatMessage:
    row = ChatMessage(chat_id=chat.id, sender="system", client_id=f"system:{secrets.token_hex(8)}", body=body)
    session.add(row)
    session.flush()
    realtime.after_commit(session, "chat.message", _event(chat, message=message_dict(row)))
    return row


def _event(chat: ChatSession | ChatRef, **extra: Any) -> dict[str, Any]:
    return {"interaction_id": chat.interaction_id, "chat_id": chat.id, "agent_id": chat.agent_id, **extra}


@dataclass(frozen=True)
class ChatRef:
    """What storing a customer's message needs of its chat, read as four columns: the socket's hot path
    (every message) builds no ORM objects for the chat and its interaction."""

    id: int
    interaction_id: int
    ended_at: datetime | None
    agent_id: int | None


_CHAT_REF = (select(ChatSession.id, ChatSession.interaction_id, ChatSession.ended_at, Interaction.agent_id)
             .join(Interaction, Interaction.id == ChatSession.interaction_id)
             .where(ChatSession.id == bindparam("chat_id")))


def chat_ref(session: Session, chat_id: int) -> ChatRef | None:
    """The chat ``chat_id`` as a ChatRef, or None when there is none."""
    row = session.execute(_CHAT_REF, {"chat_id": chat_id}).first()
    return ChatRef(*row) if row is not None else None


# ------------------------------------------------------------------------------------ start / resume

def start_chat(session: Session, desk_config, *, name: str, email: str, topic: str, language: str = "en",
               account_id: int | None = None, origin: str = "", now: datetime | None = None
               ) -> tuple[ChatSession, str]:
    """Open a chat: identify the customer (signed-in account first, else the pre-chat email), create the
    chat Interaction and queue it to the topic's queue -- or, out of hours, keep it offline so what the
    customer writes becomes an email case. Returns the chat and its raw resume token. Raises
    MessageInvalid (bad_name, bad_email, unknown_topic). Commits."""
    now = now or utcnow()
    queue = queue_of_topic(desk_config.chat, topic)
    account = session.get(CustomerAccount, account_id) if account_id else None
    if account is not None:
        name, email = account.customer.name, account.email
    name = clean_text(name, 120)
    email = (email or "").strip().lower()
    if not name:
        raise MessageInvalid("bad_name")
    if not _EMAIL.match(email) or len(email) > 254:
        raise MessageInvalid("bad_email")
    language = language if language in ("en", "zh") else "en"
    who = identify(session, account_id=account.id if account else None, email=email, name=name, language=language,
                   create_prospect=True)
    customer_id = who.customer_id if who.status in (MatchStatus.MATCHED, MatchStatus.NEW_PROSPECT) else None
    label = next(t for t in desk_config.chat.topics if t.code == topic)
    raw = secrets.token_urlsafe(32)
    interaction = create_interaction(
        session, channel="chat", actor="customer", external_ref=f"chat:{secrets.token_hex(12)}",
        customer_id=customer_id, language=language, subject=label.label_zh if language == "zh" else label.label_en,
        attributes={"source": "chat", "topic": topic, "origin": origin[:255], "visitor_name": name,
                    "visitor_email": email, "identification": who.to_dict()}, at=now)
    interaction.queue = queue
    open_now = queue_is_open(desk_config, queue, now)
    chat = ChatSession(interaction_id=interaction.id, token_hash=hash_token(raw), customer_id=customer_id,
                       account_id=account.id if account else None, visitor_name=name, visitor_email=email,
                       topic=topic, origin=origin[:255], mode="live" if open_now else "offline", created_at=now)
    chat.interaction = interaction
    session.add(chat)
    session.flush()
    with force_locale(language):
        if open_now:
            _system_message(session, chat, _("Thanks, %(name)s. An agent will be with you shortly.", name=name))
        else:
            _system_message(session, chat, _("We are closed right now. Leave your message here and we will "
                                             "answer by email to %(email)s.", email=email))
    if open_now:
        routing.enqueue(session, interaction, queue, actor="customer")
    session.commit()
    return chat, raw


def resume_chat(session: Session, raw_token: str) -> ChatSession:
    """The chat this resume token opens. Raises ChatNotFound."""
    chat = session.scalar(select(ChatSession).where(ChatSession.token_hash == hash_token(raw_token)))
    if chat is None:
        raise ChatNotFound()
    return chat


def open_chat_of_account(session: Session, account_id: int) -> ChatSession | None:
    """A signed-in customer's chat that has not ended (to resume it from another tab or device)."""
    return session.scalar(select(ChatSession).where(ChatSession.account_id == account_id,
                                                    ChatSession.ended_at.is_(None))
                          .order_by(ChatSession.id.desc()).limit(1))


def chat_of_interaction(session: Session, interaction_id: int) -> ChatSession:
    chat = session.scalar(select(ChatSession).where(ChatSession.interaction_id == interaction_id))
    if chat is None:
        raise ChatNotFound()
    return chat


def history(session: Session, chat: ChatSession) -> list[dict[str, Any]]:
    """Every message of the chat in order (what a reconnecting customer or a joining agent is sent)."""
    rows = session.execute(select(ChatMessage, Attachment).outerjoin(Attachment, Attachment.id ==
                                                                     ChatMessage.attachment_id)
                           .where(ChatMessage.chat_id == chat.id).order_by(ChatMessage.id)).all()
    return [message_dict(m, a) for m, a in rows]


def chat_history(session: Session, interaction_id: int) -> list[dict[str, Any]]:
    """For the agent console: the whole conversation of a chat interaction (kept across transfers)."""
    return history(session, chat_of_interaction(session, interaction_id))


def status(session: Session, chat: ChatSession) -> dict[str, Any]:
    """What the customer's widget shows: state, position and estimated wait while queued, the agent's
    name once connected, read marks, and how the chat ended."""
    interaction = chat.interaction
    position, wait_s = routing.position_and_wait(session, interaction)
    agent = session.get(StaffUser, interaction.agent_id) if interaction.agent_id else None
    return {"interaction_id": interaction.id, "state": interaction.state, "mode": chat.mode,
            "position": position, "wait_s": None if wait_s is None else round(wait_s),
            "agent_name": agent.name if agent and interaction.state == State.CONNECTED else None,
            "agent_read_upto": chat.agent_read_upto, "customer_read_upto": chat.customer_read_upto,
            "ended": chat.ended_at is not None, "end_reason": chat.end_reason,
            "case_reference": f"C-{chat.case_interaction_id}" if chat.case_interaction_id else None}


# ------------------------------------------------------------------------------------ messages

_INSERT_ONCE: dict[str, Any] = {}  # dialect name -> the statement, built once


def _insert_once(session: Session, values: dict[str, Any]) -> int | None:
    """INSERT ... ON CONFLICT DO NOTHING: the new row's id, or None when this client id is stored already
    (one round trip, and the database's unique constraint decides even between two web nodes). A Core
    statement on the table, built once per dialect: every message goes through here."""
    dialect = session.get_bind().dialect.name
    statement = _INSERT_ONCE.get(dialect)
    if statement is None:
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:  # pragma: no cover - the desk runs on PostgreSQL or SQLite
            raise RuntimeError(f"unsupported database {dialect}")
        table = ChatMessage.__table__
        statement = _INSERT_ONCE[dialect] = insert(table).on_conflict_do_nothing(
            index_elements=["chat_id", "sender", "client_id"]).returning(table.c.id)
    return session.execute(statement, values).scalar()


def _stored(session: Session, chat: ChatSession | ChatRef, sender: str, client_id: str) -> dict[str, Any]:
    existing = session.scalar(select(ChatMessage).where(ChatMessage.chat_id == chat.id, ChatMessage.sender == sender,
                                                        ChatMessage.client_id == client_id))
    return message_dict(existing, session.get(Attachment, existing.attachment_id) if existing.attachment_id
                        else None)


def _store(session: Session, chat: ChatSession | ChatRef, *, sender: str, client_id: str, body: str,
           attachment_id: int | None, agent_id: int | None) -> tuple[dict[str, Any], bool]:
    if not _CLIENT_ID.match(client_id or ""):
        raise MessageInvalid("bad_client_id")
    attachment = None
    if attachment_id is not None:
        attachment = session.get(Attachment, attachment_id)
        if attachment is None or attachment.interaction_id != chat.interaction_id:
            raise MessageInvalid("bad_attachment")
    if not body and attachment is None:
        raise MessageInvalid("empty")
    now = utcnow()
    new_id = _insert_once(session, {"chat_id": chat.id, "sender": sender, "agent_id": agent_id,
                                    "client_id": client_id, "body": body, "created_at": now,
                                    "attachment_id": attachment.id if attachment else None})
    if new_id is None:  # a resend: answer with what is stored
        return _stored(session, chat, sender, client_id), False
    data = _message_data(new_id, client_id, sender, body, now, attachment)
    realtime.after_commit(session, "chat.message", _event(chat, message=data))
    session.commit()
    return data, True


def post_customer_message(session: Session, chat_config, chat: ChatSession | ChatRef, *, client_id: str, text: Any,
                          attachment_id: int | None = None) -> tuple[dict[str, Any], bool]:
    """Store the customer's message (once per client id) and announce it. Returns (message, created).
    Raises ChatEnded, MessageInvalid (empty, too_long, bad_client_id, bad_attachment). Commits."""
    if chat.ended_at is not None:
        raise ChatEnded()
    body = clean_text(text, chat_config.max_message_chars)
    return _store(session, chat, sender="customer", client_id=client_id, body=body, attachment_id=attachment_id,
                  agent_id=None)


def _agents_chat(session: Session, interaction_id: int, agent_id: int) -> ChatSession:
    chat = chat_of_interaction(session, interaction_id)
    if chat.interaction.agent_id != agent_id or chat.interaction.state not in (State.CONNECTED, State.WRAP_UP):
        raise NotYourChat()
    return chat


def customer_messages_after(session: Session, chat: ChatSession, seen_upto: int) -> list[dict[str, Any]]:
    """The customer's messages newer than message ``seen_upto``, oldest first."""
    rows = session.execute(select(ChatMessage, Attachment).outerjoin(Attachment, Attachment.id ==
                                                                     ChatMessage.attachment_id)
                           .where(ChatMessage.chat_id == chat.id, ChatMessage.sender == "customer",
                                  ChatMessage.id > seen_upto).order_by(ChatMessage.id)).all()
    return [message_dict(m, a) for m, a in rows]


def post_agent_message(session: Session, chat_config, interaction_id: int, agent_id: int, *, client_id: str,
                       text: Any, attachment_id: int | None = None, seen_upto: int | None = None) -> dict[str, Any]:
    """Store an agent's message in the chat they are connected to and announce it to the customer.
    Idempotent by client id (a resend of a stored message returns it, whatever ``seen_upto`` says).
    ``seen_upto``: the id of the newest customer message the agent had seen when writing (0: none);
    when the customer wrote after it, NewerCustomerMessages is raised and nothing is stored, so the
    agent reviews before answering. None skips the check (callers that are not a person typing).
    Raises ChatNotFound, NotYourChat, ChatEnded, MessageInvalid, NewerCustomerMessages. Commits."""
    chat = _agents_chat(session, interaction_id, agent_id)
    if chat.ended_at is not None:
        raise ChatEnded()
    body = clean_text(text, chat_config.max_message_chars)
    if seen_upto is not None and _CLIENT_ID.match(client_id or ""):
        stored = session.scalar(select(ChatMessage.id).where(
            ChatMessage.chat_id == chat.id, ChatMessage.sender == "agent", ChatMessage.client_id == client_id))
        if stored is None:
            newer = customer_messages_after(session, chat, seen_upto)
            if newer:
                raise NewerCustomerMessages(newer)
    data, _created = _store(session, chat, sender="agent", client_id=client_id, body=body,
                            attachment_id=attachment_id, agent_id=agent_id)
    return data


def mark_read(session: Session, interaction_id: int, *, reader: str, upto_id: int,
              agent_id: int | None = None, chat: ChatSession | None = None) -> int:
    """Record that ``reader`` (customer | agent) has seen every message up to ``upto_id`` (marks only move
    forward) and announce it. Returns the mark. Raises NotYourChat for an agent not on the chat. Commits."""
    if reader == "agent":
        chat = _agents_chat(session, interaction_id, agent_id)
    elif chat is None or chat.interaction_id != interaction_id:
        raise NotYourChat()
    last = session.scalar(select(ChatMessage.id).where(ChatMessage.chat_id == chat.id)
                          .order_by(ChatMessage.id.desc()).limit(1)) or 0
    upto = max(0, min(int(upto_id), last))
    field = "agent_read_upto" if reader == "agent" else "customer_read_upto"
    if upto > getattr(chat, field):
        setattr(chat, field, upto)
        realtime.after_commit(session, "chat.read", _event(chat, reader=reader, upto=upto))
        session.commit()
    return getattr(chat, field)


def typing(interaction_id: int, *, sender: str, on: bool, agent_id: int | None = None) -> None:
    """Announce that ``sender`` (customer | agent) started or stopped typing. Not stored."""
    realtime.publish("chat.typing", {"interaction_id": interaction_id, "sender": sender, "on": bool(on),
                                     "agent_id": agent_id})


# ------------------------------------------------------------------------------------ ending

def _end(session: Session, chat: ChatSession, reason: str, at: datetime) -> None:
    chat.ended_at, chat.end_reason = at, reason


def convert_to_email_case(session: Session, desk_config, chat: ChatSession, *, reason: str, base_url: str,
                          now: datetime | None = None) -> Interaction | None:
    """End a chat no agent answered and keep what the customer wrote as an email case in the same queue,
    announced to the customer by email. Idempotent: a second call returns the same case. Returns None
    (and just ends the chat) when the customer wrote nothing. Commits."""
    now = now or utcnow()
    if chat.case_interaction_id is not None:
        return session.get(Interaction, chat.case_interaction_id)
    interaction = chat.interaction
    if interaction.state in (State.CONNECTED, State.WRAP_UP, State.CLOSED, State.ABANDONED):
        raise ChatEnded()
    written = list(session.scalars(select(ChatMessage).where(ChatMessage.chat_id == chat.id,
                                                                     ChatMessage.sender == "customer")
                                          .order_by(ChatMessage.id)))
    final = State.ABANDONED if reason == "customer_left" and interaction.state != State.NEW else State.CLOSED
    rescind = getattr(routing.routing_service(), "rescind_offers_for_abandoned", None)
    if rescind is not None and interaction.state in (State.QUEUED, State.OFFERED):
        rescind(session, interaction)
    transition(session, interaction, final, actor="chat", reason=f"chat {reason}", at=now)
    _end(session, chat, reason, now)
    if not written:
        realtime.after_commit(session, "chat.ended", _event(chat, reason=reason, case_reference=None))
        session.commit()
        return None
    case = _create_case(session, chat, written, reason, now)
    with force_locale(interaction.language):
        record_email(session, to=chat.visitor_email, kind="chat_case", customer_id=case.customer_id,
                     subject=_("Your chat is now request %(reference)s", reference=case_reference(case)),
                     body=_("We could not answer your chat in time, so we kept your messages as request "
                            "%(reference)s. We will reply to this address.\n\n%(transcript)s",
                            reference=case_reference(case), transcript=transcript_text(session, chat)))
    realtime.after_commit(session, "chat.ended", _event(chat, reason=reason, case_reference=case_reference(case)))
    routing.enqueue(session, case, interaction.queue or "general", actor="chat")
    session.commit()
    return case


def _create_case(session: Session, chat: ChatSession, written: list[ChatMessage], reason: str,
                 now: datetime) -> Interaction:
    interaction = chat.interaction
    customer_id = interaction.customer_id
    if customer_id is None:  # try again (a prospect now, unless several customers share the address,
        # in which case the agent links the right one; the reply address is on the case either way)
        customer_id = identify(session, email=chat.visitor_email, name=chat.visitor_name,
                               create_prospect=True).customer_id
    case = create_interaction(session, channel="email", actor="chat", external_ref=f"chat-case:{chat.id}",
                              customer_id=customer_id, language=interaction.language,
                              subject=interaction.subject, at=now,
                              attributes={"source": "chat", "chat_interaction_id": interaction.id,
                                          "reason": reason, "reply_to": chat.visitor_email})
    case.attributes = {**case.attributes, "reference": case_reference(case)}
    session.add(CaseMessage(interaction_id=case.id, author="customer", created_at=now,
                            body="\n\n".join(m.body for m in written if m.body)
                            or "(" + ", ".join(str(m.attachment_id) for m in written) + ")"))
    for message in written:
        if message.attachment_id:
            session.get(Attachment, message.attachment_id).interaction_id = case.id
    chat.case_interaction_id = case.id
    return case


def customer_leaves(session: Session, desk_config, chat: ChatSession, *, base_url: str,
                    now: datetime | None = None) -> Interaction | None:
    """The customer closed the chat (or did not come back after a drop). Waiting or offline: their
    messages become an email case. With an agent: the chat ends and the agent wraps up. Commits."""
    now = now or utcnow()
    if chat.ended_at is not None:
        return session.get(Interaction, chat.case_interaction_id) if chat.case_interaction_id else None
    if chat.interaction.state in (State.NEW, State.QUEUED, State.OFFERED):
        return convert_to_email_case(session, desk_config, chat, reason="customer_left", base_url=base_url,
                                     now=now)
    with force_locale(chat.interaction.language):
        _system_message(session, chat, _("The customer has left the chat."))
    if chat.interaction.state == State.CONNECTED:
        transition(session, chat.interaction, State.WRAP_UP, actor="customer", reason="customer left", at=now)
    _end(session, chat, "customer_left", now)
    realtime.after_commit(session, "chat.ended", _event(chat, reason="customer_left", case_reference=None))
    session.commit()
    return None


def end_by_agent(session: Session, interaction_id: int, agent_id: int, *, now: datetime | None = None) -> None:
    """The agent closes the conversation: the customer is told, the agent goes to wrap-up. Commits."""
    now = now or utcnow()
    chat = _agents_chat(session, interaction_id, agent_id)
    if chat.ended_at is None:
        with force_locale(chat.interaction.language):
            _system_message(session, chat, _("The agent has ended the chat. Thank you for contacting us."))
        _end(session, chat, "agent_ended", now)
        realtime.after_commit(session, "chat.ended", _event(chat, reason="agent_ended", case_reference=None))
    if chat.interaction.state == State.CONNECTED:
        transition(session, chat.interaction, State.WRAP_UP, actor=f"staff:{agent_id}", reason="chat ended", at=now)
    session.commit()


def transfer_chat(session: Session, interaction_id: int, agent_id: int, *, queue: str, note: str = "") -> None:
    """Hand the chat to another queue; the next agent sees the whole history. Commits."""
    chat = _agents_chat(session, interaction_id, agent_id)
    if queue not in {q.name for q in _queues(session)}:
        raise MessageInvalid("unknown_queue")
    with force_locale(chat.interaction.language):
        _system_message(session, chat, _("You are being transferred to a colleague. Please wait a moment."))
    routing.transfer(session, chat.interaction, queue, actor=f"staff:{agent_id}", note=note)
    session.commit()


def _queues(session: Session):
    from flask import current_app

    return current_app.extensions["desk.config"].routing.queues


def transcript_text(session: Session, chat: ChatSession) -> str:
    """The conversation as plain text (never HTML), one line per message, UTC times."""
    lines = []
    for m in history(session, chat):
        who = {"customer": chat.visitor_name, "agent": _("Agent"), "system": "-"}[m["sender"]]
        extra = f" [{m['attachment']['filename']}]" if m["attachment"] else ""
        lines.append(f"[{m['at'][11:16]} UTC] {who}: {m['body']}{extra}")
    return "\n".join(lines)


def send_transcript(session: Session, chat: ChatSession) -> None:
    """Email the transcript to the address the chat was started with (only that address). Commits."""
    with force_locale(chat.interaction.language):
        record_email(session, to=chat.visitor_email, kind="transcript", customer_id=chat.customer_id,
                     subject=_("Your chat transcript"), body=transcript_text(session, chat))
    session.commit()


def waiting_too_long(chat: ChatSession, max_wait_s: int, now: datetime) -> bool:
    """True when nobody answered within ``max_wait_s`` (offline chats count from their start)."""
    if chat.ended_at is not None or chat.interaction.state not in (State.NEW, State.QUEUED):
        return False
    return now - chat.created_at >= timedelta(seconds=max_wait_s)


def sweep_unanswered(session: Session, desk_config, *, base_url: str, now: datetime | None = None) -> list[int]:
    """Turn every chat no agent answered in time into an email case. Returns the chat interaction ids."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=desk_config.chat.max_wait_s)
    stale = session.scalars(select(ChatSession).join(Interaction, Interaction.id == ChatSession.interaction_id)
                            .where(ChatSession.ended_at.is_(None), ChatSession.created_at <= cutoff,
                                   Interaction.state.in_([State.NEW, State.QUEUED]))).all()
    done = []
    for chat in stale:
        convert_to_email_case(session, desk_config, chat, reason="no_agent", base_url=base_url, now=now)
        done.append(chat.interaction_id)
    return done
