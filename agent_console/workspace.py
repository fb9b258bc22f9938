"""The console's chat panel and email composer, on top of the chat channel (``app.channels.chat``) and
the email channel (``app.channels.email.outbound`` / ``templates``).

Every function first checks the interaction is this agent's open work (``service.own_work``), then
calls the channel's own function, and turns the channel's typed refusals into ``ChannelRefused`` with a
stable code for the browser. The channels announce what changes themselves: chat messages, typing,
read marks and endings reach the agent's ``/agent`` room from ``app.channels.chat_socket.fan_out``.

The chat panel and the email composer hold a reply when the customer wrote again while the agent was
typing: the browser says which customer message the agent had seen when they started writing
(``seen_upto``); newer ones make ``send_chat`` / ``send_email`` raise ``NewerCustomerMessages`` (with
the messages, nothing stored) until the agent has read them and sends again (or confirms).
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from agent_console.service import ConsoleError, own_work
from app.channels import chat
from app.channels.email import live, outbound
from app.channels.email.models import EmailMessage, EmailThread
from app.channels.email.templates import render
from app.channels.email.threads import case_reference
from app.collision import newer_customer_messages
from app.interactions.models import Interaction



class ChannelRefused(ConsoleError):
    """The chat or email channel refused the action; ``code`` is the channel's reason."""

    def __init__(self, code: str, message: str = ""):
        self.code = code
        super().__init__(message or code)


class NewerCustomerMessages(ConsoleError):
    """The customer wrote after the message the agent last saw; ``messages`` are the new ones."""

    code = "newer_messages"

    def __init__(self, messages: list[dict[str, Any]]):
        self.messages = messages
        super().__init__(f"{len(messages)} newer customer message(s)")

    def details(self) -> dict[str, Any]:
        return {"messages": self.messages}


def _of_channel(session: Session, agent_id: int, interaction_id: int, channel: str,
                states: tuple[str, ...] | None = None) -> Interaction:
    interaction = own_work(session, agent_id, interaction_id, **({"states": states} if states else {}))
    if interaction.channel != channel:
        raise ChannelRefused("wrong_channel", f"interaction {interaction_id} is {interaction.channel}")
    return interaction


# ---------------------------------------------------------------------------------------------- chat
def chat_view(session: Session, agent_id: int, interaction_id: int) -> dict[str, Any]:
    """The whole conversation (kept across transfers) and both read marks, for the chat panel."""
    _of_channel(session, agent_id, interaction_id, "chat")
    try:
        found = chat.chat_of_interaction(session, interaction_id)
    except chat.ChatError as exc:
        raise ChannelRefused(exc.code) from exc
    return {"messages": chat.history(session, found), "agent_read_upto": found.agent_read_upto,
            "customer_read_upto": found.customer_read_upto, "ended": found.ended_at is not None,
            "end_reason": found.end_reason}


def send_chat(session: Session, chat_config: Any, agent_id: int, interaction_id: int, *, client_id: str,
              text: str, seen_upto: int) -> dict[str, Any]:
    """Send the agent's message (idempotent by ``client_id``, so a resend after a network drop is one
    message). Held, with NewerCustomerMessages and nothing stored, when the customer wrote after
    message ``seen_upto`` (the panel shows them and the agent sends again, having seen them).
    Raises ChannelRefused (ended, empty, too_long, bad_client_id, forbidden...). Commits."""
    _of_channel(session, agent_id, interaction_id, "chat")
    try:
        return chat.post_agent_message(session, chat_config, interaction_id, agent_id, client_id=client_id,
                                       text=text, seen_upto=seen_upto)
    except chat.NewerCustomerMessages as exc:
        raise NewerCustomerMessages(exc.messages) from exc
    except chat.ChatError as exc:
        raise ChannelRefused(exc.code) from exc


def chat_typing(session: Session, agent_id: int, interaction_id: int, on: bool) -> None:
    """Tell the customer the agent is (no longer) typing. Not stored."""
    _of_channel(session, agent_id, interaction_id, "chat")
    chat.typing(interaction_id, sender="agent", on=on, agent_id=agent_id)


def chat_read(session: Session, agent_id: int, interaction_id: int, upto_id: int) -> int:
    """The agent has seen the conversation up to message ``upto_id``: the customer sees the read
    receipt. Marks only move forward; returns the mark. Commits."""
    _of_channel(session, agent_id, interaction_id, "chat")
    try:
        return chat.mark_read(session, interaction_id, reader="agent", upto_id=upto_id, agent_id=agent_id)
    except chat.ChatError as exc:
        raise ChannelRefused(exc.code) from exc


def end_chat(session: Session, agent_id: int, interaction_id: int) -> None:
    """The agent ends the conversation: the customer is told, the contact goes to wrap-up. Commits."""
    try:
        chat.end_by_agent(session, interaction_id, agent_id)
    except chat.ChatError as exc:
        raise ChannelRefused(exc.code) from exc


