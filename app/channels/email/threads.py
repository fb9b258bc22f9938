"""Which case an inbound message belongs to (pure).

Order, from strongest to weakest evidence:
1. tokens we minted -- a ``reply+<token>@`` recipient, or one of our own Message-IDs in In-Reply-To or
   References (signed with the desk's secret, so they cannot be forged);
2. In-Reply-To naming a message we hold;
3. References, newest (last) first;
4. the case tag ``[#C-1234]`` in the subject -- only when the sender is the case's customer or on
   its CC, so nobody can inject mail into another customer's case by typing a number.
"""
from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

TAG = re.compile(r"\[#C-(\d{1,12})\]")
_TOKEN = re.compile(r"^c(\d{1,12})-([0-9a-f]{12})$")
_OUR_ID = re.compile(r"^desk\.(c\d{1,12}-[0-9a-f]{12})\.[0-9a-z]+@", re.IGNORECASE)
_REPLY_LOCAL = re.compile(r"^reply\+(c\d{1,12}-[0-9a-f]{12})$", re.IGNORECASE)


@dataclass(frozen=True)
class CaseRef:
    interaction_id: int
    customer_addresses: frozenset[str]
    cc: frozenset[str]


class ThreadLookup(Protocol):
    def case_for_message_id(self, message_id: str) -> int | None: ...

    def case(self, interaction_id: int) -> CaseRef | None: ...


@dataclass(frozen=True)
class ThreadMatch:
    interaction_id: int
    via: str  # reply_token | our_message_id | in_reply_to | references | subject_tag


def case_reference(interaction_id: int) -> str:
    return f"C-{interaction_id}"


def case_tag(interaction_id: int) -> str:
    return f"[#{case_reference(interaction_id)}]"


def mint_token(secret: str, interaction_id: int) -> str:
    mac = hmac.new(secret.encode(), f"email-case:{interaction_id}".encode(), hashlib.sha256).hexdigest()[:12]
    return f"c{interaction_id}-{mac}"


def read_token(secret: str, token: str) -> int | None:
    """The case id a token names, or None when it is malformed or not signed by us."""
    match = _TOKEN.match(token.lower())
    if not match:
        return None
    interaction_id = int(match.group(1))
    return interaction_id if hmac.compare_digest(mint_token(secret, interaction_id), token.lower()) else None


def mint_message_id(secret: str, interaction_id: int, domain: str, nonce: str) -> str:
    """A Message-ID (without brackets) that names its case."""
    return f"desk.{mint_token(secret, interaction_id)}.{nonce.lower()}@{domain}"


def reply_address(secret: str, interaction_id: int, domain: str) -> str:
    return f"reply+{mint_token(secret, interaction_id)}@{domain}"


def with_tag(subject: str, interaction_id: int) -> str:
    """``subject`` carrying this case's tag exactly once (other cases' tags are left alone)."""
    tag = case_tag(interaction_id)
    return subject if tag in subject else f"{subject.strip()} {tag}".strip()


def _tokens(secret: str, recipients: Iterable[str], ids: Iterable[str]) -> Iterable[int]:
    for address in recipients:
        match = _REPLY_LOCAL.match(address.rpartition("@")[0])
        if match and (found := read_token(secret, match.group(1))) is not None:
            yield found
    for message_id in ids:
        match = _OUR_ID.match(message_id)
        if match and (found := read_token(secret, match.group(1))) is not None:
            yield found


def cases_named(recipients: Iterable[str], ids: Iterable[str], subject: str) -> set[int]:
    """Every case number the message names -- in reply tokens and our Message-IDs (signed or not) and
    in subject tags: all ``find_case`` may look a case up by."""
    named = {int(number) for number in TAG.findall(subject or "")}
    tokens = [m.group(1) for m in (_REPLY_LOCAL.match(a.rpartition("@")[0]) for a in recipients) if m]
    tokens += [m.group(1) for m in (_OUR_ID.match(i) for i in ids) if m]
    named.update(int(_TOKEN.match(token.lower()).group(1)) for token in tokens)
    return named


def find_case(*, secret: str, lookup: ThreadLookup, sender: str, recipients: list[str], in_reply_to: list[str],
              references: list[str], subject: str) -> ThreadMatch | None:
    """The case this message continues, or None for a new case."""
    newest_first = list(reversed(references))
    for via, found in (("reply_token", _tokens(secret, recipients, [])),
                       ("our_message_id", _tokens(secret, [], in_reply_to + newest_first))):
        for interaction_id in found:
            if lookup.case(interaction_id) is not None:
                return ThreadMatch(interaction_id, via)
    for ids, via in ((in_reply_to, "in_reply_to"), (newest_first, "references")):
        for message_id in ids:
            found = lookup.case_for_message_id(message_id)
            if found is not None:
                return ThreadMatch(found, via)
    sender = sender.lower()
    for number in TAG.findall(subject or ""):
        case = lookup.case(int(number))
        if case is not None and (sender in case.customer_addresses or sender in case.cc):
            return ThreadMatch(case.interaction_id, "subject_tag")
    return None
