"""CSV import and export of customers and orders, with a validation report row by row.

Rows are checked with the same schemas as the API; good rows are stored in one transaction per batch
(``crm.import_batch_size``), each row inside a savepoint so one database refusal never loses its
neighbours; bad rows are reported with the line number, the column and why -- and nothing of them stored.
"""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from app.crm import service
from app.crm.config import CrmConfig
from app.crm.errors import CrmError
from app.crm.models import Customer, CustomerConsent, CustomerEmail, CustomerPhone, CustomerTag, Order
from app.crm.schemas import CustomerIn, OrderIn, describe_errors, normalise_email

PURPOSES = ("calls", "email", "sms", "marketing", "recording")
CUSTOMER_COLUMNS = ["name", "kind", "organisation", "language", "timezone", "phones", "emails", "tags",
                    *[f"consent_{p}" for p in PURPOSES]]
ORDER_COLUMNS = ["number", "customer_id", "customer_email", "customer_phone", "placed_at", "status", "currency",
                 "total", "carrier", "tracking_number", "shipment_status"]
EXPORT_ONLY = {"id", "tier", "is_prospect"}  # written by export, ignored by import (computed or assigned)
LIST_SPLIT = re.compile(r"[;|]")
MAX_ROWS = 200_000


@dataclass
class RowResult:
    line: int  # line in the file (the header is line 1)
    ok: bool
    id: int | None = None
    errors: list[dict[str, str]] = field(default_factory=list)


@dataclass
class ImportReport:
    rows: int = 0
    imported: int = 0
    rejected: int = 0
    batches: int = 0
    results: list[RowResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # file-level: missing columns, too many rows

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def error_lines(self) -> list[str]:
        """One human line per problem: 'line 7, emails: 'x' is not an email address'."""
        out = list(self.problems)
        for r in self.results:
            out += [f"line {r.line}, {e['field']}: {e['message']}" for e in r.errors]
        return out


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in LIST_SPLIT.split(value or "") if v.strip()]


def _yes_no(value: str, column: str) -> bool | None:
    text = value.strip().lower()
    if not text:
        return None
    if text in ("yes", "y", "true", "1", "是"):
        return True
    if text in ("no", "n", "false", "0", "否"):
        return False
    raise ValueError(f"{column}: expected yes or no, got {value!r}")


def _read(stream: TextIO, required: set[str], known: set[str], report: ImportReport) -> Iterator[tuple[int, dict]]:
    reader = csv.DictReader(stream)
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    missing = sorted(required - set(header))
    unknown = sorted(h for h in header if h not in known and not h.startswith("attr:"))
    if missing:
        report.problems.append(f"header: missing column(s) {missing}")
    if unknown:
        report.problems.append(f"header: unknown column(s) {unknown}")
    if missing or unknown:
        return
    for index, row in enumerate(reader):
        if index >= MAX_ROWS:
            report.problems.append(f"file: more than {MAX_ROWS} rows; the rest was not read")
            return
        if None in row:  # more cells than header columns
            report.rows += 1
            report.rejected += 1
            report.results.append(RowResult(reader.line_num, False, errors=[
                {"field": "(row)", "message": "more cells than the header has columns"}]))
            continue
        yield reader.line_num, {k: (v or "").strip() for k, v in row.items()}


def _batches(rows: Iterable[tuple[int, dict]], size: int) -> Iterator[list[tuple[int, dict]]]:
    batch: list[tuple[int, dict]] = []
    for item in rows:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _store(session: Session, report: ImportReport, stream: TextIO, required: set[str], known: set[str],
           batch_size: int, parse, save) -> ImportReport:
    for batch in _batches(_read(stream, required, known, report), batch_size):
        for line, row in batch:
            report.rows += 1
            try:
                data = parse(row)
            except ValidationError as exc:
                report.results.append(RowResult(line, False, errors=describe_errors(exc)))
                report.rejected += 1
                continue
            except ValueError as exc:
                report.results.append(RowResult(line, False, errors=[_field_message(str(exc))]))
                report.rejected += 1
                continue
            try:
                with session.begin_nested():
                    new_id = save(data)
            except CrmError as exc:
                report.results.append(RowResult(line, False, errors=[
                    {"field": k, "message": v} for k, v in exc.details.get("problems", {}).items()]
                    or [{"field": "(row)", "message": exc.en}]))
                report.rejected += 1
                continue
            except IntegrityError as exc:
                report.results.append(RowResult(line, False, errors=[
                    {"field": "(row)", "message": f"refused by the database: {str(exc.orig).splitlines()[0]}"}]))
                report.rejected += 1
                continue
            report.results.append(RowResult(line, True, id=new_id))
            report.imported += 1
        session.commit()
        report.batches += 1
    return report


