"""Reading an inbound attachment's bytes for staff (access is checked by the caller).

An attachment is stored once: in the raw message it came in (``InboundEmail.raw``, kept before parsing
in any case). Its row says where (``EmailAttachment.mime_part``) and the bytes are decoded from the raw
message when they are asked for -- downloads are rare next to ingest, which then never decodes or
writes an attachment a second time. Rows stored before that hold their decoded bytes in ``content``.
"""
from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.channels.email.models import EmailAttachment, EmailMessage, InboundEmail
from app.channels.email.parse import attachment_bytes

log = logging.getLogger(__name__)


class AttachmentUnavailable(Exception):
    """The attachment's bytes cannot be served; ``reason``: ``too_large`` or ``blocked_type`` (withheld
    at ingest), ``erased`` (its location was erased with the customer's data), ``missing`` (the raw
    message is gone or no longer holds the part)."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


def attachment_content(session: Session, attachment: EmailAttachment) -> bytes:
    """The attachment's decoded bytes, as received. Raises AttachmentUnavailable."""
    if attachment.withheld:
        raise AttachmentUnavailable(attachment.withheld)
    if attachment.mime_part is None:
        if attachment.content is None:
            raise AttachmentUnavailable("erased")
        return attachment.content  # stored before attachments were read from the raw message
    raw = session.scalar(select(InboundEmail.raw).join(EmailMessage, EmailMessage.inbound_id == InboundEmail.id)
                         .where(EmailMessage.id == attachment.message_id))
    if raw is None:
        raise AttachmentUnavailable("missing")
    try:
        return attachment_bytes(raw, attachment.mime_part)
    except LookupError:
        log.error("email attachment %s: no MIME part %r in its raw message", attachment.id, attachment.mime_part)
        raise AttachmentUnavailable("missing") from None
