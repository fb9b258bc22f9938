"""Periodic work (IMAP polls, SLA sweeps, webhook retries, nightly value recomputation, audit purge).

Domains register ``"module:function"`` with an interval in ``PERIODIC_TASKS``; each function takes no
arguments and runs inside an app context. One scheduler is active at a time: in production the
``worker`` processes race for a Redis lock and the winner enqueues due tasks as RQ jobs; in the
embedded desk a daemon thread runs them in-process. Tests call ``run_due`` directly.
"""
from __future__ import annotations

import importlib
import logging
import threading
import time
from dataclasses import dataclass

from flask import Flask

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeriodicTask:
    ref: str  # "module:function"
    every_s: int
    queue: str = "default"


PERIODIC_TASKS: list[PeriodicTask] = [
    PeriodicTask("app.webhooks.service:dispatch_due", 30, "webhooks"),
    PeriodicTask("app.audit.jobs:purge_expired_entries", 24 * 3600),
    PeriodicTask("app.crm.jobs:nightly_tick", 300, "reports"),
    PeriodicTask("app.complaints.jobs:sweep_sla_job", 60, "sla"),
    PeriodicTask("app.channels.email.jobs:email_tick_job", 15, "email"),  # gated by email.poll.interval_s
    PeriodicTask("app.channels.chat_socket:sweep_chats_job", 30),
]
LOCK_KEY = "desk:periodic:leader"


def _resolve(ref: str):
    module, attr = ref.split(":")
    return getattr(importlib.import_module(module), attr)


def run_due(app: Flask, last_run: dict[str, float], now: float, *, enqueue: bool) -> list[str]:
    """Run (or enqueue) every task whose interval has passed; returns the refs started."""
    started = []
    for task in PERIODIC_TASKS:
        if now - last_run.get(task.ref, 0.0) < task.every_s:
            continue
        last_run[task.ref] = now
        started.append(task.ref)
        func = _resolve(task.ref)
        if enqueue:
            app.extensions["desk.jobs"].enqueue(func, queue=task.queue)
            continue
        with app.app_context():
            try:
                func()
            except Exception:  # one failing task must not stop the others; it is retried next interval
                log.exception("periodic task %s failed", task.ref)
    return started


def start_scheduler(app: Flask, *, enqueue: bool, tick_s: float = 5.0) -> threading.Event:
    """Start the scheduler loop on a daemon thread; set the returned event to stop it. It holds a Redis
    lock (renewed every tick) so only one process of a deployment schedules; the others keep trying in
    case the leader dies."""
    redis = app.extensions["desk.redis"]
    identity = f"{id(app)}-{threading.get_ident()}-{time.time()}"
    lease_ms = max(int(tick_s * 3000), 1000)
    stop = threading.Event()

    def loop() -> None:
        last_run: dict[str, float] = {}
        while not stop.is_set():
            try:
                leader = redis.set(LOCK_KEY, identity, nx=True, px=lease_ms) or redis.get(LOCK_KEY) == identity
                if leader:
                    redis.pexpire(LOCK_KEY, lease_ms)
                    run_due(app, last_run, time.time(), enqueue=enqueue)
            except Exception:  # Redis down: keep trying; work is delayed, never lost (the DB holds it)
                log.exception("periodic scheduler tick failed")
            stop.wait(tick_s)

    threading.Thread(target=loop, name="desk-periodic", daemon=True).start()
    return stop


def init_app(app: Flask) -> None:
    """Embedded default: run periodic tasks on a thread of this process (never under tests, and never in
    a ``flask ...`` command: ``flask db upgrade`` on a fresh machine has no tables for them yet)."""
    import click

    settings = app.extensions["desk.settings"]
    if app.config.get("TESTING") or settings.redis_url or not app.config.get("PERIODIC_THREAD", True):
        return
    if click.get_current_context(silent=True) is not None:
        return
    app.extensions["desk.periodic.stop"] = start_scheduler(app, enqueue=False)
