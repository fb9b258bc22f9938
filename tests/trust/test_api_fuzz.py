"""Property-based API tests: schemathesis generates requests from /api/openapi.json (valid and
invalid) for every operation, and none may end in a server error."""
from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings

from app.auth.tokens import SCOPES, issue_token
from tests.factories import make_customer, make_order


def test_no_generated_request_makes_the_api_fail(app, db_session):
    customer = make_customer(db_session, phone="+8613800138000", email="fuzz@example.com")
    make_order(db_session, customer, number="1001", shipment_status="in_transit")
    _token, secret = issue_token(db_session, name="fuzz", scopes=list(SCOPES))
    db_session.commit()
    bearer = {"Authorization": f"Bearer {secret}"}
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    failures: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            response = case.call(headers=bearer)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} {case.query or ''} -> {response.status_code}")

        check()
    assert failures == []