def _field_message(text: str) -> dict[str, str]:
    column, sep, message = text.partition(": ")
    return {"field": column, "message": message} if sep and " " not in column else {"field": "(row)", "message": text}


# --- customers -----------------------------------------------------------------------------------------

def import_customers(session: Session, stream: TextIO, config: CrmConfig, *, batch_size: int | None = None,
                     source: str = "import") -> ImportReport:
    """Import customers from CSV (columns CUSTOMER_COLUMNS plus 'attr:NAME' per custom attribute; lists
    separated by ';'). A row whose email already belongs to a customer is rejected (merge instead).
    Commits once per batch."""
    attr_names = {f"attr:{a.name}" for a in config.custom_attributes}

    def parse(row: dict[str, str]) -> CustomerIn:
        consents = {p: v for p in PURPOSES if (v := _yes_no(row.get(f"consent_{p}", ""), f"consent_{p}")) is not None}
        attributes = {k[5:]: v for k, v in row.items() if k.startswith("attr:") and v != ""}
        unknown = sorted(f"attr:{k}" for k in attributes if f"attr:{k}" not in attr_names)
        if unknown:
            raise ValueError(f"{unknown[0]}: not a custom attribute declared in config.yaml")
        payload = {"name": row.get("name", ""), "kind": row.get("kind") or "individual",
                   "organisation": row.get("organisation") or None, "language": row.get("language") or "en",
                   "timezone": row.get("timezone") or None, "phones": _split(row.get("phones")),
                   "emails": _split(row.get("emails")), "tags": _split(row.get("tags")), "consents": consents,
                   "attributes": attributes}
        return CustomerIn.model_validate(payload, context={"region": config.default_country})

    def save(data: CustomerIn) -> int:
        if data.emails:
            taken = session.execute(select(CustomerEmail.email, CustomerEmail.customer_id)
                                    .where(CustomerEmail.email.in_(data.emails))).first()
            if taken:
                raise CrmError(f"email {taken[0]} already belongs to customer {taken[1]} (merge instead)",
                               f"邮箱 {taken[0]} 已属于客户 {taken[1]}（请改用合并）",
                               problems={"emails": f"{taken[0]} already belongs to customer {taken[1]}"})
        return service.create_customer(session, data, attribute_defs=config.custom_attributes, source=source).id

    return _store(session, ImportReport(), stream, {"name"}, set(CUSTOMER_COLUMNS) | attr_names | EXPORT_ONLY,
                  batch_size or config.import_batch_size, parse, save)


def export_customers(session: Session, config: CrmConfig, *, chunk: int = 1000) -> Iterator[str]:
    """CSV text, in chunks, of every customer (id, tier and the import columns): re-importable."""
    attrs = [a.name for a in config.custom_attributes]
    header = ["id", "tier", "is_prospect", *CUSTOMER_COLUMNS, *[f"attr:{a}" for a in attrs]]
    yield _csv_line(header)
    last_id = 0
    while True:
        customers = session.scalars(select(Customer).where(Customer.id > last_id).order_by(Customer.id)
                                    .limit(chunk)).all()
        if not customers:
            return
        ids = [c.id for c in customers]
        tags: dict[int, list[str]] = {}
        for cid, tag in session.execute(select(CustomerTag.customer_id, CustomerTag.tag)
                                        .where(CustomerTag.customer_id.in_(ids)).order_by(CustomerTag.tag)):
            tags.setdefault(cid, []).append(tag)
        consents: dict[int, dict[str, bool]] = {}
        for row in session.scalars(select(CustomerConsent).where(CustomerConsent.customer_id.in_(ids))):
            consents.setdefault(row.customer_id, {})[row.purpose] = row.granted
        out = io.StringIO()
        writer = csv.writer(out)
        for c in customers:
            given = consents.get(c.id, {})
            writer.writerow([c.id, c.tier, "yes" if c.is_prospect else "no", c.name, c.kind, c.organisation or "",
                             c.language, c.timezone or "", ";".join(p.e164 for p in c.phones),
                             ";".join(e.email for e in c.emails), ";".join(tags.get(c.id, [])),
                             *[("yes" if given[p] else "no") if p in given else "" for p in PURPOSES],
                             *[_cell((c.attributes or {}).get(a)) for a in attrs]])
        yield out.getvalue()
        last_id = ids[-1]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _csv_line(values: list[Any]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(values)
    return out.getvalue()


# --- orders ---------------------------------------------------------------------------------------------

def parse_amount_cents(text: str) -> int:
    """'1234.5' -> 123450. At most two decimals, no thousands separators, not negative. Raises ValueError."""
    try:
        amount = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"total: {text!r} is not an amount like 1234.50") from None
    if not amount.is_finite() or amount < 0 or amount.as_tuple().exponent < -2:
        raise ValueError(f"total: {text!r} is not an amount like 1234.50 (at most 2 decimals, not negative)")
    return int(amount * 100)


