"""When the desk may acknowledge a message automatically (pure rules).

Loop protection, exactly as issue 9 lists it: never answer automatic mail (``Auto-Submitted`` other
than ``no``, ``X-Autoreply``, ``X-Autorespond``, ``X-Auto-Response-Suppress``, ``X-Loop``, ``Precedence``
bulk/list/junk/auto_reply), mailer-daemons, postmaster, no-reply addresses, our own addresses or
bounces; and at most N acknowledgements per sender per window. Our own automatic mail carries the
headers in ``OUR_AUTOMATIC_HEADERS`` so other systems do not answer it either.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

OUR_AUTOMATIC_HEADERS = {
    "Auto-Submitted": "auto-replied",
    "Precedence": "auto_reply",
    "X-Auto-Response-Suppress": "All",
}
_PRESENCE_HEADERS = ("x-autoreply", "x-autorespond", "x-auto-response-suppress", "x-loop")
_BULK_PRECEDENCE = {"bulk", "list", "junk", "auto_reply"}
_DAEMON_LOCALS = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|mailerdaemon)$", re.IGNORECASE)
_NO_REPLY_LOCALS = re.compile(r"^(no|do[-_.]?not)[-_.]?reply([-_.+].*)?$|^noreply.*$|^donotreply.*$", re.IGNORECASE)
_BOUNCE_LOCALS = re.compile(r"^bounces?([-_.+].*)?$", re.IGNORECASE)


def automatic_reasons(headers: Mapping[str, list[str]]) -> list[str]:
    """Why the message counts as automatic (header names), empty when a person sent it.
    ``headers`` maps lower-cased names to values."""
    reasons = []
    for value in headers.get("auto-submitted", []):
        if value.split(";", 1)[0].strip().lower() != "no":
            reasons.append("auto-submitted")
            break
    reasons += [name for name in _PRESENCE_HEADERS if name in headers]
    if any(v.strip().lower() in _BULK_PRECEDENCE for v in headers.get("precedence", [])):
        reasons.append("precedence")
    return reasons


def address_reason(address: str | None, own_addresses: Iterable[str] = (),
                   reply_domains: Iterable[str] = ()) -> str | None:
    """Why no automatic mail may go to ``address`` (None when it may)."""
    if not address or "@" not in address:
        return "no_address"
    address = address.strip().lower()
    local, _, domain = address.rpartition("@")
    if address in {a.lower() for a in own_addresses}:
        return "own_address"
    if local.startswith("reply+") and domain in {d.lower() for d in reply_domains}:
        return "own_address"
    if _DAEMON_LOCALS.match(local):
        return "mailer_daemon" if "daemon" in local else "postmaster"
    if _NO_REPLY_LOCALS.match(local):
        return "no_reply"
    if _BOUNCE_LOCALS.match(local):
        return "bounce_address"
    return None


@dataclass(frozen=True)
class AckDecision:
    send: bool
    reason: str  # "ok" or why not


def decide_acknowledgement(*, enabled: bool, headers: Mapping[str, list[str]], is_bounce: bool,
                           addresses: Iterable[str | None], own_addresses: Iterable[str],
                           reply_domains: Iterable[str], sent_in_window: int, max_per_window: int,
                           new_case: bool) -> AckDecision:
    """Whether to acknowledge this inbound message. ``addresses`` are the sender and the address the
    acknowledgement would go to (Reply-To); every one must be acceptable."""
    if not enabled:
        return AckDecision(False, "disabled")
    if not new_case:
        return AckDecision(False, "existing_case")
    if is_bounce:
        return AckDecision(False, "bounce")
    auto = automatic_reasons(headers)
    if auto:
        return AckDecision(False, f"automatic:{auto[0]}")
    own = list(own_addresses)
    domains = list(reply_domains)
    for address in addresses:
        reason = address_reason(address, own, domains)
        if reason:
            return AckDecision(False, reason)
    if sent_in_window >= max_per_window:
        return AckDecision(False, "rate_limited")
    return AckDecision(True, "ok")
