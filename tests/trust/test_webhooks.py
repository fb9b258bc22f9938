"""Outbound webhooks against a real local HTTP receiver that verifies signatures with the README's code."""
from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from app.auth.models import Role
from app.interactions.service import transition
from app.webhooks import service, signing
from app.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.factories import login, make_interaction, make_staff

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_verifier():
    text = README.read_text(encoding="utf-8").split("## Outbound webhooks", 1)[1]
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    namespace: dict = {}
    exec(code, namespace)  # the receiver exactly as documented
    return namespace["verify_desk_webhook"]


class Receiver:
    """A real HTTP server on 127.0.0.1 that records what it receives and answers with ``status``."""

    def __init__(self):
        self.received: list[dict] = []
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append({"headers": dict(self.headers), "body": body})
                self.send_response(outer.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receiver():
    r = Receiver()
    yield r
    r.close()


def _subscribe(db_session, url, types=("interaction.queued",)):
    endpoint = service.create_endpoint(db_session, name="crm", url=url, event_types=list(types), actor="staff:1")
    db_session.commit()
    return endpoint


def _queue_a_call(db_session):
    call = make_interaction(db_session)
    transition(db_session, call, "queued", actor="test")
    db_session.commit()
    return call


def test_a_readme_receiver_verifies_a_real_delivery(app, db_session, receiver):
    endpoint = _subscribe(db_session, receiver.url)
    call = _queue_a_call(db_session)
    assert len(receiver.received) == 1
    got = receiver.received[0]
    verify = _readme_verifier()
    assert verify(endpoint.secret, got["headers"], got["body"])
    assert not verify("wrong-secret", got["headers"], got["body"])
    tampered = got["body"].replace(b"queued", b"closed")
    assert not verify(endpoint.secret, got["headers"], tampered)
    old = dict(got["headers"], **{"X-Desk-Timestamp": str(int(time.time()) - 3600)})
    assert not verify(endpoint.secret, old, got["body"])
    payload = json.loads(got["body"])
    assert payload["type"] == "interaction.queued" and payload["data"]["id"] == call.id
    assert got["headers"]["X-Desk-Delivery"] == payload["delivery_id"]
    delivery = db_session.query(WebhookDelivery).one()
    assert delivery.status == "delivered" and delivery.last_status_code == 200


def test_only_subscribed_events_are_sent(app, db_session, receiver):
    _subscribe(db_session, receiver.url, types=("interaction.closed",))
    _queue_a_call(db_session)
    assert receiver.received == []
    assert db_session.query(WebhookDelivery).count() == 0


def test_failures_retry_with_the_same_delivery_id_then_succeed(app, db_session, receiver):
    _subscribe(db_session, receiver.url)
    receiver.status = 500
    _queue_a_call(db_session)
    delivery = db_session.query(WebhookDelivery).one()
    assert delivery.status == "pending" and delivery.attempts == 1 and delivery.last_status_code == 500
    jobs = app.extensions["desk.jobs"]
    assert len(jobs.scheduled) == 1 and jobs.scheduled[0][0] == service.backoff(1)
    receiver.status = 204
    jobs.run_scheduled()
    db_session.expire_all()
    delivery = db_session.query(WebhookDelivery).one()
    assert delivery.status == "delivered" and delivery.attempts == 2
    ids = {r["headers"]["X-Desk-Delivery"] for r in receiver.received}
    assert ids == {delivery.delivery_uid}


def test_a_dead_endpoint_is_paused_with_an_alert_and_resumes(app, db_session, receiver):
    from app import realtime
    from app.audit.models import AuditEntry

    alerts = []
    listener = lambda name, payload: alerts.append(name)  # noqa: E731
    realtime.subscribe(listener)
    endpoint = _subscribe(db_session, receiver.url)
    endpoint.consecutive_failures = service.PAUSE_AFTER_FAILURES - 1
    db_session.commit()
    receiver.status = 503
    try:
        _queue_a_call(db_session)
    finally:
        realtime.unsubscribe(listener)
    db_session.expire_all()
    endpoint = db_session.get(WebhookEndpoint, endpoint.id)
    assert endpoint.paused_at is not None and "alert.webhook_paused" in alerts
    assert db_session.query(AuditEntry).filter_by(action="webhooks.paused").count() == 1
    assert app.extensions["desk.jobs"].scheduled == [], "no retries while paused"
    _queue_a_call(db_session)
    assert db_session.query(WebhookDelivery).count() == 1, "paused endpoints get no new deliveries"
    receiver.status = 200
    assert service.resume(db_session, endpoint, actor="staff:1") == 1
    assert db_session.query(WebhookDelivery).one().status == "delivered"


def test_gives_up_after_max_attempts(app, db_session):
    _subscribe(db_session, "http://127.0.0.1:9/nothing-listens-here")
    _queue_a_call(db_session)
    delivery = db_session.query(WebhookDelivery).one()
    delivery.attempts = service.MAX_ATTEMPTS - 1
    db_session.commit()
    assert service.deliver(delivery.delivery_uid) == "failed"
    assert "ConnectionError" in db_session.query(WebhookDelivery).one().last_error
    assert service.deliver(delivery.delivery_uid) == "failed", "a finished delivery is not sent again"
    assert service.deliver("no-such-delivery") == "missing"


def test_the_periodic_sweep_requeues_lost_jobs(app, db_session, receiver):
    from datetime import timedelta

    from app.db import utcnow

    endpoint = _subscribe(db_session, receiver.url)
    db_session.add(WebhookDelivery(delivery_uid="lost-1", endpoint_id=endpoint.id, event_type="interaction.queued",
                                   payload={"type": "interaction.queued"}, next_attempt_at=utcnow() - timedelta(minutes=1)))
    db_session.commit()
    assert service.dispatch_due() == 1
    assert receiver.received[0]["headers"]["X-Desk-Delivery"] == "lost-1"


@pytest.mark.parametrize("url, types, message", [
    ("ftp://x/y", ["interaction.queued"], "url"),
    ("https://ok.example/hook", ["interaction.teleported"], "event_types"),
    ("https://ok.example/hook", [], "event_types"),
])
def test_bad_subscriptions_are_refused(db_session, url, types, message):
    with pytest.raises(service.WebhookError, match=message):
        service.create_endpoint(db_session, name="x", url=url, event_types=types, actor="staff:1")


def test_admin_pages(app, client, db_session, receiver):
    admin = make_staff(db_session, role=Role.ADMIN)
    agent = make_staff(db_session)
    db_session.commit()
    login(client, agent)
    assert client.get("/admin/webhooks/").status_code == 403
    client.post("/logout")
    login(client, admin)
    bad = client.post("/admin/webhooks/", data={"url": "not a url", "event_types": ["interaction.queued"]})
    assert bad.status_code == 422
    made = client.post("/admin/webhooks/", data={"name": "CRM", "url": receiver.url,
                                                 "event_types": ["interaction.queued"]})
    assert made.status_code == 201 and b"new-secret" in made.data
    endpoint = db_session.query(WebhookEndpoint).one()
    receiver.status = 500
    _queue_a_call(db_session)
    delivery = db_session.query(WebhookDelivery).one()
    log = client.get(f"/admin/webhooks/{endpoint.id}")
    assert log.status_code == 200 and delivery.delivery_uid.encode() in log.data
    receiver.status = 200
    assert client.post(f"/admin/webhooks/deliveries/{delivery.id}/redeliver").status_code == 302
    db_session.expire_all()
    assert db_session.get(WebhookDelivery, delivery.id).status == "delivered"
    endpoint.paused_at = endpoint.created_at
    db_session.commit()
    assert client.post(f"/admin/webhooks/{endpoint.id}/resume").status_code == 302
    assert client.get("/admin/webhooks/999").status_code == 404


def test_signing_helpers():
    body = b'{"a":1}'
    signature = signing.sign("s", 1000, body)
    assert signing.verify("s", "1000", body, signature, now=1100)
    assert not signing.verify("s", "1000", body, signature, now=2000)
    assert not signing.verify("s", "abc", body, signature, now=1000)


def test_subscriptions_are_read_once_per_ttl_not_per_commit(app, db_session, receiver):
    from sqlalchemy import event

    from app.extensions import db

    _subscribe(db_session, receiver.url)
    seen: list[str] = []

    def count(conn, cursor, statement, *args):
        if "FROM webhook_endpoints" in statement and "WHERE webhook_endpoints.active" in statement:
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        for _ in range(3):
            _queue_a_call(db_session)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert len(seen) == 1
    assert len(receiver.received) == 3
