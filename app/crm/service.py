"""CRM services: identify who is contacting, the 360 view, create/change customers and orders, merge
duplicates, record survey answers.

Services take a Session and plain values and never commit: the caller (a channel adapter, a view, a job)
owns the transaction, so identification and the Interaction it belongs to are stored together.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from enum import StrEnum
from functools import cache
from typing import Any

from sqlalchemy import Integer, String, UniqueConstraint, bindparam, delete, func, literal, select, union_all, update
from sqlalchemy.orm import Session

from app.crm.config import CustomAttribute
from app.crm.errors import CustomerNotFound, DuplicateOrder, InvalidAttributes, MergeConflict
from app.crm.models import (
    Customer, CustomerConsent, CustomerContact, CustomerEmail, CustomerFeedback, CustomerKind, CustomerMerge,
    CustomerPhone, CustomerTag, CustomerValueSnapshot, Order, OrderLine, Shipment,
)
from app.crm.phones import try_normalise_phone
from app.crm.schemas import CustomerIn, CustomerPatch, OrderIn
from app.crm.view360 import customer_360  # noqa: F401  (re-exported: the one 360 entry point)
from app.db import utcnow
from app.extensions import db

TIER_RANK = {"vip": 0, "major": 1, "ordinary": 2, "small": 3}


# --- identification ------------------------------------------------------------------------------------

class MatchStatus(StrEnum):
    MATCHED = "matched"  # exactly one customer
    AMBIGUOUS = "ambiguous"  # several: the agent chooses, the desk never guesses
    NEW_PROSPECT = "new_prospect"  # nobody known: a prospect was created
    UNKNOWN = "unknown"  # nothing usable to identify by (anonymous caller id), or prospects not wanted


@dataclass
class Candidate:
    customer_id: int
    name: str
    tier: str
    kind: str
    organisation: str | None
    is_prospect: bool
    matched_on: list[str]
    contact_id: int | None = None
    contact_name: str | None = None
    language: str = "en"  # the customer's language, so a channel greeting them needs no second query


@dataclass
class Identification:
    status: MatchStatus
    customer_id: int | None = None
    candidates: list[Candidate] = field(default_factory=list)
    matched_on: list[str] = field(default_factory=list)
    contact_id: int | None = None
    phone: str | None = None
    email: str | None = None
    message_en: str = ""
    message_zh: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = str(self.status)
        return data


def identify(session: Session, *, phone: str | None = None, email: str | None = None,
             account_id: int | None = None, default_region: str = "CN", create_prospect: bool = True,
             name: str | None = None, language: str = "en", prospect_id: int | None = None) -> Identification:
    """Who is contacting: by portal account (authoritative), caller id / phone and email address.

    Promises: MATCHED only when exactly one customer agrees with every identifier that found anyone;
    AMBIGUOUS lists every candidate otherwise (customers and organisations whose contacts match);
    with nobody found, NEW_PROSPECT creates a prospect carrying the phone/email (when
    ``create_prospect``), else UNKNOWN. An unusable caller id ('anonymous') counts as no phone.
    ``prospect_id``: an id the caller reserved from the customers' sequence for a prospect; the
    prospect is then written with the caller's next flush (none here) and is the answer's one candidate.
    Does not commit."""
    e164 = try_normalise_phone(phone, default_region) if phone else None
    address = email.strip().lower() if email and "@" in email else None
    if account_id is not None:
        from app.portal.models import CustomerAccount

        owner = session.scalar(select(CustomerAccount.customer_id).where(CustomerAccount.id == account_id))
        if owner is not None:
            return _matched(session, owner, ["account"], None, e164, address)
    found: dict[int, Candidate] = {}
    sets: list[set[int]] = []
    if e164:
        sets.append(_collect(session, found, "phone", e164))
    if address:
        sets.append(_collect(session, found, "email", address))
    hits = [s for s in sets if s]
    if hits:
        agreed = set.intersection(*hits)
        if len(agreed) == 1:
            only = found[next(iter(agreed))]
            return _matched(session, only.customer_id, only.matched_on, only.contact_id, e164, address, only)
        ranked = sorted(found.values(), key=lambda c: (-len(c.matched_on), TIER_RANK.get(c.tier, 9), c.name))
        return Identification(MatchStatus.AMBIGUOUS, candidates=ranked, phone=e164, email=address,
                              message_en=f"{len(ranked)} customers match: choose the right one",
                              message_zh=f"有 {len(ranked)} 位客户匹配：请选择正确的客户")
    if not (e164 or address) or not create_prospect:
        return Identification(MatchStatus.UNKNOWN, phone=e164, email=address,
                              message_en="caller not identified", message_zh="未识别来电者")
    prospect = Customer(name=(name or e164 or address or "")[:200], is_prospect=True, tier="small",
                        language=language if language in ("en", "zh") else "en", attributes={})
    prospect.phones = [CustomerPhone(e164=e164)] if e164 else []
    prospect.emails = [CustomerEmail(email=address)] if address else []
    session.add(prospect)
    candidates = []
    if prospect_id is None:
        session.flush()
    else:
        prospect.id = prospect_id
        candidates = [Candidate(prospect_id, prospect.name, prospect.tier, prospect.kind or CustomerKind.INDIVIDUAL,
                                None, True, [], language=prospect.language)]
    return Identification(MatchStatus.NEW_PROSPECT, customer_id=prospect.id, phone=e164, email=address,
                          candidates=candidates, message_en="new contact: recorded as a prospect",
                          message_zh="新联系人：已记录为潜在客户")


@cache
def _match_stmt(via: str):
    """Customers whose own phone/email, or one of whose organisation contacts', is ``:value``; built once."""
    value = bindparam("value", type_=String)
    own_column, own_value, contact_value = {
        "phone": (CustomerPhone.customer_id, CustomerPhone.e164, CustomerContact.phone_e164),
        "email": (CustomerEmail.customer_id, CustomerEmail.email, CustomerContact.email)}[via]
    matches = union_all(
        select(own_column.label("customer_id"), literal(None, Integer).label("contact_id"),
               literal(None, String).label("contact_name")).where(own_value == value),
        select(CustomerContact.customer_id, CustomerContact.id, CustomerContact.name)
        .where(contact_value == value)).subquery()
    return select(matches, Customer.name, Customer.tier, Customer.kind, Customer.organisation,
                  Customer.is_prospect, Customer.language).join(Customer, Customer.id == matches.c.customer_id)


