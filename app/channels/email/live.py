"""What the console sees of an email case live: the message as the composer shows it, and the
``email.message`` event announced (after the ingest commits) when a customer's email lands on a case
an agent holds, so their composer shows it at once and its newer-message guard counts it."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app import realtime
from app.channels.email.models import EmailMessage
from app.interactions.models import Interaction

EVENT = "email.message"
TEXT_MAX = 20_000  # characters of each message's text sent to the composer (the case page has all)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def message_dict(message: EmailMessage) -> dict[str, Any]:
    """One message as plain text for the console's composer (the case page shows the sanitised HTML)."""
    return {"id": message.id, "direction": message.direction, "kind": message.kind, "status": message.status,
            "from": message.from_address, "from_name": message.from_name, "subject": message.subject,
            "text": (message.text_body or "")[:TEXT_MAX], "at": _iso(message.sent_at or message.created_at),
            "send_after": _iso(message.send_after)}


def announce_inbound(session: Session, interaction: Interaction, message: EmailMessage) -> None:
    """Queue ``email.message`` for the agent holding ``interaction`` (none: nobody to tell; a re-opened
    case is offered afresh). Delivered only if the ingest transaction commits. Does not commit."""
    if interaction.agent_id is None:
        return
    session.flush()  # the message's id and timestamps
    realtime.after_commit(session, EVENT, {"interaction_id": interaction.id, "agent_id": interaction.agent_id,
                                           "message": message_dict(message)})
