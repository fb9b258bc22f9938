"""The OpenAPI 3.1 description of /api/, built from the same pydantic models that validate requests, so
the document cannot drift from what the API accepts."""
from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from app.auth.tokens import SCOPES
from app.crm.schemas import (
    ComplaintQuery, CustomerIn, CustomerPatch, CustomerQuery, IdentifyQuery, InteractionQuery, OrderIn, OrderQuery,
)

REF = "#/components/schemas/"
ERROR = {"type": "object", "properties": {"error": {"type": "string"}, "message": {"type": "string"}}}
VALIDATION_ERROR = {"type": "object", "properties": {
    "error": {"const": "validation_error"}, "message": {"type": "string"},
    "errors": {"type": "array", "items": {"type": "object", "properties": {
        "field": {"type": "string"}, "message": {"type": "string"}}}}}}
PAGE = {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "object"}},
                                         "page": {"type": "integer"}, "per_page": {"type": "integer"},
                                         "total": {"type": "integer"}, "pages": {"type": "integer"}}}


def _query_params(model) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    return [{"name": name, "in": "query", "required": name in schema.get("required", []), "schema": prop}
            for name, prop in schema["properties"].items()]


def _op(summary: str, scope: str | None, *, params: list | None = None, body: str | None = None,
        ok: int = 200, ok_schema: dict | None = None, path_id: str | None = None) -> dict[str, Any]:
    responses: dict[str, Any] = {str(ok): {"description": "OK", "content": {"application/json": {
        "schema": ok_schema or {"type": "object"}}}}}
    op: dict[str, Any] = {"summary": summary, "responses": responses, "parameters": list(params or [])}
    if path_id:
        op["parameters"].insert(0, {"name": path_id, "in": "path", "required": True,
                                    "schema": {"type": "string" if path_id in ("number", "reference") else "integer"}})
    if scope:
        op["security"] = [{"bearer": [scope]}]
        responses["401"] = {"description": "no or bad token", "content": {"application/json": {"schema": ERROR}}}
        responses["403"] = {"description": "token lacks the scope", "content": {"application/json": {
            "schema": ERROR}}}
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": {"$ref": REF + body}}}}
    if body or params:
        responses["422"] = {"description": "invalid input", "content": {"application/json": {
            "schema": VALIDATION_ERROR}}}
    if path_id:
        responses["404"] = {"description": "not found", "content": {"application/json": {"schema": ERROR}}}
    return op


def build_openapi() -> dict[str, Any]:
    _, defs = models_json_schema([(m, "validation") for m in (CustomerIn, CustomerPatch, OrderIn)],
                                 ref_template=REF + "{model}")
    schemas = defs.get("$defs", {})
    paths = {
        "/api/customers": {
            "get": _op("List customers (filters, pagination)", "customers:read",
                       params=_query_params(CustomerQuery), ok_schema=PAGE),
            "post": _op("Create a customer", "customers:write", body="CustomerIn", ok=201)},
        "/api/customers/{customer_id}": {
            "get": _op("One customer", "customers:read", path_id="customer_id"),
            "patch": _op("Change a customer (only the fields given)", "customers:write", body="CustomerPatch",
                         path_id="customer_id")},
        "/api/customers/{customer_id}/360": {
            "get": _op("The 360 view: identity, value with reasons, satisfaction, complaints, compensation, "
                       "interactions, orders", "customers:read", path_id="customer_id")},
        "/api/customers/{customer_id}/merge": {
            "post": _op("Merge a duplicate into this customer, keeping every interaction", "customers:write",
                        path_id="customer_id")},
        "/api/customers/{customer_id}/orders": {
            "get": _op("A customer's orders with shipments", "orders:read", path_id="customer_id",
                       params=[p for p in _query_params(OrderQuery) if p["name"] in ("page", "per_page")],
                       ok_schema=PAGE)},
        "/api/identify": {
            "get": _op("Identify a contact by phone, email or portal account (never guesses)", "customers:read",
                       params=_query_params(IdentifyQuery))},
        "/api/orders": {
            "get": _op("List orders (filters, pagination)", "orders:read", params=_query_params(OrderQuery),
                       ok_schema=PAGE),
            "post": _op("Create an order with lines and shipments", "orders:write", body="OrderIn", ok=201)},
        "/api/orders/{number}": {"get": _op("One order by number", "orders:read", path_id="number")},
        "/api/value/recompute": {"post": _op("Recompute every customer's value now (queued)", "value:recompute",
                                             ok=202)},
        "/api/value/runs/latest": {"get": _op("The latest value run and its pyramid", "customers:read")},
        "/api/interactions": {
            "get": _op("List interactions, newest first (filters: customer, channel, state, created between)",
                       "interactions:read", params=_query_params(InteractionQuery), ok_schema=PAGE)},
        "/api/interactions/{interaction_id}": {
            "get": _op("One interaction with its event log (state changes and facts, oldest first)",
                       "interactions:read", path_id="interaction_id")},
        "/api/complaints": {
            "get": _op("List complaints, newest first (filters: customer, state, level, open)", "complaints:read",
                       params=_query_params(ComplaintQuery), ok_schema=PAGE)},
        "/api/complaints/{reference}": {
            "get": _op("One complaint by reference: level, state, deadlines, steps and compensation issued",
                       "complaints:read", path_id="reference")},
    }
    paths["/api/customers/{customer_id}/merge"]["post"]["requestBody"] = {"required": True, "content": {
        "application/json": {"schema": {"type": "object", "required": ["duplicate_id"],
                                        "properties": {"duplicate_id": {"type": "integer", "minimum": 1}}}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Contact-centre desk API", "version": "1",
                 "description": "Customers, orders, identification, the customer 360 view, interactions and "
                                "complaints (read). Authenticate "
                                "with 'Authorization: Bearer <token>' (flask --app app crm token-create)."},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {"bearer": {
            "type": "http", "scheme": "bearer", "description": "scopes: " + ", ".join(SCOPES)}}},
    }