def identify_emails(session: Session, addresses: Iterable[str]) -> dict[str, Identification]:
    """Identify many email addresses at once (an email batch), in one query: address -> what
    ``identify(email=address)`` returns, for every address that matched exactly one customer.
    Addresses matching nobody or several are left out: the caller identifies those one by one, so a
    prospect is created (or the ambiguity reported) exactly as ``identify`` does. Does not commit."""
    wanted = {a: a.strip().lower() for a in addresses if a and "@" in a}
    if not wanted:
        return {}
    rows_by_value: dict[str, list] = {}
    for row in session.execute(_match_many_stmt(), {"values": sorted(set(wanted.values()))}):
        rows_by_value.setdefault(row.value, []).append(row)
    identified: dict[str, Identification] = {}
    for given, address in wanted.items():
        found: dict[int, Candidate] = {}
        ids = _gather(found, "email", rows_by_value.get(address, []))
        if len(ids) == 1:
            only = found[next(iter(ids))]
            identified[given] = _matched(session, only.customer_id, only.matched_on, only.contact_id, None,
                                         address, only)
    return identified


@cache
def _match_many_stmt():
    """``_match_stmt("email")`` for a list of addresses, each row carrying the address it matched; built once."""
    values = bindparam("values", type_=String, expanding=True)
    matches = union_all(
        select(CustomerEmail.email.label("value"), CustomerEmail.customer_id.label("customer_id"),
               literal(None, Integer).label("contact_id"), literal(None, String).label("contact_name"))
        .where(CustomerEmail.email.in_(values)),
        select(CustomerContact.email, CustomerContact.customer_id, CustomerContact.id, CustomerContact.name)
        .where(CustomerContact.email.in_(values))).subquery()
    return select(matches, Customer.name, Customer.tier, Customer.kind, Customer.organisation,
                  Customer.is_prospect, Customer.language).join(Customer, Customer.id == matches.c.customer_id)


