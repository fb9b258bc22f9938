"""Outbound webhooks: subscribe, record deliveries in the same transaction as the event (outbox),
deliver signed with retries and backoff, pause dead endpoints with an alert, redeliver on demand."""
from __future__ import annotations

import json
import logging
import secrets
import time
import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from flask import current_app
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from app import realtime
from app.audit.service import record
from app.db import utcnow
from app.extensions import db
from app.webhooks import signing
from app.webhooks.models import WebhookDelivery, WebhookEndpoint

log = logging.getLogger(__name__)

EVENT_TYPES = (
    "interaction.created", "interaction.queued", "interaction.offered", "interaction.connected",
    "interaction.closed", "complaint.graded", "compensation.approved", "compensation.issued", "csat.received",
)
MAX_ATTEMPTS = 8
PAUSE_AFTER_FAILURES = 10
TIMEOUT_S = 10


class WebhookError(ValueError):
    """A subscription request that cannot be accepted (bad URL, unknown event type)."""


def webhook_types_for(name: str, payload: dict[str, Any]) -> list[str]:
    """Which public event types a realtime event becomes (pure)."""
    if name == "interaction.state":
        target = f"interaction.{payload.get('to')}"
        return [target] if target in EVENT_TYPES else []
    return [name] if name in EVENT_TYPES else []


def create_endpoint(session: Session, *, name: str, url: str, event_types: list[str], actor: str) -> WebhookEndpoint:
    """Subscribe ``url`` to ``event_types``; a fresh secret is generated (shown to the admin once)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise WebhookError("url: must be an absolute http(s) URL")
    unknown = sorted(set(event_types) - set(EVENT_TYPES))
    if unknown or not event_types:
        raise WebhookError(f"event_types: unknown or empty: {', '.join(unknown) or '(none given)'}")
    endpoint = WebhookEndpoint(name=name.strip()[:120] or parts.netloc, url=url, secret=secrets.token_urlsafe(32),
                               event_types=sorted(set(event_types)))
    session.add(endpoint)
    session.flush()
    forget_subscriptions()
    record(session, actor=actor, action="webhooks.subscribed", target_type="webhook", target_id=endpoint.id,
           data={"url": url, "event_types": endpoint.event_types})
    return endpoint


# ---------------------------------------------------------------- the outbox
_NEW_KEY = "webhook_new_deliveries"
SUBSCRIPTIONS_TTL_S = 5.0
# (loaded_at, [(endpoint id, event types)]): every commit carrying an event would otherwise query the
# endpoints; a subscription change reaches other processes within the TTL, this one at once.
_subscriptions: dict[str, tuple[float, list[tuple[int, frozenset[str]]]]] = {}


def forget_subscriptions() -> None:
    _subscriptions.clear()


def _active_subscriptions(session: Session) -> list[tuple[int, frozenset[str]]]:
    cached = _subscriptions.get("all")
    if cached and time.monotonic() - cached[0] < SUBSCRIPTIONS_TTL_S:
        return cached[1]
    rows = session.execute(select(WebhookEndpoint.id, WebhookEndpoint.event_types).where(
        WebhookEndpoint.active.is_(True), WebhookEndpoint.paused_at.is_(None))).all()
    subscriptions = [(endpoint_id, frozenset(types or ())) for endpoint_id, types in rows]
    _subscriptions["all"] = (time.monotonic(), subscriptions)
    return subscriptions


@event.listens_for(Session, "before_commit")
def _write_outbox(session: Session) -> None:
    pending = session.info.get(realtime.PENDING_KEY) or []
    wanted = [(t, payload) for name, payload in pending for t in webhook_types_for(name, payload)]
    if not wanted:
        return
    subscriptions = _active_subscriptions(session)
    if not subscriptions:
        return
    created = session.info.setdefault(_NEW_KEY, [])
    for event_type, payload in wanted:
        for endpoint_id, event_types in subscriptions:
            if event_type not in event_types:
                continue
            uid = str(uuid.uuid4())
            session.add(WebhookDelivery(delivery_uid=uid, endpoint_id=endpoint_id, event_type=event_type,
                                        payload={"type": event_type, "delivery_id": uid, "data": payload,
                                                 "created_at": utcnow().isoformat()},
                                        next_attempt_at=utcnow()))
            created.append(uid)


@event.listens_for(Session, "after_commit")
def _enqueue_new(session: Session) -> None:
    uids = session.info.pop(_NEW_KEY, None)
    if not uids:
        return
    try:
        jobs = current_app.extensions["desk.jobs"]
    except RuntimeError:  # committed outside an app (scripts): the periodic sweep delivers them
        return
    for uid in uids:
        jobs.enqueue(deliver, uid, queue="webhooks")


@event.listens_for(Session, "after_rollback")
def _forget_new(session: Session) -> None:
    session.info.pop(_NEW_KEY, None)


# ---------------------------------------------------------------- delivery
def backoff(attempts: int) -> timedelta:
    """10 s, 20 s, 40 s ... capped at one hour."""
    return timedelta(seconds=min(10 * 2 ** max(attempts - 1, 0), 3600))


def _post(endpoint: WebhookEndpoint, delivery: WebhookDelivery) -> tuple[int | None, str | None]:
    body = json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False).encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "ServiceDesk-Webhooks/1",
        signing.SIGNATURE_HEADER: signing.sign(endpoint.secret, timestamp, body),
        signing.TIMESTAMP_HEADER: str(timestamp),
        signing.DELIVERY_HEADER: delivery.delivery_uid,
        signing.EVENT_HEADER: delivery.event_type,
    }
    try:
        response = requests.post(endpoint.url, data=body, headers=headers, timeout=TIMEOUT_S, allow_redirects=False)
    except requests.RequestException as exc:
        return None, f"{type(exc).__name__}: {str(exc)[:300]}"
    if 200 <= response.status_code < 300:
        return response.status_code, None
    return response.status_code, f"HTTP {response.status_code}: {response.text[:300]}"


def deliver(delivery_uid: str) -> str:
    """Job: one attempt at one delivery. Returns the delivery's status afterwards."""
    session = db.session
    delivery = session.scalar(select(WebhookDelivery).where(WebhookDelivery.delivery_uid == delivery_uid)
                              .with_for_update())
    if delivery is None or delivery.status != "pending":
        session.rollback()
        return delivery.status if delivery else "missing"
    endpoint = delivery.endpoint
    if not endpoint.active or endpoint.paused_at is not None:
        session.rollback()
        return "pending"
    code, error = _post(endpoint, delivery)
    now = utcnow()
    delivery.attempts += 1
    delivery.last_attempt_at = now
    delivery.last_status_code = code
    delivery.last_error = error
    if error is None:
        delivery.status, delivery.next_attempt_at = "delivered", None
        endpoint.consecutive_failures = 0
        session.commit()
        return "delivered"
    endpoint.consecutive_failures += 1
    retry_in = backoff(delivery.attempts)
    if delivery.attempts >= MAX_ATTEMPTS:
        delivery.status, delivery.next_attempt_at = "failed", None
    else:
        delivery.next_attempt_at = now + retry_in
    if endpoint.consecutive_failures >= PAUSE_AFTER_FAILURES and endpoint.paused_at is None:
        _pause(session, endpoint, f"{endpoint.consecutive_failures} failed deliveries in a row; last: {error}")
    session.commit()
    if delivery.status == "pending" and endpoint.paused_at is None:
        current_app.extensions["desk.jobs"].enqueue(deliver, delivery_uid, queue="webhooks", delay=retry_in)
    return delivery.status


