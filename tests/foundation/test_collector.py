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
