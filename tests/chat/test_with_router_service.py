"""The chat with the routing domain's own service (``queues.service``) rather than the fallback."""
from __future__ import annotations

import pytest

from app.channels import chat
from app.interactions.states import State
from app.portal import routing
from tests.chat.conftest import connect_agent
from tests.factories import make_customer, make_staff

pytestmark = pytest.mark.usefixtures("no_timers", "open_hours")


@pytest.fixture()
def service():
    found = routing.routing_service()
    assert found is not None, "the routing service is part of the desk"
    return found


def test_chat_is_queued_with_priority_and_position_by_the_router_service(app, db_session, service):
    make_customer(db_session, email="vip@example.com", tier="vip")
    db_session.commit()
    first, _ = chat.start_chat(db_session, app.extensions["desk.config"], name="V", email="vip@example.com",
                               topic="general")
    assert first.interaction.state == State.QUEUED and first.interaction.priority > 0
    assert any(r.get("code") for r in first.interaction.priority_reasons)
    status = chat.status(db_session, first)
    assert status["position"] == 1


def test_transfer_and_leaving_go_through_the_router_service(app, db_session, service):
    started, _ = chat.start_chat(db_session, app.extensions["desk.config"], name="A", email="a@example.com",
                                 topic="general")
    agent = make_staff(db_session)
    db_session.commit()
    connect_agent(db_session, started.interaction, agent)
    chat.transfer_chat(db_session, started.interaction_id, agent.id, queue="billing", note="bill")
    db_session.refresh(started.interaction)
    assert started.interaction.state == State.QUEUED and started.interaction.queue == "billing"
    chat.post_customer_message(db_session, app.extensions["desk.config"].chat, started, client_id="c-00000001",
                               text="still waiting")
    case = chat.customer_leaves(db_session, app.extensions["desk.config"], started, base_url="x")
    db_session.refresh(started.interaction)
    assert started.interaction.state == State.ABANDONED and case.state == State.QUEUED and case.queue == "billing"
