"""Recognising delivery failures and what they say (pure).

A bounce is a ``multipart/report; report-type=delivery-status``, or mail from a mailer-daemon /
postmaster, or mail with the null Return-Path ``<>``. It is matched to its case through the original
Message-ID inside it (the returned message or its headers, else any Message-ID line in the text).
A 5.x.x status is permanent: the address is marked undeliverable.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from app.channels.email.parse import ParsedEmail, parse_message_ids

_STATUS = re.compile(r"^Status:\s*([245]\.\d{1,3}\.\d{1,3})", re.IGNORECASE | re.MULTILINE)
_ANY_STATUS = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
_SMTP_CODE = re.compile(r"^\s*([45]\d\d)[\s-]", re.MULTILINE)
_RECIPIENT = re.compile(r"^(?:Final|Original)-Recipient:\s*(?:rfc822;)?\s*<?([^\s<>;]+@[^\s<>;]+)>?",
                        re.IGNORECASE | re.MULTILINE)
_DIAGNOSTIC = re.compile(r"^Diagnostic-Code:\s*(?:smtp;)?\s*(.+)$", re.IGNORECASE | re.MULTILINE)
_MESSAGE_ID_LINE = re.compile(r"^\s*Message-ID:\s*(<[^>]+>)", re.IGNORECASE | re.MULTILINE)
_DAEMON = re.compile(r"^(mailer-daemon|postmaster|mail-daemon)@", re.IGNORECASE)


@dataclass(frozen=True)
class BounceReport:
    original_message_ids: list[str]
    status: str | None  # e.g. "5.1.1"
    recipient: str | None
    diagnostic: str
    definite: bool  # a delivery-status report or a mailer-daemon, not merely a null Return-Path

    @property
    def permanent(self) -> bool:
        return bool(self.status and self.status.startswith("5."))


def looks_like_bounce(parsed: ParsedEmail) -> bool:
    return (parsed.content_type == "multipart/report" and (parsed.report_type or "").lower() == "delivery-status"
            ) or bool(_DAEMON.match(parsed.from_address)) or parsed.return_path == ""


def analyse_bounce(parsed: ParsedEmail) -> BounceReport | None:
    """The bounce's report, or None when the message is not a bounce."""
    if not looks_like_bounce(parsed):
        return None
    report = parsed.delivery_status or ""
    text = parsed.text or ""
    status = _first(_STATUS, report) or _first(_ANY_STATUS, report) or _first(_ANY_STATUS, text)
    if status is None:
        code = _first(_SMTP_CODE, text)
        status = f"{code[0]}.0.0" if code else None
    ids = list(parsed.embedded_message_ids)
    ids += [i for m in _MESSAGE_ID_LINE.findall(text) for i in parse_message_ids(m) if i not in ids]
    recipient = _first(_RECIPIENT, report) or _first(_RECIPIENT, text)
    diagnostic = _first(_DIAGNOSTIC, report) or ""
    definite = parsed.content_type == "multipart/report" or bool(_DAEMON.match(parsed.from_address))
    return BounceReport(original_message_ids=ids, status=status, recipient=recipient.lower() if recipient else None,
                        diagnostic=diagnostic.strip()[:500], definite=definite)


def _first(pattern: re.Pattern, text: str) -> str | None:
    match = pattern.search(text)
    return match.group(1) if match else None
