"""Fixtures for the routing tests."""
from __future__ import annotations

import pytest

from app import realtime
from queues import router


@pytest.fixture()
def events(app):
    seen: list[tuple[str, dict]] = []

    def listener(name, payload):
        seen.append((name, payload))

    realtime.subscribe(listener)
    router.reset(app)
    yield seen
    realtime.unsubscribe(listener)
    router.reset(app)
