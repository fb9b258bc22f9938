"""Screen-pops built while the router writes the offer: the event is the one the slow path builds."""
from __future__ import annotations

from agent_console import namespace, payloads
from queues import service
from tests.factories import make_customer, make_interaction, make_order, make_staff


def test_an_offer_from_its_prepared_screenpop_is_the_offer_built_afterwards(db_session, desk_config):
    customer = make_customer(db_session, name="Wang Fang", tier="vip")
    make_order(db_session, customer, number="ORD-8842")
    agent = make_staff(db_session, skills={"vip": 8})
    service.set_presence(db_session, agent.id, "available")
    interaction = make_interaction(db_session, channel="voice", customer=customer)
    service.enqueue_contact(db_session, interaction, "vip", actor="t")
    db_session.commit()
    reasons = [{"code": "tier", "points": 30}]
    prepared = payloads.prepared_screenpop(db_session, interaction.id, desk_config, 130, reasons)

    offer = service.create_offer(db_session, interaction_id=interaction.id, agent_id=agent.id,
                                 expires_at=interaction.created_at, cost=1, priority=130, priority_reasons=reasons,
                                 trace={})
    db_session.commit()
    payload = {"offer_id": offer.id, "interaction_id": interaction.id, "agent_id": agent.id,
               "expires_at": offer.expires_at.isoformat(), "priority": 130, "priority_reasons": reasons,
               "channel": "voice", "queue": "vip"}
    fast = payloads.offer_from_prepared(payload, prepared).model_dump(mode="json")
    slow = payloads.offer_event(db_session, payload, desk_config).model_dump(mode="json")
    for built in (fast, slow):
        built["screenpop"]["interaction"].pop("waited_s")
    assert fast == slow and fast["screenpop"]["interaction"]["state"] == "offered"
    assert fast["screenpop"]["customer"]["orders"][0]["number"] == "ORD-8842"
    assert payloads.prepared_screenpop(db_session, 10**9, desk_config, 0, []) is None


def test_prepared_screenpops_are_taken_once_and_the_oldest_go_past_the_limit():
    held = namespace._Prepared(limit=2)
    for key in ((1, 9), (2, 9), (3, 9)):
        held.put(key, {"key": key})
    assert held.take((1, 9)) is None  # an offer never made: its pop went with age
    assert held.take((2, 9)) == {"key": (2, 9)} and held.take((2, 9)) is None
    assert held.take((3, 9)) == {"key": (3, 9)}
