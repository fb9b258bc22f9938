"""The long-running processes' collector settings (app.collector)."""
from __future__ import annotations

import gc

from app.collector import FULL_EVERY, settle_collector


def test_settling_freezes_start_up_objects_and_thins_full_collections():
    before = gc.get_threshold()
    try:
        settle_collector()
        assert gc.get_freeze_count() > 0  # what start-up built is out of the collector's sight
        assert gc.get_threshold() == (before[0], before[1], FULL_EVERY)
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_a_gc_log_records_the_collections_that_last(tmp_path, monkeypatch):
    import json

    from app import collector

    before, callbacks = gc.get_threshold(), list(gc.callbacks)
    monkeypatch.setenv("DESK_GC_LOG", str(tmp_path))
    monkeypatch.setattr(collector, "LOGGED_MS", 0.0)  # every collection, to see one
    try:
        settle_collector()
        gc.collect(1)
    finally:
        gc.callbacks[:] = callbacks
        gc.unfreeze()
        gc.set_threshold(*before)
    (log,) = tmp_path.glob("gc-*.jsonl")
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(line["generation"] == 1 and line["ms"] >= 0 for line in lines)


def test_the_job_worker_settles_its_collector_before_it_works(monkeypatch):
    """A stand-in app: a second real one would re-bind the process-wide extensions (Socket.IO) the
    rest of the suite's app uses."""
    from contextlib import nullcontext
    from types import SimpleNamespace

    from app import worker

    seen = {}

    class FakeWorker:
        def __init__(self, queues, connection):
            seen["queues"] = queues

        def work(self, with_scheduler):
            seen["frozen"] = gc.get_freeze_count()

    stand_in = SimpleNamespace(extensions={"desk.settings": SimpleNamespace(redis_url="redis://127.0.0.1:6379/15")},
                               app_context=nullcontext)
    before = gc.get_threshold()
    gc.unfreeze()  # whatever an earlier import froze (app.wsgi settles at import)
    assert gc.get_freeze_count() == 0
    monkeypatch.setattr(worker, "create_app", lambda: stand_in)
    monkeypatch.setattr(worker, "Worker", FakeWorker)
    monkeypatch.setattr("app.audit.config_watch.audit_startup_config", lambda app: None)
    monkeypatch.setattr("app.periodic.start_scheduler", lambda app, enqueue: None)
    try:
        assert worker.main(["email"]) == 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
    assert seen["queues"] == ["email"] and seen["frozen"] > 0
