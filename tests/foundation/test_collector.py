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
