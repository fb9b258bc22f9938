"""REST API: token auth and scopes, pagination and filters, 422 validation, 360, OpenAPI."""
from __future__ import annotations

from datetime import timedelta

import pytest

from app.auth.tokens import ApiToken, TokenError, issue_token, revoke_token, verify_token
from app.crm.models import CustomerTag, CustomerValueSnapshot
from app.db import utcnow
from tests.factories import login, make_customer, make_order, make_staff

ALL = ["customers:read", "customers:write", "orders:read", "orders:write", "value:recompute"]


@pytest.fixture()
def bearer(db_session):
    def make(*scopes: str, **kwargs) -> dict[str, str]:
        _, secret = issue_token(db_session, name="erp", scopes=list(scopes or ALL), **kwargs)
        db_session.commit()
        return {"Authorization": f"Bearer {secret}"}
    return make


# --- tokens ------------------------------------------------------------------------------------------------

def test_token_is_stored_hashed_and_checked_for_scope_expiry_and_revocation(db_session):
    token, secret = issue_token(db_session, name="crm sync", scopes=["customers:read"])
    assert secret.startswith("desk_") and secret not in token.token_hash and len(token.token_hash) == 64
    assert verify_token(db_session, secret, scope="customers:read").id == token.id
    assert token.last_used_at is not None
    with pytest.raises(TokenError) as caught:
        verify_token(db_session, secret, scope="orders:write")
    assert caught.value.status == 403
    with pytest.raises(TokenError) as caught:
        verify_token(db_session, secret + "x", scope="customers:read")
    assert caught.value.status == 401
    token.expires_at = utcnow() + timedelta(hours=1)
    with pytest.raises(TokenError) as caught:
        verify_token(db_session, secret, scope="customers:read", now=utcnow() + timedelta(hours=2))
    assert caught.value.code == "expired_token"
    assert revoke_token(db_session, token.id) and not revoke_token(db_session, token.id)
    token.expires_at = None
    with pytest.raises(TokenError) as caught:
        verify_token(db_session, secret, scope="customers:read")
    assert caught.value.code == "invalid_token"


@pytest.mark.parametrize("name,scopes,match", [("x", ["customers:delete"], "unknown"), ("x", [], "at least one"),
                                               ("  ", ["customers:read"], "name")])
def test_bad_token_requests(db_session, name, scopes, match):
    with pytest.raises(ValueError, match=match):
        issue_token(db_session, name=name, scopes=scopes)


def test_no_token_is_401_wrong_scope_403(client, bearer):
    response = client.get("/api/customers")
    assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/api/customers", headers={"Authorization": "Bearer nope"}).status_code == 401
    response = client.post("/api/customers", json={"name": "A"}, headers=bearer("customers:read"))
    assert response.status_code == 403 and response.json["error"] == "insufficient_scope"


def test_signed_in_staff_may_read_but_not_write(client, db_session):
    staff = make_staff(db_session)
    db_session.commit()
    login(client, staff)
    assert client.get("/api/customers").status_code == 200
    assert client.post("/api/customers", json={"name": "A"}).status_code == 401


# --- customers ---------------------------------------------------------------------------------------------

def test_create_read_patch_customer(client, bearer):
    headers = bearer()
    response = client.post("/api/customers", headers=headers, json={
        "name": "Zhou Xun", "language": "zh", "phones": ["139 0013 9000"], "emails": ["Zhou@Example.CN"],
        "tags": ["press"], "consents": {"marketing": False}})
    assert response.status_code == 201, response.json
    created = response.json
    assert created["phones"] == ["+8613900139000"] and created["emails"] == ["zhou@example.cn"]
    got = client.get(f"/api/customers/{created['id']}", headers=headers).json
    assert got["name"] == "Zhou Xun"
    patched = client.patch(f"/api/customers/{created['id']}", headers=headers, json={"organisation": "Film Co"})
    assert patched.status_code == 200 and patched.json["organisation"] == "Film Co"
    assert patched.json["language"] == "zh"


