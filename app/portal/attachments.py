"""Attachments from customers and agents: checked by content (not by the name or the declared type),
limited in size and count, stored with their hash."""
from __future__ import annotations

import hashlib
import re
import unicodedata

from sqlalchemy.orm import Session

from app.portal.config import AttachmentLimits
from app.portal.models import Attachment

# Leading bytes of each accepted type; a file is what its bytes say, whatever its name claims.
_SIGNATURES: list[tuple[bytes, int, str]] = [
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"%PDF-", 0, "application/pdf"),
]
_EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif", "image/webp": ".webp",
               "application/pdf": ".pdf"}


class AttachmentRejected(ValueError):
    """The file was refused; ``code`` is one of: empty, too_large, type_not_allowed, too_many."""

    def __init__(self, code: str, detail: str = ""):
        self.code = code
        super().__init__(f"{code}: {detail}" if detail else code)


def sniff_type(data: bytes) -> str | None:
    """The media type the bytes really are (one of the accepted kinds), or None."""
    for magic, offset, media_type in _SIGNATURES:
        if data[offset:offset + len(magic)] == magic:
            return media_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def safe_filename(name: str | None, media_type: str) -> str:
    """A display/download name with no path, control characters or quotes, ending in the real extension."""
    base = unicodedata.normalize("NFC", (name or "").replace("\\", "/").rsplit("/", 1)[-1])
    base = re.sub(r'[\x00-\x1f\x7f"\';<>]', "", base).strip(" .")
    stem = base.rsplit(".", 1)[0] if "." in base else base
    return (stem[:120] or "attachment") + _EXTENSIONS[media_type]


def check_count(count: int, limits: AttachmentLimits) -> None:
    if count > limits.max_files:
        raise AttachmentRejected("too_many", f"at most {limits.max_files} files")


def store_attachment(session: Session, *, data: bytes, filename: str | None, limits: AttachmentLimits,
                     uploaded_by: str, customer_id: int | None = None,
                     interaction_id: int | None = None) -> Attachment:
    """Check and add one attachment (flushed, not committed). Raises AttachmentRejected."""
    if not data:
        raise AttachmentRejected("empty")
    if len(data) > limits.max_bytes:
        raise AttachmentRejected("too_large", f"{len(data)} > {limits.max_bytes} bytes")
    media_type = sniff_type(data)
    if media_type is None or media_type not in limits.types:
        raise AttachmentRejected("type_not_allowed", str(media_type))
    row = Attachment(customer_id=customer_id, interaction_id=interaction_id,
                     filename=safe_filename(filename, media_type), content_type=media_type, size_bytes=len(data),
                     sha256=hashlib.sha256(data).hexdigest(), data=data, uploaded_by=uploaded_by)
    session.add(row)
    session.flush()
    return row
