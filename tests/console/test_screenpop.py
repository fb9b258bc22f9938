"""The screen-pop: rules (table-driven) and the assembled payload for real rows."""
from __future__ import annotations

import pytest

from agent_console.screenpop import build_screenpop, explain_priority, identification, summarise_ivr
from app.interactions.service import record_fact, transition
from tests.factories import make_customer, make_interaction, make_order


@pytest.mark.parametrize("facts, expected_path, expected_lookups, retries", [
    ([], [], [], 0),
    ([("ivr.node", {"node": "main_menu", "type": "menu"}), ("ivr.retry", {"node": "main_menu"}),
      ("ivr.node", {"node": "main_menu", "type": "menu"}),
      ("ivr.menu", {"node": "main_menu", "key": "1", "via": "digits"}),
      ("ivr.node", {"node": "order_status", "type": "lookup"}),
      ("ivr.lookup", {"lookup": "order_status", "reference": "ORD1", "found": True}),
      ("hold", {}),
      ("ivr.node", {"node": "general_queue", "type": "enqueue"})],
     [{"node": "main_menu", "type": "menu", "choice": "1", "via": "digits"},
      {"node": "order_status", "type": "lookup"}, {"node": "general_queue", "type": "enqueue"}],
     [{"lookup": "order_status", "reference": "ORD1", "found": True}], 1),
    # a menu fact before any node is ignored rather than crashing
    ([("ivr.menu", {"key": "9"})], [], [], 0),
])
def test_summarise_ivr(facts, expected_path, expected_lookups, retries):
    summary = summarise_ivr({}, facts)
    assert summary["path"] == expected_path
    assert summary["self_service"] == expected_lookups
    assert summary["retries"] == retries
    assert summary["used_ivr"] == bool(expected_path or expected_lookups)


def test_summarise_ivr_language_and_collected_attributes():
    summary = summarise_ivr({"order_number": "ORD9", "ivr_state": {"node": "x"}, "nested": {"a": 1},
                             "from": "+8613800000000"},
                            [("ivr.language", {"language": "zh", "source": "caller"})])
    assert summary["language"] == {"language": "zh", "source": "caller"}
    assert summary["collected"] == {"from": "+8613800000000", "order_number": "ORD9"}


def test_summarise_ivr_shows_a_complaint_made_in_the_phone_menu():
    summary = summarise_ivr({}, [("ivr.node", {"node": "new_complaint", "type": "complaint"}),
                                 ("ivr.complaint_registered", {"complaint_id": 7, "reference": "CMP-100042",
                                                               "level": "P3", "category": "delivery_delay",
                                                               "recording_sid": "RE1"})])
    assert summary["complaints"] == [{"reference": "CMP-100042", "level": "P3", "category": "delivery_delay"}]
    assert summary["used_ivr"] is True
    assert summarise_ivr({}, [])["complaints"] == []


def test_summarise_ivr_falls_back_to_a_stored_menu_path():
    assert summarise_ivr({"menu_path": ["a", "b"]}, [])["path"] == [{"node": "a", "type": None},
                                                                   {"node": "b", "type": None}]


@pytest.mark.parametrize("priority, reasons, order, unexplained", [
    (0, [], [], 0),
    (350, [{"code": "tier", "points": 300}, {"code": "waiting", "points": 50}], ["tier", "waiting"], 0),
    (500, [{"code": "waiting", "points": 50}, {"code": "complaint", "points": 400}], ["complaint", "waiting"], 50),
    (10, [{"code": "b", "points": 5}, {"code": "a", "points": 5}], ["a", "b"], 0),
])
def test_explain_priority(priority, reasons, order, unexplained):
    explained = explain_priority(priority, reasons)
    assert [r["code"] for r in explained["reasons"]] == order
    assert explained["unexplained"] == unexplained and explained["value"] == priority


@pytest.mark.parametrize("customer, status, can_link", [
    (None, "unknown", True), ({"is_prospect": True}, "prospect", True), ({"is_prospect": False}, "known", False),
])
def test_identification(customer, status, can_link):
    assert identification(customer, "+1") == {"status": status, "caller": "+1", "can_link": can_link}


def test_build_screenpop_for_a_known_customer(db_session, desk_config):
    customer = make_customer(db_session, name="Li Wei", tier="vip", phone="+8613800138000")
    make_order(db_session, customer, number="ORD-77", shipment_status="in_transit")
    earlier = make_interaction(db_session, channel="email", customer=customer, subject="Invoice copy")
    call = make_interaction(db_session, customer=customer, attributes={"from": "+8613800138000"})
    call.queue = "vip"
    transition(db_session, call, "ivr", actor="test")
    record_fact(db_session, call, "ivr.node", actor="ivr", data={"node": "vip_greeting", "type": "say"})
    transition(db_session, call, "queued", actor="test")
    db_session.commit()

    pop = build_screenpop(db_session, call, desk_config, priority=400,
                          priority_reasons=[{"code": "tier", "points": 300, "en": "VIP", "zh": "贵宾"}])

    assert pop["customer"]["customer"]["name"] == "Li Wei"
    assert pop["identification"] == {"status": "known", "caller": "+8613800138000", "can_link": False}
    assert [o["number"] for o in pop["customer"]["orders"]] == ["ORD-77"]
    assert pop["customer"]["orders"][0]["shipments"][0]["status"] == "in_transit"
    assert [i["id"] for i in pop["customer"]["interactions"]] == [earlier.id]  # not the call itself
    assert pop["interaction"]["queue_label"] == {"en": "VIP line", "zh": "贵宾专线"}
    assert pop["ivr"]["path"] == [{"node": "vip_greeting", "type": "say"}]
    assert pop["priority"] == {"value": 400, "reasons": [{"code": "tier", "points": 300, "en": "VIP", "zh": "贵宾"}],
                               "unexplained": 100}


def test_build_screenpop_for_an_unknown_caller(db_session, desk_config):
    call = make_interaction(db_session)
    call.queue = "no_such_queue"
    db_session.commit()
    pop = build_screenpop(db_session, call, desk_config)
    assert pop["customer"] is None
    assert pop["identification"]["status"] == "unknown"
    assert pop["interaction"]["queue_label"] == {"en": "no_such_queue", "zh": "no_such_queue"}
    assert pop["priority"]["value"] == 0


def test_build_screenpop_for_a_prospect_offers_linking(db_session, desk_config):
    prospect = make_customer(db_session, name="+8613911112222", is_prospect=True, tier="small")
    call = make_interaction(db_session, customer=prospect)
    db_session.commit()
    pop = build_screenpop(db_session, call, desk_config)
    assert pop["identification"]["status"] == "prospect" and pop["identification"]["can_link"]
    assert pop["interaction"]["queue_label"] is None