@pytest.mark.parametrize("body,fields", [
    ({}, ["name"]),
    ({"name": "A", "phones": ["12"]}, ["phones"]),
    ({"name": "A", "emails": ["not-an-email"], "kind": "alien"}, ["emails", "kind"]),
    ({"name": "A", "consents": {"telepathy": True}}, ["consents.telepathy.[key]"]),
    ({"name": "A", "surname": "B"}, ["surname"]),
    ({"name": "A", "timezone": "Mars/Olympus"}, ["timezone"]),
])
def test_bad_customer_payloads_get_clear_422(client, bearer, body, fields):
    response = client.post("/api/customers", headers=bearer(), json=body)
    assert response.status_code == 422
    assert response.json["error"] == "validation_error"
    assert sorted(e["field"] for e in response.json["errors"]) == sorted(fields)
    assert all(e["message"] for e in response.json["errors"])


def test_non_json_body_is_422(client, bearer):
    response = client.post("/api/customers", headers=bearer(), data="name=A")
    assert response.status_code == 422 and response.json["errors"][0]["field"] == "(body)"


def test_unknown_custom_attribute_is_422(client, bearer):
    response = client.post("/api/customers", headers=bearer(), json={"name": "A", "attributes": {"x": 1}})
    assert response.status_code == 422 and response.json["error"] == "invalid_attributes"
    assert response.json["message_zh"]


def test_missing_customer_is_404(client, bearer):
    response = client.get("/api/customers/999", headers=bearer())
    assert response.status_code == 404 and response.json["error"] == "customer_not_found"


def test_list_customers_paginates_and_filters(client, db_session, bearer):
    for i in range(7):
        make_customer(db_session, name=f"Person {i}", tier="vip" if i < 2 else "small",
                      phone=f"+861380013800{i}", email=f"p{i}@example.cn")
    vip = make_customer(db_session, name="Big Spender", tier="vip", kind="business")
    db_session.add(CustomerTag(customer_id=vip.id, tag="key-account"))
    db_session.add(CustomerValueSnapshot(customer_id=vip.id, tier="vip", r=5, f=5, m=5, segment="mvc",
                                         stage="at_risk", loyalty="true", churn_risk="low", peak_tier="vip",
                                         computed_at=utcnow()))
    db_session.commit()
    headers = bearer("customers:read")
    page = client.get("/api/customers?per_page=3&page=2", headers=headers).json
    assert page["total"] == 8 and page["pages"] == 3 and len(page["items"]) == 3 and page["page"] == 2
    assert client.get("/api/customers?tier=vip", headers=headers).json["total"] == 3
    assert client.get("/api/customers?q=big", headers=headers).json["items"][0]["id"] == vip.id
    assert client.get("/api/customers?phone=13800138003", headers=headers).json["total"] == 1
    assert client.get("/api/customers?email=P4@example.cn", headers=headers).json["total"] == 1
    assert client.get("/api/customers?tag=key-account", headers=headers).json["total"] == 1
    assert client.get("/api/customers?stage=at_risk&kind=business", headers=headers).json["total"] == 1
    assert client.get("/api/customers?prospect=true", headers=headers).json["total"] == 0
    bad = client.get("/api/customers?per_page=1000&tier=gold", headers=headers)
    assert bad.status_code == 422 and {e["field"] for e in bad.json["errors"]} == {"per_page", "tier"}


def test_customer_360_and_orders(client, db_session, bearer):
    customer = make_customer(db_session, phone="+8613800138000")
    for days in range(3):
        make_order(db_session, customer, placed_at=utcnow() - timedelta(days=days), shipment_status="delivered")
    db_session.commit()
    headers = bearer("customers:read", "orders:read")
    view = client.get(f"/api/customers/{customer.id}/360", headers=headers).json
    assert view["customer"]["id"] == customer.id and len(view["orders"]) == 3
    orders = client.get(f"/api/customers/{customer.id}/orders?per_page=2", headers=headers).json
    assert orders["total"] == 3 and len(orders["items"]) == 2
    assert client.get("/api/customers/999/orders", headers=headers).status_code == 404


