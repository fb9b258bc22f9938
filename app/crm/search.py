"""Finding customers for staff: one search box (name, phone, email or order number) and likely duplicates.

Read-only. Every identifier is matched the way identification matches it -- phones normalised to
E.164 with the desk's default region, emails lower-cased, order numbers exactly -- so a search finds the
record the caller id would; names and organisations match on any part, ignoring case.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, or_, select, union
from sqlalchemy.orm import Session

from app.crm.models import Customer, CustomerContact, CustomerEmail, CustomerPhone, Order
from app.crm.phones import try_normalise_phone

MAX_PER_PAGE = 100


@dataclass
class CustomerHit:
    customer: Customer
    matched_on: list[str] = field(default_factory=list)  # name, phone, email, order


@dataclass
class SearchPage:
    query: str
    items: list[CustomerHit]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, (self.total + self.per_page - 1) // self.per_page)

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def has_prev(self) -> bool:
        return self.page > 1


def _phone_forms(text: str, region: str) -> list[str]:
    """The E.164 forms ``text`` may be stored as: normalised like a caller id, and -- for an international
    number the numbering plan calls invalid (test ranges, new prefixes) -- '+' and its digits as typed."""
    digits = "".join(ch for ch in text if ch.isdigit())
    if not digits or any(ch.isalpha() for ch in text):
        return []
    forms = {e164} if (e164 := try_normalise_phone(text, region)) else set()
    if text.lstrip().startswith(("+", "00")) and 6 <= len(digits.removeprefix("00")) <= 15:
        forms.add("+" + (digits[2:] if text.lstrip().startswith("00") else digits))
    return sorted(forms)


def _identifier_matches(session: Session, text: str, region: str) -> dict[int, list[str]]:
    """Customer ids whose phone, email or order number is exactly ``text`` (each an indexed lookup),
    with what matched; an organisation's contacts' phones and emails count for the organisation."""
    found: dict[int, list[str]] = {}
    numbers = _phone_forms(text, region)
    address = text.lower() if "@" in text else None
    queries = []
    if numbers:
        queries.append(("phone", union(
            select(CustomerPhone.customer_id).where(CustomerPhone.e164.in_(numbers)),
            select(CustomerContact.customer_id).where(CustomerContact.phone_e164.in_(numbers)))))
    if address:
        queries.append(("email", union(select(CustomerEmail.customer_id).where(CustomerEmail.email == address),
                                       select(CustomerContact.customer_id).where(CustomerContact.email == address))))
    queries.append(("order", select(Order.customer_id).where(Order.number == text)))
    for how, query in queries:
        for customer_id in session.scalars(query):
            found.setdefault(customer_id, []).append(how)
    return found


def search_customers(session: Session, text: str, *, region: str, tier: str | None = None, page: int = 1,
                     per_page: int = 25) -> SearchPage:
    """Customers matching ``text`` by name or organisation (any part, any case; text with a letter and no
    '@'), phone, email or order number (exactly, indexed), newest first, one page of them; an empty
    ``text`` lists every customer. ``tier`` narrows to one tier. Out-of-range ``page``/``per_page`` are
    clamped, never an error."""
    text = (text or "").strip()[:200]
    per_page = min(max(per_page, 1), MAX_PER_PAGE)
    page = max(page, 1)
    query = select(Customer)
    matched: dict[int, list[str]] = {}
    # Names are searched only for text that can be part of one: a number or an address alone would
    # make every phone or email search read the whole customers table (a LIKE '%...%' uses no index).
    by_name = any(ch.isalpha() for ch in text) and "@" not in text
    pattern = text.lower()
    if text:
        matched = _identifier_matches(session, text, region)
        clauses = [Customer.id.in_(list(matched))]
        if by_name:
            clauses += [func.lower(Customer.name).contains(pattern, autoescape=True),
                        func.lower(Customer.organisation).contains(pattern, autoescape=True)]
        query = query.where(or_(*clauses))
    if tier:
        query = query.where(Customer.tier == tier)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Customer.id.desc()).limit(per_page).offset((page - 1) * per_page)).all()
    items = []
    for customer in rows:
        how = list(matched.get(customer.id, []))
        if by_name and (pattern in customer.name.lower() or pattern in (customer.organisation or "").lower()):
            how.insert(0, "name")
        items.append(CustomerHit(customer, how))
    return SearchPage(text, items, page, per_page, total)


def possible_duplicates(session: Session, customer_id: int, *, limit: int = 10) -> list[CustomerHit]:
    """Other customers sharing a phone or an email with ``customer_id``, or with the same name (any case):
    candidates a supervisor may want to merge. Never merges anything."""
    customer = session.get(Customer, customer_id)
    if customer is None:
        return []
    phones = [p.e164 for p in customer.phones]
    emails = [e.email for e in customer.emails]
    found: dict[int, list[str]] = {}
    for how, query in (
            ("phone", select(CustomerPhone.customer_id).where(CustomerPhone.e164.in_(phones))),
            ("email", select(CustomerEmail.customer_id).where(CustomerEmail.email.in_(emails))),
            ("name", select(Customer.id).where(func.lower(Customer.name) == customer.name.lower()))):
        for other in session.scalars(query):
            if other != customer_id:
                found.setdefault(other, []).append(how)
    ids = sorted(found)[:limit]
    others = {c.id: c for c in session.scalars(select(Customer).where(Customer.id.in_(ids)))}
    return [CustomerHit(others[i], found[i]) for i in ids if i in others]