def _pause(session: Session, endpoint: WebhookEndpoint, reason: str) -> None:
    forget_subscriptions()
    endpoint.paused_at = utcnow()
    endpoint.pause_reason = reason[:255]
    record(session, actor="system", action="webhooks.paused", target_type="webhook", target_id=endpoint.id,
           outcome="failed", data={"reason": reason[:500]})
    realtime.after_commit(session, "alert.webhook_paused", {"endpoint_id": endpoint.id, "url": endpoint.url,
                                                            "reason": reason[:255]})
    log.warning("webhook endpoint %s paused: %s", endpoint.id, reason)


def resume(session: Session, endpoint: WebhookEndpoint, *, actor: str) -> int:
    """Un-pause and re-send what is still pending; returns how many were queued."""
    forget_subscriptions()
    endpoint.paused_at = None
    endpoint.pause_reason = None
    endpoint.consecutive_failures = 0
    record(session, actor=actor, action="webhooks.resumed", target_type="webhook", target_id=endpoint.id)
    pending = [d.delivery_uid for d in session.scalars(select(WebhookDelivery).where(
        WebhookDelivery.endpoint_id == endpoint.id, WebhookDelivery.status == "pending"))]
    session.commit()
    for uid in pending:
        current_app.extensions["desk.jobs"].enqueue(deliver, uid, queue="webhooks")
    return len(pending)


def redeliver(session: Session, delivery: WebhookDelivery, *, actor: str) -> None:
    """Send a delivery again (same delivery id, so receivers can de-duplicate)."""
    delivery.status = "pending"
    delivery.next_attempt_at = utcnow()
    record(session, actor=actor, action="webhooks.redelivered", target_type="webhook_delivery",
           target_id=delivery.delivery_uid)
    session.commit()
    current_app.extensions["desk.jobs"].enqueue(deliver, delivery.delivery_uid, queue="webhooks")


def dispatch_due(now: datetime | None = None) -> int:
    """Periodic sweep: queue pending deliveries whose time has come (covers jobs lost with Redis)."""
    now = now or utcnow()
    uids = list(db.session.scalars(
        select(WebhookDelivery.delivery_uid).join(WebhookEndpoint)
        .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now - timedelta(seconds=5),
               WebhookEndpoint.paused_at.is_(None), WebhookEndpoint.active.is_(True))
        .limit(500)))
    db.session.rollback()
    for uid in uids:
        current_app.extensions["desk.jobs"].enqueue(deliver, uid, queue="webhooks")
    return len(uids)
