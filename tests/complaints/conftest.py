"""Fixtures shared by the complaint tests: staff of every approval role, a job recorder and an event log."""
from __future__ import annotations

import pytest

from app import realtime
from tests.factories import make_staff


class RecordingJobs:
    """Stands in for the job runner: remembers what was enqueued, runs nothing."""

    def __init__(self):
        self.calls = []

    def enqueue(self, func, *args, queue="default", delay=None, job_id=None, **kwargs):
        self.calls.append((func.__name__, args, queue, delay, job_id))
        return job_id


@pytest.fixture()
def jobs(app):
    original = app.extensions["desk.jobs"]
    recorder = RecordingJobs()
    app.extensions["desk.jobs"] = recorder
    yield recorder
    app.extensions["desk.jobs"] = original


@pytest.fixture()
def people(db_session):
    return {
        "agent": make_staff(db_session, role="agent"),
        "lead": make_staff(db_session, role="supervisor"),
        "lead2": make_staff(db_session, role="supervisor"),
        "head": make_staff(db_session, role="admin"),
        "head2": make_staff(db_session, role="admin"),
    }


class EventLog:
    """Every realtime event delivered (that is, committed) while the test runs."""

    def __init__(self):
        self.seen: list[tuple[str, dict]] = []

    def __call__(self, name, payload):
        self.seen.append((name, payload))

    def named(self, name: str) -> list[dict]:
        return [payload for seen, payload in self.seen if seen == name]


@pytest.fixture()
def events():
    log = EventLog()
    realtime.subscribe(log)
    yield log
    realtime.unsubscribe(log)


@pytest.fixture(autouse=True)
def _forget_scheduled_jobs(request):
    """Delayed jobs a test scheduled (SLA checks, notice retries) must not run in another domain's test."""
    runner = request.getfixturevalue("_app").extensions["desk.jobs"] if "app" in request.fixturenames else None
    yield
    getattr(runner, "scheduled", []).clear()
