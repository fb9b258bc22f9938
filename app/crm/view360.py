"""The customer 360 view: one call, one JSON-ready dict, shared by the screen-pop, the portal and the API.

Reads only (no writes), a fixed number of indexed queries whatever the customer's history, so the
screen-pop stays fast for a customer with thousands of orders.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from app.auth.models import StaffUser
from app.crm import bridges
from app.crm.config import CustomAttribute
from app.crm.errors import CustomerNotFound
from app.crm.models import (
    Customer, CustomerConsent, CustomerContact, CustomerFeedback, CustomerTag, CustomerValueSnapshot, Order,
)
from app.crm.phones import display_phone
from app.crm.scoring import LABELS
from app.interactions.models import Interaction

KIND_LABELS = {"individual": ("individual consumer", "个人消费者"), "business": ("business customer", "企业客户"),
               "distributor": ("distributor / reseller", "分销商/经销商"), "internal": ("internal customer", "内部客户")}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _label(key: str, table: dict = LABELS) -> dict[str, str]:
    en, zh = table.get(key, (key, key))
    return {"en": en, "zh": zh}


def customer_360(session: Session, customer_id: int, *, attribute_defs: list[CustomAttribute] | None = None,
                 interactions_limit: int = 20, orders_limit: int = 10) -> dict[str, Any]:
    """Everything an agent needs about one customer. Raises CustomerNotFound.

    Keys: customer (identity, type, phones, emails, tags, consents, attributes, contacts), value (tier and
    its reasons, RFM, LTV, segment, lifecycle, churn, loyalty -- or ``computed: false``), satisfaction
    (CSAT/NPS), complaints (open ones with deadlines), compensation (received), interactions (latest
    across channels), orders (latest, with shipments), counts."""
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise CustomerNotFound(customer_id)
    return {
        "customer": _identity(session, customer, attribute_defs or []),
        "value": _value(session, customer),
        "satisfaction": _satisfaction(session, customer_id),
        "complaints": bridges.open_complaints(session, customer_id),
        "compensation": bridges.compensation_received(session, customer_id),
        "interactions": _interactions(session, customer_id, interactions_limit),
        "orders": _orders(session, customer_id, orders_limit),
        "counts": {
            "orders": session.scalar(select(func.count()).select_from(Order)
                                     .where(Order.customer_id == customer_id)) or 0,
            "interactions": session.scalar(select(func.count()).select_from(Interaction)
                                           .where(Interaction.customer_id == customer_id)) or 0,
        },
    }


def _identity(session: Session, customer: Customer, attribute_defs: list[CustomAttribute]) -> dict[str, Any]:
    consents = session.scalars(select(CustomerConsent).where(CustomerConsent.customer_id == customer.id))
    contacts = session.scalars(select(CustomerContact).where(CustomerContact.customer_id == customer.id)
                               .order_by(CustomerContact.is_primary.desc(), CustomerContact.name))
    declared = {d.name: d for d in attribute_defs}
    attributes = [{"name": k, "value": v, "label": {"en": declared[k].label_en or k, "zh": declared[k].label_zh or k}
                   if k in declared else {"en": k, "zh": k}} for k, v in sorted((customer.attributes or {}).items())]
    return {
        "id": customer.id, "name": customer.name, "kind": customer.kind,
        "kind_label": _label(customer.kind, KIND_LABELS), "organisation": customer.organisation,
        "language": customer.language, "timezone": customer.timezone, "tier": customer.tier,
        "is_prospect": customer.is_prospect, "created_at": _iso(customer.created_at),
        "phones": [{"e164": p.e164, "display": display_phone(p.e164), "label": p.label} for p in customer.phones],
        "emails": [e.email for e in customer.emails],
        "tags": sorted(session.scalars(select(CustomerTag.tag).where(CustomerTag.customer_id == customer.id))),
        "consents": {c.purpose: {"granted": c.granted, "source": c.source, "updated_at": _iso(c.updated_at)}
                     for c in consents},
        "attributes": attributes,
        "contacts": [{"id": c.id, "name": c.name, "role": c.role, "phone": c.phone_e164, "email": c.email,
                      "language": c.language, "is_primary": c.is_primary} for c in contacts],
    }


def _value(session: Session, customer: Customer) -> dict[str, Any]:
    snapshot = session.get(CustomerValueSnapshot, customer.id)
    if snapshot is None:
        return {"computed": False, "tier": customer.tier, "tier_label": _label(customer.tier),
                "reasons": [{"code": "not_computed", "en": "value not computed yet; tier as recorded",
                             "zh": "尚未计算客户价值；层级为记录值"}]}
    explanation = snapshot.explanation or {}
    return {
        "computed": True, "computed_at": _iso(snapshot.computed_at),
        "tier": snapshot.tier, "tier_label": _label(snapshot.tier),
        "rfm": {"r": snapshot.r, "f": snapshot.f, "m": snapshot.m, "code": f"R{snapshot.r}F{snapshot.f}M{snapshot.m}"},
        "segment": snapshot.segment, "segment_label": _label(snapshot.segment),
        "stage": snapshot.stage, "stage_label": _label(snapshot.stage),
        "loyalty": snapshot.loyalty, "loyalty_label": _label(snapshot.loyalty),
        "churn_risk": snapshot.churn_risk, "churn_signals": snapshot.churn_signals,
        "revenue_cents": snapshot.revenue_cents, "net_value_cents": snapshot.net_value_cents,
        "ltv_cents": snapshot.ltv_cents,
        "reasons": {part: (body.get("reasons") or body.get("signals") or [])
                    for part, body in explanation.items() if isinstance(body, dict)},
    }


def _satisfaction(session: Session, customer_id: int) -> dict[str, Any]:
    rows = session.execute(select(CustomerFeedback.kind, func.avg(CustomerFeedback.score), func.count())
                           .where(CustomerFeedback.customer_id == customer_id)
                           .group_by(CustomerFeedback.kind)).all()
    stats = {kind: (round(float(avg), 2), count) for kind, avg, count in rows}
    latest = session.scalars(select(CustomerFeedback).where(CustomerFeedback.customer_id == customer_id)
                             .order_by(CustomerFeedback.recorded_at.desc()).limit(5))
    return {
        "csat_avg": stats.get("csat", (None, 0))[0], "csat_count": stats.get("csat", (None, 0))[1],
        "nps_avg": stats.get("nps", (None, 0))[0], "nps_count": stats.get("nps", (None, 0))[1],
        "latest": [{"kind": f.kind, "score": f.score, "comment": f.comment, "interaction_id": f.interaction_id,
                    "recorded_at": _iso(f.recorded_at)} for f in latest],
    }


def _interactions(session: Session, customer_id: int, limit: int) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Interaction, StaffUser.name).outerjoin(StaffUser, StaffUser.id == Interaction.agent_id)
        .where(Interaction.customer_id == customer_id)
        .order_by(Interaction.created_at.desc(), Interaction.id.desc()).limit(limit)).all()
    return [{"id": i.id, "channel": i.channel, "direction": i.direction, "state": i.state, "queue": i.queue,
             "subject": i.subject, "agent": agent, "disposition": i.disposition, "created_at": _iso(i.created_at),
             "state_changed_at": _iso(i.state_changed_at)} for i, agent in rows]


def _orders(session: Session, customer_id: int, limit: int) -> list[dict[str, Any]]:
    orders = session.scalars(select(Order).where(Order.customer_id == customer_id)
                             .options(selectinload(Order.shipments))
                             .order_by(Order.placed_at.desc(), Order.id.desc()).limit(limit))
    return [order_to_dict(o) for o in orders]


def order_to_dict(order: Order, *, lines: bool = False) -> dict[str, Any]:
    data = {"id": order.id, "number": order.number, "customer_id": order.customer_id,
            "placed_at": _iso(order.placed_at), "status": order.status, "total_cents": order.total_cents,
            "currency": order.currency,
            "shipments": [{"carrier": s.carrier, "tracking_number": s.tracking_number, "status": s.status,
                           "shipped_at": _iso(s.shipped_at), "expected_at": _iso(s.expected_at),
                           "delivered_at": _iso(s.delivered_at)} for s in order.shipments]}
    if lines:
        data["lines"] = [{"sku": line.sku, "description": line.description, "quantity": line.quantity,
                          "unit_price_cents": line.unit_price_cents} for line in order.lines]
    return data