def test_identify_endpoint(client, db_session, bearer):
    customer = make_customer(db_session, phone="+8613800138000")
    db_session.commit()
    read = bearer("customers:read")
    result = client.get("/api/identify?phone=13800138000", headers=read).json
    assert result["status"] == "matched" and result["customer_id"] == customer.id
    assert client.get("/api/identify", headers=read).status_code == 422
    unknown = client.get("/api/identify?phone=13700137000", headers=read).json
    assert unknown["status"] == "unknown"
    assert client.get("/api/identify?phone=13700137000&create_prospect=true", headers=read).status_code == 403
    made = client.get("/api/identify?phone=13700137000&create_prospect=true",
                      headers=bearer("customers:read", "customers:write")).json
    assert made["status"] == "new_prospect"


def test_merge_endpoint(client, db_session, bearer):
    a, b = make_customer(db_session).id, make_customer(db_session).id
    db_session.commit()
    headers = bearer("customers:write")
    assert client.post(f"/api/customers/{a}/merge", headers=headers, json={}).status_code == 422
    assert client.post(f"/api/customers/{a}/merge", headers=headers, json={"duplicate_id": a}).status_code == 409
    response = client.post(f"/api/customers/{a}/merge", headers=headers, json={"duplicate_id": b})
    assert response.status_code == 200 and response.json["merged_customer_id"] == b


# --- orders -------------------------------------------------------------------------------------------------

def test_orders_create_list_get(client, db_session, bearer):
    customer = make_customer(db_session)
    db_session.commit()
    headers = bearer("orders:read", "orders:write")
    body = {"customer_id": customer.id, "number": "SO-100", "placed_at": "2026-05-01T10:00:00+08:00",
            "lines": [{"sku": "TEA", "unit_price_cents": 1500, "quantity": 2}],
            "shipments": [{"carrier": "SF Express", "tracking_number": "SF123"}]}
    created = client.post("/api/orders", headers=headers, json=body)
    assert created.status_code == 201 and created.json["total_cents"] == 3000
    assert created.json["placed_at"] == "2026-05-01T02:00:00+00:00"
    assert client.post("/api/orders", headers=headers, json=body).status_code == 409
    listed = client.get(f"/api/orders?customer_id={customer.id}&placed_from=2026-04-01T00:00:00Z", headers=headers)
    assert listed.json["total"] == 1
    assert client.get("/api/orders?status=cancelled", headers=headers).json["total"] == 0
    assert client.get("/api/orders?placed_to=2026-04-01T00:00:00Z", headers=headers).json["total"] == 0
    one = client.get("/api/orders/SO-100", headers=headers).json
    assert one["lines"][0]["sku"] == "TEA" and one["shipments"][0]["tracking_number"] == "SF123"
    assert client.get("/api/orders/NOPE", headers=headers).status_code == 404
    naive = client.post("/api/orders", headers=headers, json={**body, "number": "SO-101",
                                                              "placed_at": "2026-05-01T10:00:00"})
    assert naive.status_code == 422 and "time zone" in naive.json["errors"][0]["message"]


# --- value and OpenAPI --------------------------------------------------------------------------------------

def test_recompute_and_latest_run(client, app, db_session, bearer):
    make_order(db_session, make_customer(db_session))
    db_session.commit()
    assert client.get("/api/value/runs/latest", headers=bearer("customers:read")).status_code == 404
    app.extensions["desk.jobs"].synchronous = True
    response = client.post("/api/value/recompute", headers=bearer("value:recompute"))
    assert response.status_code == 202
    latest = client.get("/api/value/runs/latest", headers=bearer("customers:read")).json
    assert latest["status"] == "done" and latest["customers"] == 1 and latest["pyramid"]["rows"]


def test_openapi_describes_every_route(client, app):
    spec = client.get("/api/openapi.json").json
    assert spec["openapi"].startswith("3.")
    documented = {path.replace("{", "<").replace("}", ">") for path in spec["paths"]}
    routes = {str(rule).replace("<int:", "<") for rule in app.url_map.iter_rules()
              if rule.endpoint.startswith(("crm_api.", "crm_api_more.")) and "openapi" not in str(rule)}
    assert routes == documented
    assert "CustomerIn" in spec["components"]["schemas"]
    assert spec["paths"]["/api/customers"]["post"]["security"] == [{"bearer": ["customers:write"]}]
    assert "422" in spec["paths"]["/api/orders"]["post"]["responses"]
    assert ApiToken.__tablename__ == "api_tokens"