def _collect(session: Session, found: dict[int, Candidate], via: str, value: str) -> set[int]:
    """Customers matching one identifier directly or through an organisation contact (one query), added
    to ``found``; returns their ids."""
    return _gather(found, via, session.execute(_match_stmt(via), {"value": value}).all())


def _gather(found: dict[int, Candidate], via: str, rows) -> set[int]:
    """Add the customers of match ``rows`` (of ``_match_stmt``) to ``found``; returns their ids."""
    ids = {row.customer_id for row in rows}
    for row in rows:
        found.setdefault(row.customer_id, Candidate(row.customer_id, row.name, row.tier, row.kind, row.organisation,
                                                    row.is_prospect, [], language=row.language))
    rows = [(row.customer_id, row.contact_id, row.contact_name) for row in rows]
    for customer_id, contact_id, contact_name in rows:
        candidate = found[customer_id]
        if contact_id is not None and candidate.contact_id is None:
            candidate.contact_id, candidate.contact_name = contact_id, contact_name
        if via not in candidate.matched_on:
            candidate.matched_on.append(via)
    return ids


def _load_candidates(session: Session, found: dict[int, Candidate], ids: set[int]) -> None:
    if not ids:
        return
    for row in session.execute(select(Customer.id, Customer.name, Customer.tier, Customer.kind, Customer.organisation,
                                      Customer.is_prospect, Customer.language).where(Customer.id.in_(ids))):
        found[row.id] = Candidate(row.id, row.name, row.tier, row.kind, row.organisation, row.is_prospect, [],
                                  language=row.language)


def _matched(session: Session, customer_id: int, via: list[str], contact_id: int | None, e164: str | None,
             address: str | None, candidate: Candidate | None = None) -> Identification:
    if candidate is None:
        found: dict[int, Candidate] = {}
        _load_candidates(session, found, {customer_id})
        candidate = found[customer_id]
    candidate.matched_on = list(via)
    how = ", ".join(via)
    how_zh = "、".join({"phone": "电话", "email": "邮箱", "account": "账户"}[v] for v in via)
    return Identification(MatchStatus.MATCHED, customer_id=customer_id, matched_on=list(via),
                          contact_id=contact_id, phone=e164, email=address, candidates=[candidate],
                          message_en=f"identified by {how}: {candidate.name}",
                          message_zh=f"通过{how_zh}识别：{candidate.name}")


def value_summary(session: Session, customer_id: int) -> dict[str, Any] | None:
    """The short value facts other domains decide with (routing priority, IVR branches, complaint grading,
    compensation placement): tier, RFM, segment, stage, churn risk and signals, loyalty, open complaints.
    One query; None when the customer does not exist. Tier is the recorded one when value was never computed."""
    from app.crm.bridges import CLOSED_STATES
    from app.complaints.models import Complaint

    open_count = (select(func.count()).select_from(Complaint)
                  .where(Complaint.customer_id == customer_id, Complaint.state.not_in(CLOSED_STATES))
                  .scalar_subquery())
    s = CustomerValueSnapshot
    row = session.execute(select(Customer.tier, Customer.is_prospect, s.tier.label("value_tier"), s.r, s.f, s.m,
                                 s.segment, s.stage, s.churn_risk, s.churn_signals, s.loyalty, s.ltv_cents,
                                 s.computed_at, open_count.label("open_complaints"))
                          .outerjoin(s, s.customer_id == Customer.id).where(Customer.id == customer_id)).first()
    if row is None:
        return None
    computed = row.value_tier is not None
    return {"tier": row.value_tier if computed else row.tier, "computed": computed, "is_prospect": row.is_prospect,
            "rfm": f"R{row.r}F{row.f}M{row.m}" if computed else None, "segment": row.segment, "stage": row.stage,
            "churn_risk": row.churn_risk, "churn_signals": list(row.churn_signals or []), "loyalty": row.loyalty,
            "ltv_cents": row.ltv_cents, "open_complaints": int(row.open_complaints or 0),
            "computed_at": row.computed_at.isoformat() if row.computed_at else None}


