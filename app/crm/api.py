"""REST API under /api/ for customers, orders, identification and the 360 view (thin: parse, call, return).

Authentication: ``Authorization: Bearer <token>`` (app/auth/tokens.py) with a scope per route; GETs also
accept a signed-in staff user. Bad input: 422 ``{"error": "validation_error", "errors": [{field, message}]}``.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, g, jsonify, request
from pydantic import BaseModel, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app.auth.tokens import api_auth
from app.crm import service
from app.crm.errors import CrmError, CustomerNotFound, DuplicateOrder, MergeConflict, OrderNotFound
from app.crm.models import Customer, CustomerEmail, CustomerPhone, CustomerTag, CustomerValueSnapshot, Order
from app.crm.schemas import (
    CustomerIn, CustomerPatch, CustomerQuery, IdentifyQuery, OrderIn, OrderQuery, describe_errors,
)
from app.crm.view360 import order_to_dict
from app.extensions import csrf, db

bp = Blueprint("crm_api", __name__, url_prefix="/api")
csrf.exempt(bp)  # writes need a Bearer token, never a cookie, so there is no cross-site request to forge

STATUS = {CustomerNotFound: 404, OrderNotFound: 404, DuplicateOrder: 409, MergeConflict: 409}


class _Invalid(Exception):
    def __init__(self, errors: list[dict[str, str]]):
        self.errors = errors


def _config():
    return current_app.extensions["desk.config"]


def _context() -> dict[str, str]:
    return {"region": _config().crm.default_country}


def _body(model: type[BaseModel]) -> Any:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise _Invalid([{"field": "(body)", "message": "the body must be a JSON object (Content-Type: "
                                                       "application/json)"}])
    try:
        return model.model_validate(data, context=_context())
    except ValidationError as exc:
        raise _Invalid(describe_errors(exc)) from exc


def _query(model: type[BaseModel]) -> Any:
    try:
        return model.model_validate(request.args.to_dict(), context=_context())
    except ValidationError as exc:
        raise _Invalid(describe_errors(exc)) from exc


@bp.errorhandler(_Invalid)
def _invalid(exc: _Invalid):
    return jsonify(error="validation_error", message="; ".join(f"{e['field']}: {e['message']}" for e in exc.errors),
                   errors=exc.errors), 422


@bp.errorhandler(CrmError)
def _crm_error(exc: CrmError):
    db.session.rollback()
    status = STATUS.get(type(exc), 422)
    return jsonify(exc.to_dict()), status


def _page(query, page: int, per_page: int, render) -> dict[str, Any]:
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    items = db.session.scalars(query.limit(per_page).offset((page - 1) * per_page)).unique().all()
    return {"items": [render(i) for i in items], "page": page, "per_page": per_page, "total": total,
            "pages": (total + per_page - 1) // per_page}


def customer_to_dict(c: Customer) -> dict[str, Any]:
    return {"id": c.id, "name": c.name, "kind": c.kind, "organisation": c.organisation, "language": c.language,
            "timezone": c.timezone, "tier": c.tier, "is_prospect": c.is_prospect, "attributes": c.attributes or {},
            "phones": [p.e164 for p in c.phones], "emails": [e.email for e in c.emails],
            "created_at": c.created_at.isoformat() if c.created_at else None}


# --- customers -------------------------------------------------------------------------------------------

@bp.get("/customers")
@api_auth("customers:read")
def list_customers():
    q: CustomerQuery = _query(CustomerQuery)
    query = select(Customer).order_by(Customer.id)
    if q.q:
        query = query.where(func.lower(Customer.name).contains(q.q.lower(), autoescape=True))
    for column, value in ((Customer.tier, q.tier), (Customer.kind, q.kind), (Customer.is_prospect, q.prospect)):
        if value is not None:
            query = query.where(column == value)
    if q.phone:
        query = query.where(Customer.id.in_(select(CustomerPhone.customer_id).where(CustomerPhone.e164 == q.phone)))
    if q.email:
        query = query.where(Customer.id.in_(select(CustomerEmail.customer_id).where(CustomerEmail.email == q.email)))
    if q.tag:
        query = query.where(Customer.id.in_(select(CustomerTag.customer_id).where(CustomerTag.tag == q.tag.lower())))
    if q.stage:
        query = query.where(Customer.id.in_(select(CustomerValueSnapshot.customer_id)
                                            .where(CustomerValueSnapshot.stage == q.stage)))
    return jsonify(_page(query, q.page, q.per_page, customer_to_dict))


@bp.post("/customers")
@api_auth("customers:write")
def create_customer():
    data: CustomerIn = _body(CustomerIn)
    customer = service.create_customer(db.session, data, attribute_defs=_config().crm.custom_attributes)
    db.session.commit()
    return jsonify(customer_to_dict(customer)), 201


@bp.get("/customers/<int:customer_id>")
@api_auth("customers:read")
def get_customer(customer_id: int):
    return jsonify(customer_to_dict(service.get_customer(db.session, customer_id)))


@bp.patch("/customers/<int:customer_id>")
@api_auth("customers:write")
def patch_customer(customer_id: int):
    patch: CustomerPatch = _body(CustomerPatch)
    customer = service.update_customer(db.session, customer_id, patch,
                                       attribute_defs=_config().crm.custom_attributes)
    db.session.commit()
    return jsonify(customer_to_dict(customer))


@bp.get("/customers/<int:customer_id>/360")
@api_auth("customers:read")
def customer_360(customer_id: int):
    view = service.customer_360(db.session, customer_id, attribute_defs=_config().crm.custom_attributes,
                                actor=g.api_actor, via="api")
    db.session.commit()  # the audit entry of this opening
    return jsonify(view)


@bp.post("/customers/<int:customer_id>/merge")
@api_auth("customers:write")
def merge_customer(customer_id: int):
    data = request.get_json(silent=True)
    duplicate = data.get("duplicate_id") if isinstance(data, dict) else None
    if isinstance(duplicate, bool) or not isinstance(duplicate, int) or duplicate <= 0:
        raise _Invalid([{"field": "duplicate_id", "message": "a positive customer id is required"}])
    record = service.merge_customers(db.session, customer_id, duplicate, actor=g.api_actor)
    db.session.commit()
    return jsonify(survivor_id=record.survivor_id, merged_customer_id=record.merged_customer_id,
                   moved=record.moved)


@bp.get("/customers/<int:customer_id>/orders")
@api_auth("orders:read")
def customer_orders(customer_id: int):
    service.get_customer(db.session, customer_id)
    q: OrderQuery = _query(OrderQuery)
    query = (select(Order).where(Order.customer_id == customer_id).options(selectinload(Order.shipments))
             .order_by(Order.placed_at.desc(), Order.id.desc()))
    return jsonify(_page(query, q.page, q.per_page, order_to_dict))


@bp.get("/identify")
@api_auth("customers:read")
def identify():
    q: IdentifyQuery = _query(IdentifyQuery)
    if q.create_prospect and "customers:write" not in g.api_scopes:  # creating a prospect is a write
        return jsonify(error="insufficient_scope", message="create_prospect needs the scope 'customers:write'"), 403
    result = service.identify(db.session, phone=q.phone, email=q.email, account_id=q.account_id,
                              default_region=_config().crm.default_country, create_prospect=q.create_prospect)
    db.session.commit()
    return jsonify(result.to_dict())


# --- orders ---------------------------------------------------------------------------------------------

@bp.get("/orders")
@api_auth("orders:read")
def list_orders():
    q: OrderQuery = _query(OrderQuery)
    query = select(Order).options(selectinload(Order.shipments)).order_by(Order.placed_at.desc(), Order.id.desc())
    if q.customer_id:
        query = query.where(Order.customer_id == q.customer_id)
    if q.status:
        query = query.where(Order.status == q.status)
    if q.placed_from:
        query = query.where(Order.placed_at >= q.placed_from)
    if q.placed_to:
        query = query.where(Order.placed_at < q.placed_to)
    return jsonify(_page(query, q.page, q.per_page, order_to_dict))


@bp.post("/orders")
@api_auth("orders:write")
def create_order():
    data: OrderIn = _body(OrderIn)
    order = service.create_order(db.session, data)
    db.session.commit()
    return jsonify(order_to_dict(order, lines=True)), 201


@bp.get("/orders/<number>")
@api_auth("orders:read")
def get_order(number: str):
    order = None if "\x00" in number else db.session.scalar(select(Order).where(Order.number == number))
    if order is None:
        raise OrderNotFound(number)
    return jsonify(order_to_dict(order, lines=True))


# --- value ----------------------------------------------------------------------------------------------

@bp.post("/value/recompute")
@api_auth("value:recompute")
def recompute():
    from app.crm.jobs import request_recompute

    run = request_recompute(db.session)
    return jsonify(run_id=run.id, status=run.status), 202


@bp.get("/value/runs/latest")
@api_auth("customers:read")
def latest_value_run():
    from app.crm.jobs import latest_run

    run = latest_run(db.session)
    if run is None:
        return jsonify(error="no_run", message="customer value has not been computed yet"), 404
    return jsonify(id=run.id, status=run.status, trigger=run.trigger, started_at=run.started_at.isoformat(),
                   finished_at=run.finished_at.isoformat() if run.finished_at else None,
                   customers=run.customers, pyramid=run.pyramid, error=run.error)


@bp.get("/openapi.json")
def openapi():
    from app.crm.openapi import build_openapi

    return jsonify(build_openapi())
