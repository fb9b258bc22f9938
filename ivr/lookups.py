"""The database behind the IVR's self-service lookups (the engine's ``LookupPort``).

A caller the CRM recognised hears only their own orders and complaints; an unrecognised caller may
ask by number (the number is what they hold, as on a parcel slip). Dates are read in the desk's time
zone, the one the caller lives by.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, selectinload

from app.crm.models import Order, Shipment
from ivr.engine import CallerFacts, LookupResult


@dataclass(frozen=True)
class _Shipment:
    status: str
    carrier: str
    shipped_at: datetime | None
    expected_at: datetime | None
    delivered_at: datetime | None


@dataclass(frozen=True)
class _Order:
    """What a read-back tells of an order (plain values: the IVR never changes an order)."""

    number: str
    customer_id: int
    status: str
    placed_at: datetime
    shipments: tuple[_Shipment, ...]

    @classmethod
    def of(cls, order: Order) -> _Order:
        return cls(order.number, order.customer_id, order.status, order.placed_at, tuple(
            _Shipment(s.status, s.carrier, s.shipped_at, s.expected_at, s.delivered_at) for s in order.shipments))


# The exact number, with its shipments, as plain columns in one statement (built once: every order
# read-back asks it, and no ORM object is needed to read an order aloud).
_ORDER_BY_NUMBER = (select(Order.number, Order.customer_id, Order.status, Order.placed_at,
                           Shipment.id.label("shipment"), Shipment.status.label("shipment_status"), Shipment.carrier,
                           Shipment.shipped_at, Shipment.expected_at, Shipment.delivered_at)
                    .outerjoin(Shipment, Shipment.order_id == Order.id)
                    .where(Order.number == bindparam("number")))


class DatabaseLookups:
    def __init__(self, session: Session, timezone: str = "UTC"):
        self.session = session
        self.zone = ZoneInfo(timezone)

    def _day(self, moment: datetime | None) -> date | None:
        return moment.astimezone(self.zone).date() if moment else None

    def lookup(self, kind: str, reference: str, caller: CallerFacts) -> LookupResult | None:
        if kind == "complaint_status":
            return self._complaint(reference, caller)
        order = self._order(reference, caller)
        if order is None:
            return None
        shipment = max(order.shipments, key=lambda s: (s.shipped_at or s.expected_at or datetime.min.replace(
            tzinfo=self.zone)), default=None)
        if kind == "shipment_status":
            if shipment is None:
                return None
            return LookupResult({"number": order.number, "status": shipment.status, "carrier": shipment.carrier,
                                 "expected_on": self._day(shipment.expected_at),
                                 "delivered_on": self._day(shipment.delivered_at)})
        return LookupResult({"number": order.number, "status": order.status,
                             "placed_on": self._day(order.placed_at),
                             "expected_on": self._day(shipment.expected_at) if shipment else None,
                             "delivered_on": self._day(shipment.delivered_at) if shipment else None})

    def _order(self, digits: str, caller: CallerFacts) -> _Order | None:
        """The caller's order by the digits they keyed. An exact number is one look-up on the unique
        index (shipments joined in); only when that fails -- numbers may carry a prefix ("ORD000123")
        the caller cannot key -- are the numbers ending in those digits scanned."""
        rows = self.session.execute(_ORDER_BY_NUMBER, {"number": digits}).all()
        if rows and _belongs(rows[0].customer_id, caller):
            first = rows[0]
            return _Order(first.number, first.customer_id, first.status, first.placed_at, tuple(
                _Shipment(row.shipment_status, row.carrier, row.shipped_at, row.expected_at, row.delivered_at)
                for row in rows if row.shipment is not None))
        candidates = self.session.scalars(select(Order).where(Order.number.like(_suffix(digits)))
                                          .options(selectinload(Order.shipments)).limit(50))
        for order in candidates:
            if _digits_match(order.number, digits) and _belongs(order.customer_id, caller):
                return _Order.of(order)
        return None

    def _complaint(self, digits: str, caller: CallerFacts) -> LookupResult | None:
        try:
            from app.complaints.models import Complaint
        except ImportError:  # a desk without the complaints domain has no complaint to read
            return None
        candidates = self.session.scalars(select(Complaint).where(
            Complaint.reference.like(_suffix(digits))).limit(50))
        for complaint in candidates:
            if _digits_match(complaint.reference, digits) and _belongs(complaint.customer_id, caller):
                due = None if complaint.state in ("resolved", "closed", "rejected") else complaint.resolve_due_at
                return LookupResult({"reference": complaint.reference, "status": complaint.state,
                                     "due_on": self._day(due)})
        return None


def _suffix(digits: str) -> str:
    """A LIKE pattern every matching reference satisfies: its last digits, whatever separates groups."""
    return f"%{digits[-6:]}"


def _digits_match(reference: str, digits: str) -> bool:
    """'CMP-2026-000123' answers to 2026000123, 000123 and 123; 'ORD000045' to 000045 and 45."""
    if "".join(re.findall(r"\d", reference)) == digits:
        return True
    groups = re.findall(r"\d+", reference)
    return bool(groups) and groups[-1].lstrip("0") == digits.lstrip("0") and digits.lstrip("0") != ""


def _belongs(customer_id: int | None, caller: CallerFacts) -> bool:
    return not caller.known or caller.customer_id is None or customer_id == caller.customer_id