# --- custom attributes ---------------------------------------------------------------------------------

_TRUE, _FALSE = {"true", "yes", "1", "y", "是"}, {"false", "no", "0", "n", "否", ""}


def validate_attributes(definitions: list[CustomAttribute], values: dict[str, Any], *,
                        partial: bool = False) -> dict[str, Any]:
    """Check custom attribute values against config.yaml and coerce them (CSV gives strings).

    Returns the cleaned values; raises InvalidAttributes naming every bad key. ``partial`` skips
    the required check (a PATCH changes only what it names)."""
    known = {d.name: d for d in definitions}
    problems: dict[str, str] = {}
    cleaned: dict[str, Any] = {}
    for key, raw in values.items():
        if key not in known:
            problems[key] = "not a custom attribute declared in config.yaml"
            continue
        try:
            cleaned[key] = _coerce(known[key], raw)
        except ValueError as exc:
            problems[key] = str(exc)
    if not partial:
        for d in definitions:
            if d.required and cleaned.get(d.name) in (None, ""):
                problems.setdefault(d.name, "required")
    if problems:
        raise InvalidAttributes(problems)
    return cleaned


def _coerce(definition: CustomAttribute, raw: Any) -> Any:
    if raw is None:
        return None
    kind = definition.type
    if kind == "integer":
        if isinstance(raw, bool) or not (isinstance(raw, int) or str(raw).strip().lstrip("-").isdigit()):
            raise ValueError(f"expected a whole number, got {raw!r}")
        return int(raw)
    if kind == "boolean":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise ValueError(f"expected yes/no, got {raw!r}")
    if kind == "date":
        try:
            return date.fromisoformat(str(raw).strip()).isoformat()
        except ValueError:
            raise ValueError(f"expected a date YYYY-MM-DD, got {raw!r}") from None
    if kind == "choice":
        if str(raw) not in definition.choices:
            raise ValueError(f"expected one of {definition.choices}, got {raw!r}")
        return str(raw)
    text = str(raw)
    if len(text) > 500:
        raise ValueError("text longer than 500 characters")
    return text


# --- create and change -----------------------------------------------------------------------------------

def create_customer(session: Session, data: CustomerIn, *, attribute_defs: list[CustomAttribute],
                    source: str = "api") -> Customer:
    """Add a customer with phones, emails, tags, consents, contacts and checked attributes. Does not commit.
    Raises InvalidAttributes."""
    attributes = validate_attributes(attribute_defs, data.attributes)
    customer = Customer(name=data.name, kind=data.kind, organisation=data.organisation, language=data.language,
                        timezone=data.timezone, is_prospect=data.is_prospect, tier="small", attributes=attributes)
    customer.phones = [CustomerPhone(e164=p) for p in data.phones]
    customer.emails = [CustomerEmail(email=e) for e in data.emails]
    session.add(customer)
    session.flush()
    _replace_tags(session, customer.id, data.tags)
    _set_consents(session, customer.id, data.consents, source)
    _replace_contacts(session, customer.id, data.contacts)
    return customer


