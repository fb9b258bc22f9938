"""The quarantine: messages stored but not (yet) understood. Admins see them, retry them (after a fix
or a config change) or release them (limits lifted; an unparseable message goes on a case as
readable text with the original attached). Nothing here ever deletes a message."""
from __future__ import annotations

from email import policy
from email.parser import BytesParser

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.channels.email.charsets import decode_header_value
from app.channels.email.ingest import IngestResult, process_inbound
from app.channels.email.models import InboundEmail, InboundStatus

PREVIEW_HEADERS = ("From", "To", "Cc", "Subject", "Date", "Message-ID", "Content-Type")


def reason_labels() -> dict[str, str]:
    return {
        "no_headers": _l("Not an email (no header fields)"),
        "too_many_parts": _l("Too many MIME parts"),
        "too_deep": _l("MIME nesting too deep"),
        "broken_mime": _l("Broken MIME structure"),
        "too_large": _l("Message too large"),
        "too_many_attachments": _l("Too many attachments"),
        "unmatched_bounce": _l("Bounce for a message we did not send"),
        "processing_error": _l("Error while processing"),
    }


def list_quarantined(session: Session, *, limit: int = 200, offset: int = 0) -> list[InboundEmail]:
    return list(session.scalars(select(InboundEmail).where(InboundEmail.status == InboundStatus.QUARANTINED)
                                .order_by(InboundEmail.received_at.desc(), InboundEmail.id.desc())
                                .limit(limit).offset(offset)))


def header_preview(row: InboundEmail) -> list[tuple[str, str]]:
    """A few decoded headers for the admin page (header-only parse: safe on hostile bytes)."""
    headers = BytesParser(policy=policy.compat32).parsebytes(row.raw[:256 * 1024], headersonly=True)
    shown = []
    for name in PREVIEW_HEADERS:
        value = headers.get(name)
        if value is not None:
            shown.append((name, decode_header_value(str(value))[:500]))
    return shown


def retry(session: Session, desk_config, inbound_id: int, *, secret: str, staff_id: int | None,
          release: bool = False) -> IngestResult:
    """Process a quarantined message again (``release``: leniently). Commits."""
    return process_inbound(session, desk_config, inbound_id, secret=secret, lenient=release, staff_id=staff_id)
