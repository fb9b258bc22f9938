"""Canned replies in the console: the desk's reply templates (``app.channels.email.templates``,
edited by admins at /admin/email/templates, and the ones admins added there, ``canned``) rendered in
the Jinja2 sandbox for one contact -- its customer and case, in the customer's language -- so the agent
gets text to edit, never to send blind.
Works for the email composer and the chat panel alike."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from agent_console.service import own_work
from agent_console.workspace import ChannelRefused
from app.channels import chat
from app.channels.email import canned, outbound, templates
from app.channels.email.models import EmailThread
from app.channels.email.routing import customer_info
from app.channels.email.threads import case_reference, case_tag
from app.interactions.models import Interaction


def choices(session: Session, language: str) -> list[dict[str, str]]:
    """The canned replies an agent can pick -- built-in and added -- labelled in the agent's UI language."""
    return canned.choices(session, language)


def _chat_context(session: Session, desk_config: Any, interaction: Interaction, agent_name: str) -> dict[str, Any]:
    """The same variables email templates see, for a chat (no mailbox, no email SLA)."""
    customer = customer_info(session, interaction.customer_id)
    try:
        visitor = chat.chat_of_interaction(session, interaction.id).visitor_name
    except chat.ChatNotFound:
        visitor = ""
    name = customer.name if customer is not None and not customer.is_prospect else visitor
    return {"customer": {"name": name, "language": interaction.language, "tier": customer.tier if customer else ""},
            "case": {"reference": case_reference(interaction.id), "tag": case_tag(interaction.id),
                     "subject": interaction.subject or "", "queue": interaction.queue or "", "expected_reply": ""},
            "desk": {"name": desk_config.desk.name}, "agent": {"name": agent_name}, "body": ""}


def render_for_contact(session: Session, desk_config: Any, agent: Any, interaction_id: int, key: str
                       ) -> dict[str, str]:
    """Canned reply ``key`` rendered for the agent's open contact ``interaction_id`` in the customer's
    language. Raises ConsoleError (not_your_work), ChannelRefused (unknown_template, wrong_channel,
    no_thread, broken_template). Reads only."""
    if not templates.is_canned(session, key):
        raise ChannelRefused("unknown_template", f"no canned reply {key[:40]!r}")
    interaction = own_work(session, agent.id, interaction_id)
    if interaction.channel == "email":
        thread = session.scalar(select(EmailThread).where(EmailThread.interaction_id == interaction.id))
        if thread is None:
            raise ChannelRefused("no_thread", f"interaction {interaction_id} has no email thread")
        context = outbound.template_context(session, desk_config, interaction, thread, agent_name=agent.name)
    elif interaction.channel == "chat":
        context = _chat_context(session, desk_config, interaction, agent.name)
    else:
        raise ChannelRefused("wrong_channel", f"interaction {interaction_id} is {interaction.channel}")
    try:
        rendered = templates.render(session, key, interaction.language, context)
    except KeyError as exc:  # an added reply deleted while the agent picked it
        raise ChannelRefused("unknown_template", f"no canned reply {key[:40]!r}") from exc
    except templates.TemplateProblem as exc:  # an added reply (no built-in text to fall back on) that broke
        raise ChannelRefused("broken_template", str(exc)) from exc
    return {"key": key, "language": interaction.language if interaction.language in templates.LANGUAGES else "en",
            "body": rendered.body.strip()}