def update_customer(session: Session, customer_id: int, patch: CustomerPatch, *,
                    attribute_defs: list[CustomAttribute], source: str = "api") -> Customer:
    """Change the fields named in ``patch``; lists replace what was stored; attributes are merged key by
    key (None removes one). Raises CustomerNotFound, InvalidAttributes. Does not commit."""
    customer = get_customer(session, customer_id)
    given = patch.model_fields_set
    for name in ("name", "kind", "organisation", "language", "timezone", "is_prospect"):
        if name in given and (getattr(patch, name) is not None or name in ("organisation", "timezone")):
            setattr(customer, name, getattr(patch, name))
    if patch.attributes is not None:
        cleaned = validate_attributes(attribute_defs, patch.attributes, partial=True)
        merged = {**(customer.attributes or {}), **cleaned}
        customer.attributes = {k: v for k, v in merged.items() if v is not None}
    if patch.phones is not None:
        customer.phones = [p for p in customer.phones if p.e164 in patch.phones] + [
            CustomerPhone(e164=p) for p in patch.phones if p not in {x.e164 for x in customer.phones}]
    if patch.emails is not None:
        customer.emails = [e for e in customer.emails if e.email in patch.emails] + [
            CustomerEmail(email=e) for e in patch.emails if e not in {x.email for x in customer.emails}]
    if patch.tags is not None:
        _replace_tags(session, customer.id, patch.tags)
    if patch.consents is not None:
        _set_consents(session, customer.id, patch.consents, source)
    if patch.contacts is not None:
        _replace_contacts(session, customer.id, patch.contacts)
    session.flush()
    return customer


def get_customer(session: Session, customer_id: int) -> Customer:
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise CustomerNotFound(customer_id)
    return customer


def set_consent(session: Session, customer_id: int, purpose: str, granted: bool, *, source: str) -> None:
    """Record the customer's yes/no for one purpose (calls, email, sms, marketing, recording)."""
    get_customer(session, customer_id)
    _set_consents(session, customer_id, {purpose: granted}, source)


def _set_consents(session: Session, customer_id: int, consents: dict[str, bool], source: str) -> None:
    for purpose, granted in consents.items():
        row = session.scalar(select(CustomerConsent).where(CustomerConsent.customer_id == customer_id,
                                                           CustomerConsent.purpose == purpose))
        if row is None:
            session.add(CustomerConsent(customer_id=customer_id, purpose=purpose, granted=granted, source=source,
                                        updated_at=utcnow()))
        elif row.granted != granted:
            row.granted, row.source, row.updated_at = granted, source, utcnow()


def _replace_tags(session: Session, customer_id: int, tags: list[str]) -> None:
    session.execute(delete(CustomerTag).where(CustomerTag.customer_id == customer_id, CustomerTag.tag.not_in(tags)))
    present = set(session.scalars(select(CustomerTag.tag).where(CustomerTag.customer_id == customer_id)))
    session.add_all(CustomerTag(customer_id=customer_id, tag=t) for t in tags if t not in present)


def _replace_contacts(session: Session, customer_id: int, contacts: list) -> None:
    session.execute(delete(CustomerContact).where(CustomerContact.customer_id == customer_id))
    session.add_all(CustomerContact(customer_id=customer_id, name=c.name, role=c.role, phone_e164=c.phone,
                                    email=c.email, language=c.language, is_primary=c.is_primary)
                    for c in contacts)


def create_order(session: Session, data: OrderIn) -> Order:
    """Add an order with its lines and shipments. Raises CustomerNotFound, DuplicateOrder. Does not commit."""
    get_customer(session, data.customer_id)
    if session.scalar(select(Order.id).where(Order.number == data.number)) is not None:
        raise DuplicateOrder(data.number)
    order = Order(customer_id=data.customer_id, number=data.number, placed_at=data.placed_at, status=data.status,
                  total_cents=data.total_cents, currency=data.currency)
    order.lines = [OrderLine(**line.model_dump()) for line in data.lines]
    order.shipments = [Shipment(**s.model_dump()) for s in data.shipments]
    session.add(order)
    customer = session.get(Customer, data.customer_id)
    customer.is_prospect = False  # a buyer now
    session.flush()
    return order


def record_feedback(session: Session, customer_id: int, kind: str, score: int, *,
                    interaction_id: int | None = None, comment: str | None = None,
                    at: datetime | None = None) -> CustomerFeedback:
    """Store a survey answer: ``csat`` 1-5 or ``nps`` 0-10. Raises ValueError for a score out of range,
    CustomerNotFound. Does not commit."""
    bounds = {"csat": (1, 5), "nps": (0, 10)}
    if kind not in bounds:
        raise ValueError(f"feedback kind must be csat or nps, got {kind!r}")
    low, high = bounds[kind]
    if isinstance(score, bool) or not isinstance(score, int) or not low <= score <= high:
        raise ValueError(f"{kind} score must be a whole number {low}-{high}, got {score!r}")
    get_customer(session, customer_id)
    row = CustomerFeedback(customer_id=customer_id, kind=kind, score=score, interaction_id=interaction_id,
                           comment=comment, recorded_at=at or utcnow())
    session.add(row)
    return row


