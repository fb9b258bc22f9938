"""Chat test fixtures: the routing fallback (explicitly), timers off, and an agent who takes a chat."""
from __future__ import annotations

import pytest

from app.interactions.service import transition
from app.interactions.states import State


@pytest.fixture()
def fallback_routing(monkeypatch):
    """Use the portal's explicit routing fallback (no router process in these tests)."""
    from app.portal import routing

    monkeypatch.setattr(routing, "routing_service", lambda: None)


@pytest.fixture()
def no_timers(app):
    app.config["CHAT_TIMERS"] = False
    yield
    app.config.pop("CHAT_TIMERS", None)


@pytest.fixture()
def open_hours(app, monkeypatch):
    """Every queue open, whatever the wall clock says."""
    from app.channels import chat

    monkeypatch.setattr(chat, "queue_is_open", lambda desk_config, queue, at: True)


def connect_agent(session, interaction, agent) -> None:
    """What the router and the console do when an agent takes a waiting chat."""
    session.refresh(interaction)
    transition(session, interaction, State.OFFERED, actor="router")
    interaction.agent_id = agent.id
    transition(session, interaction, State.CONNECTED, actor=f"staff:{agent.id}")
    session.commit()


@pytest.fixture(autouse=True)
def _settle_background_fan_out(app):
    """After each test, let the agent console's background fan-out (it reads the database off the
    committing thread) finish, so the next test's table reset never races it (a PostgreSQL deadlock)."""
    import time

    yield
    dispatcher = getattr(__import__("agent_console.namespace", fromlist=["_dispatcher"]), "_dispatcher", None)
    queues = getattr(dispatcher, "_queues", None) or []
    deadline = time.monotonic() + 5
    while any(not q.empty() for q in queues) and time.monotonic() < deadline:
        time.sleep(0.02)
    if queues:
        time.sleep(0.1)  # the job taken off a queue last may still be running
