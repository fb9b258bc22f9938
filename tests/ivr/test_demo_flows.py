"""Whole calls through the demo menu in config.yaml, key by key, in both languages (pure engine)."""
from __future__ import annotations

from datetime import date

import pytest

from ivr import engine
from ivr.engine import Callback, CallerFacts, CallInput, Enqueue, Hangup, Say, Voicemail
from tests.ivr.helpers import (
    CLOSED_AT,
    HOLIDAY_AT,
    OPEN_AT,
    FakeLookups,
    ctx,
    demo_config,
)

PORT = FakeLookups({
    ("order_status", "10023"): {"number": "10023", "status": "shipped", "expected_on": date(2026, 11, 30)},
    ("complaint_status", "770"): None,
})


def call(keys: list[str], *, caller: CallerFacts | None = None, at=OPEN_AT):
    """Dial in, press each key in turn; return every step the caller went through."""
    config = demo_config().ivr
    context = ctx(caller, at=at, lookups=PORT)
    steps = [engine.start(config, context)]
    for key in keys:
        assert steps[-1].gather is not None, f"the call ended before key {key!r}"
        steps.append(engine.advance(config, steps[-1].state, context, CallInput(digits=key)))
    return steps


def heard(steps) -> str:
    return " | ".join(p.text for step in steps for p in step.prompts if isinstance(p, Say))


@pytest.mark.parametrize("language_key, order_sentence", [
    ("1", "Order 1 0 0 2 3 is shipped. Expected delivery: November 30, 2026."),
    ("2", "订单1 0 0 2 3的状态：已发货。预计送达：2026年11月30日。"),
])
def test_order_status_then_an_agent(language_key, order_sentence):
    steps = call([language_key, "1", "10023#", "0"])
    assert order_sentence in heard(steps)
    assert steps[-1].action == Enqueue("general")
    assert steps[-1].state.language == ("zh" if language_key == "2" else "en")


def test_billing_by_key_carries_the_billing_skill():
    steps = call(["1", "3"])
    assert steps[-1].action == Enqueue("billing", (("billing", 3),), 0)


def test_vip_caller_is_greeted_and_queued_with_priority_in_their_own_language():
    steps = call([], caller=CallerFacts(known=True, tier="vip", language="zh"))
    assert steps[0].action == Enqueue("vip", (), 100)
    assert "贵宾" in heard(steps)


def test_caller_with_open_complaint_hears_the_complaint_menu_and_reference_not_found():
    steps = call(["1", "770#", "770#", "770#"], caller=CallerFacts(known=True, tier="ordinary", open_complaint=True,
                                                              language="en"))
    assert "open complaint" in heard(steps[:1])
    # three misses: the not-found sentence each time, then the fallback (back to the hours check, the menu)
    assert heard(steps).count("could not find that complaint reference") == 3
    assert steps[-1].state.node == "complaint_menu"


@pytest.mark.parametrize("at", [CLOSED_AT, HOLIDAY_AT])
def test_closed_desk_offers_a_callback(at):
    steps = call(["2", "2"], at=at)
    assert "服务时间" in heard(steps)
    assert steps[-1].action == Callback("general", (), 0)


def test_closed_desk_voicemail_and_order_status():
    assert call(["1", "1"], at=CLOSED_AT)[-1].action == Voicemail("general", 120)
    steps = call(["1", "3", "10023#", "0"], at=CLOSED_AT)
    assert steps[-1].state.node == "closed_menu"  # 'agent' while closed goes back to the closed menu


def test_silent_caller_ends_in_the_general_queue():
    steps = call(["", "", "", "", ""])  # language question: 1 retry; main menu: 2 retries
    assert steps[-1].action == Enqueue("general")


def test_goodbye_after_a_lookup():
    steps = call(["1", "1", "10023#", "9"])
    assert steps[-1].action == Hangup()