# --- merge ----------------------------------------------------------------------------------------------

# Child tables merged with care (duplicates dropped); every other table pointing at customers.id simply
# has its rows re-pointed, so interactions, complaints, accounts and future tables all follow the survivor.
_DEDUPED = {"customer_phones": ("e164",), "customer_emails": ("email",), "customer_tags": ("tag",),
            "customer_consents": ("purpose",)}
_DROPPED = {"customer_value_snapshots"}  # recomputed for the survivor


def merge_customers(session: Session, survivor_id: int, duplicate_id: int, *, actor: str) -> CustomerMerge:
    """Fold ``duplicate_id`` into ``survivor_id``: every interaction, order, complaint, contact, survey
    answer and other row follows the survivor; phones/emails/tags/consents are united (the survivor's
    consent wins); blank survivor fields are filled. The duplicate is deleted, the merge recorded.

    Raises CustomerNotFound, MergeConflict (same customer, or both hold a one-per-customer row such as a
    portal account). Does not commit."""
    if survivor_id == duplicate_id:
        raise MergeConflict("cannot merge a customer into itself", "不能将客户与自身合并")
    survivor, duplicate = get_customer(session, survivor_id), get_customer(session, duplicate_id)
    session.flush()
    references = _references_to_customers()
    for table, column, unique in references:
        if unique and _count(session, table, column, survivor_id) and _count(session, table, column, duplicate_id):
            raise MergeConflict(f"both customers have a row in {table.name}; resolve it before merging",
                                f"两位客户在 {table.name} 中都有记录；请先处理再合并", table=table.name)
    moved: dict[str, int] = {}
    for table, column, _unique in references:
        if table.name in _DROPPED:
            session.execute(delete(table).where(column == duplicate_id))
            continue
        if table.name in _DEDUPED:
            keys = [table.c[k] for k in _DEDUPED[table.name]]
            kept = {tuple(row) for row in session.execute(select(*keys).where(column == survivor_id))}
            for row in session.execute(select(table.c.id, *keys).where(column == duplicate_id)).all():
                if tuple(row[1:]) in kept:
                    session.execute(delete(table).where(table.c.id == row[0]))
        count = session.execute(update(table).where(column == duplicate_id).values({column.name: survivor_id}))
        if count.rowcount:
            moved[table.name] = count.rowcount
    for name in ("organisation", "timezone"):
        if not getattr(survivor, name) and getattr(duplicate, name):
            setattr(survivor, name, getattr(duplicate, name))
    survivor.attributes = {**(duplicate.attributes or {}), **(survivor.attributes or {})}
    survivor.is_prospect = survivor.is_prospect and duplicate.is_prospect
    record = CustomerMerge(survivor_id=survivor_id, merged_customer_id=duplicate_id, merged_name=duplicate.name,
                           moved=moved, actor=actor, merged_at=utcnow())
    session.add(record)
    session.flush()
    session.expire_all()
    session.execute(delete(Customer).where(Customer.id == duplicate_id))
    session.flush()
    return record


def _references_to_customers() -> list[tuple[Any, Any, bool]]:
    """(table, column, column-alone-is-unique) for every foreign key to customers.id, from the metadata."""
    out = []
    for table in db.metadata.sorted_tables:
        for fk in table.foreign_keys:
            if fk.column.table.name != "customers":
                continue
            column = fk.parent
            unique = column.unique or column.primary_key or any(
                isinstance(c, UniqueConstraint) and list(c.columns.keys()) == [column.name]
                for c in table.constraints)
            out.append((table, column, bool(unique) and table.name not in _DROPPED))
    return out


def _count(session: Session, table, column, customer_id: int) -> int:
    return session.scalar(select(func.count()).select_from(table).where(column == customer_id)) or 0