def transfer_chat(session: Session, agent_id: int, interaction_id: int, queue: str, note: str) -> None:
    """Hand the chat to a queue; the customer is told they are being transferred. Commits."""
    try:
        chat.transfer_chat(session, interaction_id, agent_id, queue=queue, note=note)
    except chat.ChatError as exc:
        raise ChannelRefused(exc.code) from exc


# ---------------------------------------------------------------------------------------------- email
def _thread(session: Session, interaction_id: int) -> EmailThread:
    thread = session.scalar(select(EmailThread).where(EmailThread.interaction_id == interaction_id))
    if thread is None:
        raise ChannelRefused("no_thread", f"interaction {interaction_id} has no email thread")
    return thread


_email_dict = live.message_dict


def _customer_messages(session: Session, thread_id: int) -> list[EmailMessage]:
    return list(session.scalars(select(EmailMessage).where(
        EmailMessage.thread_id == thread_id, EmailMessage.direction == "in", EmailMessage.kind == "customer")
        .order_by(EmailMessage.id)))


def email_view(session: Session, desk_config: Any, agent_id: int, interaction_id: int) -> dict[str, Any]:
    """The case's messages as text (the case page shows the sanitised HTML and attachments), the id of
    the newest customer message (the composer sends it back as ``seen_upto``) and the undo window."""
    _of_channel(session, agent_id, interaction_id, "email")
    thread = _thread(session, interaction_id)
    messages = list(session.scalars(select(EmailMessage).where(EmailMessage.thread_id == thread.id)
                                    .order_by(EmailMessage.id)))
    customer_ids = [m.id for m in messages if m.direction == "in" and m.kind == "customer"]
    return {"reference": case_reference(interaction_id), "subject": thread.subject or "",
            "customer_address": thread.customer_address, "messages": [_email_dict(m) for m in messages],
            "latest_customer_message_id": customer_ids[-1] if customer_ids else None,
            "undo_window_s": desk_config.email.outbound.undo_window_s}


def email_preview(session: Session, desk_config: Any, agent: Any, interaction_id: int, body: str) -> dict[str, str]:
    """The reply as the customer will receive it: the desk's ``reply`` template (in the case's
    language, an admin's edited version when there is one) around the agent's text."""
    interaction = _of_channel(session, agent.id, interaction_id, "email")
    thread = _thread(session, interaction_id)
    rendered = render(session, "reply", interaction.language, outbound.template_context(
        session, desk_config, interaction, thread, agent_name=agent.name, body=body))
    return {"subject": rendered.subject, "body": rendered.body}


def send_email(session: Session, desk_config: Any, agent: Any, interaction_id: int, *, body: str, cc: list[str],
               seen_upto: int | None, confirm: bool, secret: str) -> dict[str, Any]:
    """Schedule the agent's reply to leave after the undo window. Unless ``confirm``, refuses with
    NewerCustomerMessages when the customer wrote after message ``seen_upto``. Raises ChannelRefused
    (no_thread, no_recipient, undeliverable). Does not commit."""
    _of_channel(session, agent.id, interaction_id, "email")
    thread = _thread(session, interaction_id)
    customer = _customer_messages(session, thread.id)
    newer = set(newer_customer_messages(seen_upto, [m.id for m in customer]))
    if newer and not confirm:
        raise NewerCustomerMessages([_email_dict(m) for m in customer if m.id in newer])
    try:
        message = outbound.schedule_reply(session, desk_config, interaction_id, body=body, staff_id=agent.id,
                                          agent_name=agent.name, secret=secret, cc=cc)
    except outbound.AddressUndeliverable as exc:
        raise ChannelRefused("undeliverable", str(exc)) from exc
    except outbound.NoRecipient as exc:
        raise ChannelRefused("no_recipient", str(exc)) from exc
    return {"message": _email_dict(message), "undo_window_s": desk_config.email.outbound.undo_window_s}


def cancel_email(session: Session, agent_id: int, interaction_id: int, message_id: int) -> None:
    """Take back a reply still inside its undo window. Raises ChannelRefused("too_late"). Does not commit."""
    _of_channel(session, agent_id, interaction_id, "email")
    message = session.get(EmailMessage, message_id)
    if message is None or message.interaction_id != interaction_id:
        raise ChannelRefused("not_found", f"email message {message_id} is not on interaction {interaction_id}")
    try:
        outbound.cancel_outbound(session, message_id, staff_id=agent_id)
    except outbound.TooLateToCancel as exc:
        raise ChannelRefused("too_late", str(exc)) from exc


__all__ = ["ChannelRefused", "NewerCustomerMessages", "cancel_email", "chat_read", "chat_typing",
           "chat_view", "email_preview", "email_view", "end_chat", "send_chat", "send_email", "transfer_chat"]
