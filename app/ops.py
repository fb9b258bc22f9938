"""Operations endpoints: liveness, readiness and Prometheus metrics."""
from __future__ import annotations

import logging
import time

from flask import Blueprint, Response, current_app, g, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from sqlalchemy import text

from app.extensions import csrf, db

log = logging.getLogger(__name__)
bp = Blueprint("ops", __name__)
REGISTRY = CollectorRegistry()
REQUESTS = Counter("desk_http_requests_total", "HTTP requests", ["method", "endpoint", "status"],
                   registry=REGISTRY)
LATENCY = Histogram("desk_http_request_seconds", "HTTP request latency", ["endpoint"], registry=REGISTRY)


@bp.before_app_request
def _start_timer() -> None:
    g.request_started = time.perf_counter()


def observe_request(request, response) -> None:
    endpoint = request.endpoint or "unknown"
    REQUESTS.labels(request.method, endpoint, str(response.status_code)).inc()
    started = g.get("request_started")
    if started is not None:
        LATENCY.labels(endpoint).observe(time.perf_counter() - started)


@bp.get("/healthz")
@csrf.exempt
def healthz():
    return jsonify(status="ok")


def _check_database() -> str:
    try:
        db.session.execute(text("SELECT 1"))
        return "ok"
    except Exception as exc:  # readiness reports any failure as text, never raises
        log.warning("readiness: database unreachable: %s", exc)
        db.session.rollback()
        return f"error: {type(exc).__name__}"


def _check_redis() -> str:
    try:
        current_app.extensions["desk.redis"].ping()
        return "ok"
    except Exception as exc:
        log.warning("readiness: redis unreachable: %s", exc)
        return f"error: {type(exc).__name__}"


@bp.get("/readyz")
def readyz():
    checks = {"database": _check_database(), "redis": _check_redis()}
    healthy = all(value == "ok" for value in checks.values())
    return jsonify(status="ok" if healthy else "unavailable", checks=checks), (200 if healthy else 503)


@bp.get("/metrics")
def metrics():
    return Response(generate_latest(REGISTRY), mimetype=CONTENT_TYPE_LATEST)
