"""Evidence files on a complaint: checked, stored with the complaint, listed and read back.

An upload is hostile until checked: the type is read from the bytes (a renamed .exe is no PNG), the size
and the number of files are capped by config (``complaints.evidence_*``), and the name is reduced to a
plain file name. Storage is the database (see ``ComplaintEvidence`` for why). Serving, and who may, is
the views' business (``access.can_access``).
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.complaints.models import Complaint, ComplaintEvidence
from app.complaints.service import ComplaintError, record_event, staff_actor
from app.db import utcnow

TEXT_SAMPLE_BYTES = 4096


class EvidenceRejected(ComplaintError):
    """A file the desk will not keep; the message names the file and the reason."""


@dataclass(frozen=True)
class EvidenceUpload:
    filename: str
    data: bytes


def sniff_type(data: bytes) -> str | None:
    """The content type the bytes themselves show (None: none the desk knows)."""
    signatures = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF87a", "image/gif"),
                  (b"GIF89a", "image/gif"), (b"%PDF-", "application/pdf"))
    for magic, content_type in signatures:
        if data.startswith(magic):
            return content_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    sample = data[:TEXT_SAMPLE_BYTES]
    if data and b"\x00" not in sample:
        try:
            sample.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(sample) - 3:  # not just a character cut at the sample's end
                return None
        return "text/plain"
    return None


def safe_filename(name: str) -> str:
    """A plain file name: no folders, no control characters, at most 200 characters."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = "".join(ch for ch in unicodedata.normalize("NFC", base) if unicodedata.category(ch)[0] != "C")
    base = base.strip(" .")[:200]
    return base or "evidence"


def files_of(session: Session, complaint_id: int) -> list[ComplaintEvidence]:
    return list(session.scalars(select(ComplaintEvidence).where(ComplaintEvidence.complaint_id == complaint_id)
                                .order_by(ComplaintEvidence.id)))


def get_file(session: Session, complaint_id: int, evidence_id: int) -> ComplaintEvidence | None:
    """The file, only if it belongs to that complaint."""
    row = session.get(ComplaintEvidence, evidence_id)
    return row if row is not None and row.complaint_id == complaint_id else None


def _check(upload: EvidenceUpload, config) -> tuple[str, str]:
    name = safe_filename(upload.filename)
    if not upload.data:
        raise EvidenceRejected(f"{name}: the file is empty")
    if len(upload.data) > config.evidence_max_bytes:
        raise EvidenceRejected(f"{name}: larger than {config.evidence_max_bytes // 1024} KB")
    content_type = sniff_type(upload.data)
    if content_type not in config.evidence_types:
        allowed = ", ".join(t.split("/")[-1] for t in config.evidence_types)
        raise EvidenceRejected(f"{name}: not an accepted type ({allowed})")
    return name, content_type


def attach(session: Session, config, complaint: Complaint, uploads: list[EvidenceUpload], *,
           actor_id: int | None, at: datetime | None = None) -> list[ComplaintEvidence]:
    """Check and store the files (all or none) with an audit row; a file already on the complaint is not
    stored twice. Raises EvidenceRejected. Does not commit."""
    if not uploads:
        return []
    at = at or utcnow()
    settings = config.complaints
    checked = [(upload, *_check(upload, settings)) for upload in uploads]
    held = session.scalar(select(func.count(ComplaintEvidence.id))
                          .where(ComplaintEvidence.complaint_id == complaint.id)) or 0
    known = set(session.scalars(select(ComplaintEvidence.sha256).where(ComplaintEvidence.complaint_id == complaint.id)))
    rows = []
    for upload, name, content_type in checked:
        digest = hashlib.sha256(upload.data).hexdigest()
        if digest in known:
            continue
        known.add(digest)
        rows.append(ComplaintEvidence(complaint_id=complaint.id, filename=name, content_type=content_type,
                                      size_bytes=len(upload.data), sha256=digest, data=upload.data,
                                      uploaded_by_id=actor_id, uploaded_at=at))
    if held + len(complaint.evidence or []) + len(rows) > settings.evidence_max_files:
        raise EvidenceRejected(f"at most {settings.evidence_max_files} files on one complaint")
    if not rows:
        return []
    session.add_all(rows)
    session.flush()
    record_event(session, complaint, "evidence", actor=staff_actor(actor_id), actor_id=actor_id, at=at,
                 note=", ".join(r.filename for r in rows),
                 data={"files": [{"id": r.id, "name": r.filename, "type": r.content_type, "size": r.size_bytes}
                                 for r in rows]})
    return rows