def parse_when(text: str, zone: str) -> datetime:
    """ISO date or date-time; without an offset it is read in the desk's time zone. Raises ValueError."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"placed_at: {text!r} is not a date like 2026-05-01 or 2026-05-01T14:30+08:00") from None
    return value if value.tzinfo else value.replace(tzinfo=ZoneInfo(zone))


def import_orders(session: Session, stream: TextIO, config: CrmConfig, *, zone: str = "UTC",
                  currency: str = "CNY", batch_size: int | None = None) -> ImportReport:
    """Import orders (ORDER_COLUMNS): the customer by id, email or phone (exactly one must match), the total
    in major units ('1234.50'), an optional shipment. Commits once per batch."""

    def customer_of(row: dict[str, str]) -> int:
        if row.get("customer_id"):
            if not row["customer_id"].isdigit():
                raise ValueError(f"customer_id: {row['customer_id']!r} is not a number")
            return int(row["customer_id"])
        if row.get("customer_email"):
            email = normalise_email(row["customer_email"])
            ids = set(session.scalars(select(CustomerEmail.customer_id).where(CustomerEmail.email == email)))
        elif row.get("customer_phone"):
            from app.crm.phones import InvalidPhone, normalise_phone

            try:
                e164 = normalise_phone(row["customer_phone"], config.default_country)
            except InvalidPhone as exc:
                raise ValueError(f"customer_phone: {exc.en}") from None
            ids = set(session.scalars(select(CustomerPhone.customer_id).where(CustomerPhone.e164 == e164)))
        else:
            raise ValueError("customer_id: give customer_id, customer_email or customer_phone")
        if len(ids) != 1:
            raise ValueError(f"customer: {'no customer' if not ids else f'{len(ids)} customers'} match; "
                             "use customer_id")
        return ids.pop()

    def parse(row: dict[str, str]) -> OrderIn:
        payload: dict[str, Any] = {
            "customer_id": customer_of(row), "number": row.get("number", ""),
            "placed_at": parse_when(row.get("placed_at", ""), zone), "status": row.get("status") or "placed",
            "currency": row.get("currency") or currency, "total_cents": parse_amount_cents(row.get("total", "")),
        }
        if row.get("carrier") or row.get("tracking_number"):
            payload["shipments"] = [{"carrier": row.get("carrier", ""),
                                     "tracking_number": row.get("tracking_number", ""),
                                     "status": row.get("shipment_status") or "in_transit"}]
        return OrderIn.model_validate(payload)

    def save(data: OrderIn) -> int:
        return service.create_order(session, data).id

    return _store(session, ImportReport(), stream, {"number", "placed_at", "total"}, set(ORDER_COLUMNS),
                  batch_size or config.import_batch_size, parse, save)


def export_orders(session: Session, *, chunk: int = 1000) -> Iterator[str]:
    """CSV text, in chunks, of every order with its first shipment (re-importable by customer_id)."""
    yield _csv_line(ORDER_COLUMNS)
    last_id = 0
    while True:
        orders = session.scalars(select(Order).where(Order.id > last_id).options(selectinload(Order.shipments))
                                 .order_by(Order.id).limit(chunk)).all()
        if not orders:
            return
        out = io.StringIO()
        writer = csv.writer(out)
        for o in orders:
            s = o.shipments[0] if o.shipments else None
            writer.writerow([o.number, o.customer_id, "", "", o.placed_at.isoformat(), o.status, o.currency,
                             f"{Decimal(o.total_cents) / 100:.2f}", s.carrier if s else "",
                             s.tracking_number if s else "", s.status if s else ""])
        yield out.getvalue()
        last_id = orders[-1].id
