"""Periodic tasks: due tasks run once per interval, failures are contained, one leader schedules."""
from __future__ import annotations

import time

from app import periodic
from app.periodic import PeriodicTask, run_due

CALLS: list[str] = []


def task_ok():
    CALLS.append("ok")


def task_broken():
    raise RuntimeError("boom")


def test_due_tasks_run_once_per_interval(app, monkeypatch):
    CALLS.clear()
    monkeypatch.setattr(periodic, "PERIODIC_TASKS", [PeriodicTask(f"{__name__}:task_broken", 60),
                                                     PeriodicTask(f"{__name__}:task_ok", 60)])
    last: dict[str, float] = {}
    assert len(run_due(app, last, 1000.0, enqueue=False)) == 2
    assert run_due(app, last, 1030.0, enqueue=False) == []
    assert len(run_due(app, last, 1061.0, enqueue=True)) == 2  # enqueued: inline jobs in tests
    assert CALLS == ["ok", "ok"]


def test_the_scheduler_thread_takes_the_lock(app, monkeypatch):
    CALLS.clear()
    monkeypatch.setattr(periodic, "PERIODIC_TASKS", [PeriodicTask(f"{__name__}:task_ok", 3600)])
    stop = periodic.start_scheduler(app, enqueue=False, tick_s=0.05)
    try:
        deadline = time.time() + 10
        while not CALLS and time.time() < deadline:
            time.sleep(0.02)
        assert CALLS == ["ok"]
        assert app.extensions["desk.redis"].get(periodic.LOCK_KEY)
    finally:
        stop.set()
        time.sleep(0.2)


def test_audit_purge_job(app, db_session):
    from datetime import timedelta

    from app.audit.jobs import purge_expired_entries
    from app.audit.service import record
    from app.db import utcnow

    record(db_session, actor="system", action="x", at=utcnow() - timedelta(days=3000))
    db_session.commit()
    assert purge_expired_entries() == 1


def test_the_embedded_scheduler_starts_in_the_server_but_not_in_a_flask_command(monkeypatch):
    """``make run`` runs ``flask db upgrade`` before any table exists: its process must not schedule."""
    from types import SimpleNamespace

    import click
    from click.testing import CliRunner
    from flask import Flask

    started = []
    monkeypatch.setattr(periodic, "start_scheduler", lambda app, enqueue: started.append(app) or "stop")
    embedded = Flask("embedded")
    embedded.extensions["desk.settings"] = SimpleNamespace(redis_url=None)

    @click.command()
    def upgrade():
        periodic.init_app(embedded)

    assert CliRunner().invoke(upgrade).exit_code == 0
    assert started == [] and "desk.periodic.stop" not in embedded.extensions
    periodic.init_app(embedded)  # the server: no click context
    assert started == [embedded] and embedded.extensions["desk.periodic.stop"] == "stop"
