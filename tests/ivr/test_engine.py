"""The pure IVR engine: given a node, a call context and the caller's input, the next step."""
from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr import engine
from ivr.engine import (
    Callback,
    CallerFacts,
    CallInput,
    Enqueue,
    Hangup,
    IvrState,
    IvrStateError,
    LookupUnavailable,
    Play,
    Say,
    Voicemail,
)
from tests.ivr.helpers import (
    CLOSED_AT,
    HOLIDAY_AT,
    OPEN_AT,
    FakeLookups,
    P,
    ctx,
    demo_config,
    ivr,
)

MENU = {
    "start": {"type": "say", "prompt": P("Hello"), "next": "menu"},
    "menu": {"type": "menu", "prompt": P("Press 1 or 2"), "speech": True, "retries": 2, "fallback": "agents",
             "options": {"1": {"goto": "sales", "words": {"en": ["sales"], "zh": ["销售"]}},
                         "2": "bye"}},
    "sales": {"type": "enqueue", "queue": "general", "priority_bump": 7,
              "skills": [{"skill": "sales", "min_level": 2}], "prompt": P("Connecting")},
    "agents": {"type": "enqueue", "queue": "general"},
    "bye": {"type": "hangup", "prompt": P("Bye")},
}


def texts(step) -> list[str]:
    return [p.text for p in step.prompts if isinstance(p, Say)]


def kinds(step) -> list[str]:
    return [f.kind for f in step.facts]


def test_start_says_the_greeting_and_waits_at_the_menu():
    step = engine.start(ivr(MENU), ctx())
    assert texts(step) == ["Hello", "Press 1 or 2"]
    assert step.action is None
    assert step.gather.node == "menu" and step.gather.num_digits == 1
    assert step.gather.input == ("dtmf", "speech") and step.gather.hints == ("sales",)
    assert step.state == IvrState(node="menu", language="en", attempts=0, vars={})
    assert kinds(step) == ["ivr.node", "ivr.node"]


def test_start_in_mandarin_speaks_the_zh_text():
    step = engine.start(ivr(MENU), ctx(), language="zh")
    assert texts(step) == ["ZH:Hello", "ZH:Press 1 or 2"]
    assert all(p.language == "zh" for p in step.prompts)
    assert step.gather.hints == ("销售",)


@pytest.mark.parametrize("attempts, user_input, said, node, action, attempts_after", [
    # a right key follows the option
    (0, CallInput(digits="1"), ["Connecting"], "sales", Enqueue("general", (("sales", 2),), 7), None),
    (0, CallInput(digits="2"), ["Bye"], "bye", Hangup(), None),
    # speech keywords work too
    (0, CallInput(speech="I want SALES please"), ["Connecting"], "sales", Enqueue("general", (("sales", 2),), 7),
     None),
    # a wrong key re-prompts with the generic sentence, counting the attempt
    (0, CallInput(digits="7"), ["Sorry, that is not one of the choices.", "Press 1 or 2"], "menu", None, 1),
    (0, CallInput(speech="weather"), ["Sorry, that is not one of the choices.", "Press 1 or 2"], "menu", None, 1),
    # silence re-prompts with the no-input sentence
    (1, CallInput(), ["Sorry, I didn't hear anything.", "Press 1 or 2"], "menu", None, 2),
    # once the retries are spent the fallback is followed
    (2, CallInput(), ["Sorry, I didn't hear anything."], "agents", Enqueue("general"), None),
    (2, CallInput(digits="5"), ["Sorry, that is not one of the choices."], "agents", Enqueue("general"), None),
])
def test_menu_input(attempts, user_input, said, node, action, attempts_after):
    state = IvrState(node="menu", attempts=attempts)
    step = engine.advance(ivr(MENU), state, ctx(), user_input)
    assert texts(step) == said
    assert step.state.node == node
    assert step.action == action
    if attempts_after is not None:
        assert step.gather is not None and step.state.attempts == attempts_after
    else:
        assert step.state.attempts == 0


def test_menu_choice_is_recorded_as_a_fact():
    step = engine.advance(ivr(MENU), IvrState(node="menu"), ctx(), CallInput(digits="1"))
    menu_fact = next(f for f in step.facts if f.kind == "ivr.menu")
    assert dict(menu_fact.data) == {"node": "menu", "key": "1", "via": "dtmf", "goto": "sales"}
    assert kinds(step)[-1] == "ivr.action"


def test_fallback_is_recorded_with_the_retries():
    step = engine.advance(ivr(MENU), IvrState(node="menu", attempts=2), ctx(), CallInput())
    assert [f.kind for f in step.facts][:2] == ["ivr.retry", "ivr.fallback"]
    assert step.facts[1].data["goto"] == "agents"


def test_node_specific_retry_sentences_win_over_the_defaults():
    nodes = dict(MENU, menu=dict(MENU["menu"], no_input=P("Still there?"), invalid=P("Nope")))
    config = ivr(nodes)
    assert texts(engine.advance(config, IvrState(node="menu"), ctx(), CallInput()))[0] == "Still there?"
    assert texts(engine.advance(config, IvrState(node="menu"), ctx(), CallInput(digits="9")))[0] == "Nope"


LANGUAGE = {
    "start": {"type": "language", "prompt": P("For English press 1", "普通话请按2"), "choices": {"1": "en", "2": "zh"},
              "retries": 0, "fallback": "hello", "next": "hello"},
    "hello": {"type": "say", "prompt": P("Hi", "你好"), "next": "bye"},
    "bye": {"type": "hangup"},
}


def test_language_question_is_asked_in_both_languages():
    step = engine.start(ivr(LANGUAGE), ctx())
    assert [(p.text, p.language) for p in step.prompts] == [("For English press 1", "en"), ("普通话请按2", "zh")]


@pytest.mark.parametrize("digits, language, said", [
    ("1", "en", ["Hi"]),
    ("2", "zh", ["你好"]),
    ("", "en", ["Sorry, I didn't hear anything.", "抱歉，没有听到您的输入。", "Hi"]),  # fallback keeps default
    ("8", "en", ["Sorry, that is not one of the choices.", "抱歉，您的选择无效。", "Hi"]),
])
def test_language_choice(digits, language, said):
    step = engine.advance(ivr(LANGUAGE), IvrState(node="start"), ctx(), CallInput(digits=digits))
    assert step.state.language == language
    assert texts(step) == said
    assert step.action == Hangup()


@pytest.mark.parametrize("crm_language, asked, language", [("zh", False, "zh"), ("en", False, "en"),
                                                            (None, True, "en")])
def test_caller_language_from_crm_skips_the_question(crm_language, asked, language):
    nodes = dict(LANGUAGE, start=dict(LANGUAGE["start"], use_caller_language=True))
    step = engine.start(ivr(nodes), ctx(CallerFacts(known=True, language=crm_language)))
    assert (step.gather is not None) == asked
    assert step.state.language == language


HOURS = {
    "start": {"type": "hours", "calendar": "default", "open": "opened", "closed": "closed"},
    "opened": {"type": "enqueue", "queue": "general"},
    "closed": {"type": "voicemail", "queue": "general", "prompt": P("Leave a message"), "max_length_s": 60},
}


@pytest.mark.parametrize("at, action", [
    (OPEN_AT, Enqueue("general")),
    (CLOSED_AT, Voicemail("general", 60)),
    (HOLIDAY_AT, Voicemail("general", 60)),  # 10:00 on a holiday is closed
])
def test_hours_branch(at, action):
    step = engine.start(ivr(HOURS), ctx(at=at))
    assert step.action == action
    assert any(f.kind == "ivr.hours" and f.data["open"] == (at == OPEN_AT) for f in step.facts)


def test_hours_branch_with_a_calendar_the_context_lacks_is_a_state_error():
    config = ivr(dict(HOURS, start=dict(HOURS["start"], calendar="weekend")))
    with pytest.raises(IvrStateError, match="weekend"):
        engine.start(config, ctx())


CALLER = {
    "start": {"type": "caller", "otherwise": "others", "rules": [
        {"when": {"tier": ["vip"]}, "goto": "vip"},
        {"when": {"open_complaint": True, "known": True}, "goto": "complaint"},
        {"when": {"language": "zh"}, "goto": "mandarin"},
        {"when": {"known": False}, "goto": "stranger"},
    ]},
    "vip": {"type": "enqueue", "queue": "vip"},
    "complaint": {"type": "enqueue", "queue": "general", "priority_bump": 50},
    "mandarin": {"type": "enqueue", "queue": "general", "priority_bump": 1},
    "stranger": {"type": "hangup"},
    "others": {"type": "enqueue", "queue": "billing"},
}


@pytest.mark.parametrize("caller, queue_or_hangup", [
    (CallerFacts(known=True, tier="vip", open_complaint=True), "vip"),  # first matching rule wins
    (CallerFacts(known=True, tier="major", open_complaint=True), "general/50"),
    (CallerFacts(known=True, tier="ordinary", language="zh"), "general/1"),
    (CallerFacts(known=False), "hangup"),
    (CallerFacts(known=True, tier="small", language="en"), "billing"),  # otherwise
])
def test_caller_branch(caller, queue_or_hangup):
    step = engine.start(ivr(CALLER), ctx(caller))
    action = step.action
    shown = "hangup" if isinstance(action, Hangup) else action.queue + (f"/{action.priority_bump}"
                                                                         if action.priority_bump else "")
    assert shown == queue_or_hangup


LOOKUP = {
    "start": {"type": "lookup", "kind": "order_status", "prompt": P("Enter your order number"),
              "found": P("Order {number} is {status}, expected {expected_on}.",
                         "订单{number}状态{status}，预计{expected_on}。"),
              "not_found": P("No such order"), "retries": 1, "fallback": "agents", "next": "bye", "min_digits": 3},
    "agents": {"type": "enqueue", "queue": "general"},
    "bye": {"type": "hangup"},
}
ORDERS = {("order_status", "10023"): {"number": "10023", "status": "shipped", "expected_on": date(2026, 12, 3)},
          ("order_status", "555"): {"number": "555", "status": "on_the_moon", "expected_on": None}}


@pytest.mark.parametrize("language, digits, said", [
    ("en", "10023#", ["Order 1 0 0 2 3 is shipped, expected December 3, 2026."]),
    ("zh", "10023", ["订单1 0 0 2 3状态已发货，预计2026年12月3日。"]),
    ("en", "555", ["Order 5 5 5 is on the moon, expected not yet known."]),  # unknown status word, missing date
    ("zh", "555", ["订单5 5 5状态on the moon，预计暂未确定。"]),
])
def test_lookup_reads_back_in_the_callers_language(language, digits, said):
    port = FakeLookups(ORDERS)
    step = engine.advance(ivr(LOOKUP), IvrState(node="start", language=language), ctx(lookups=port),
                          CallInput(digits=digits))
    assert texts(step)[0] == said[0]
    assert step.action == Hangup()
    assert port.asked[0][:2] == ("order_status", digits.rstrip("#"))
    assert any(f.kind == "ivr.lookup" and f.data["found"] for f in step.facts)


def test_lookup_passes_the_caller_to_the_port():
    port = FakeLookups(ORDERS)
    caller = CallerFacts(known=True, customer_id=42)
    engine.advance(ivr(LOOKUP), IvrState(node="start"), ctx(caller, lookups=port), CallInput(digits="10023"))
    assert port.asked[0][2] == caller


@pytest.mark.parametrize("attempts, digits, said, node, asked", [
    (0, "99999", ["No such order", "Enter your order number"], "start", True),   # not found: says why, retries
    (1, "99999", ["No such order"], "agents", True),                              # then the fallback
    (0, "12", ["Sorry, that is not one of the choices.", "Enter your order number"], "start", False),  # too short
    (0, "", ["Sorry, I didn't hear anything.", "Enter your order number"], "start", False),
])
def test_lookup_not_found_and_bad_numbers(attempts, digits, said, node, asked):
    port = FakeLookups(ORDERS)
    step = engine.advance(ivr(LOOKUP), IvrState(node="start", attempts=attempts), ctx(lookups=port),
                          CallInput(digits=digits))
    assert texts(step) == said
    assert step.state.node == node
    assert bool(port.asked) == asked


def test_lookup_without_a_port_is_refused():
    with pytest.raises(LookupUnavailable):
        engine.advance(ivr(LOOKUP), IvrState(node="start"), ctx(), CallInput(digits="10023"))


def test_shipment_and_complaint_fields_are_read_back():
    config = demo_config().ivr
    port = FakeLookups({
        ("shipment_status", "777"): {"number": "777", "status": "out_for_delivery", "carrier": "SF Express",
                                     "expected_on": date(2026, 11, 27), "delivered_on": None},
        ("complaint_status", "4242"): {"reference": "4242", "status": "investigating", "due_on": date(2026, 12, 1)},
    })
    ship = engine.advance(config, IvrState(node="shipment_status"), ctx(lookups=port), CallInput(digits="777#"))
    assert texts(ship)[0] == "The delivery for order 7 7 7 is out for delivery, with SF Express. Expected: " \
                             "November 27, 2026."
    complaint = engine.advance(config, IvrState(node="complaint_status", language="zh"), ctx(lookups=port),
                               CallInput(digits="4242"))
    assert texts(complaint)[0] == "投诉4 2 4 2的处理状态：调查中。我们将在2026年12月1日前答复您。"


GATHER = {
    "start": {"type": "gather", "prompt": P("Your account number?"), "input": ["dtmf", "speech"], "min_digits": 4,
              "max_digits": 6, "save_as": "account", "hints": {"en": ["account"]}, "retries": 1, "fallback": "bye",
              "next": "thanks"},
    "thanks": {"type": "say", "prompt": P("Thanks"), "play": {"en": "http://audio/en.mp3"}, "next": "queue"},
    "queue": {"type": "enqueue", "queue": "general"},
    "bye": {"type": "hangup"},
}


@pytest.mark.parametrize("user_input, saved, node", [
    (CallInput(digits="12345#"), "12345", "queue"),
    (CallInput(speech="  my account is one two  "), "my account is one two", "queue"),
    (CallInput(digits="12"), None, "start"),            # too short
    (CallInput(digits="1234567"), None, "start"),       # too long
    (CallInput(digits="12a4"), None, "start"),          # not digits
    (CallInput(), None, "start"),
])
def test_gather_saves_the_answer(user_input, saved, node):
    step = engine.advance(ivr(GATHER), IvrState(node="start"), ctx(), user_input)
    assert step.state.node == node
    assert step.state.vars.get("account") == saved
    if saved:
        assert Play("http://audio/en.mp3") in step.prompts


def test_gather_spec_carries_the_node_settings():
    step = engine.start(ivr(GATHER), ctx())
    spec = step.gather
    assert (spec.input, spec.finish_on_key, spec.hints, spec.timeout_s) == (("dtmf", "speech"), "#", ("account",), 6)


def test_gather_speech_only_node_refuses_digits():
    nodes = dict(GATHER, start=dict(GATHER["start"], input=["speech"]))
    step = engine.advance(ivr(nodes), IvrState(node="start"), ctx(), CallInput(digits="1234"))
    assert step.state.node == "start" and step.state.attempts == 1


def test_variables_survive_later_steps():
    nodes = {**GATHER, "thanks": {"type": "menu", "prompt": P("1 to queue"), "options": {"1": "queue"},
                                  "fallback": "bye"}}
    config = ivr(nodes)
    first = engine.advance(config, IvrState(node="start"), ctx(), CallInput(digits="1234"))
    second = engine.advance(config, first.state, ctx(), CallInput(digits="1"))
    assert second.state.vars == {"account": "1234"}


@pytest.mark.parametrize("node", ["start", "sales", "nowhere"])
def test_advance_from_a_node_that_takes_no_input_is_a_state_error(node):
    with pytest.raises(IvrStateError):
        engine.advance(ivr(MENU), IvrState(node=node), ctx(), CallInput(digits="1"))


def test_callback_node_gives_a_callback_action():
    nodes = {"start": {"type": "callback", "queue": "general", "prompt": P("We will call"), "priority_bump": 5,
                       "skills": [{"skill": "general"}]}}
    step = engine.start(ivr(nodes), ctx())
    assert step.action == Callback("general", (("general", 1),), 5)
    assert texts(step) == ["We will call"]


@pytest.mark.parametrize("data", [
    {}, {"node": "x", "language": "fr"}, {"node": "x", "attempts": -1}, {"node": "x", "attempts": "many"},
    {"node": "x", "vars": ["not", "a", "dict"]},
])
def test_malformed_stored_state_is_refused(data):
    with pytest.raises(IvrStateError):
        IvrState.from_dict(data)


@given(node=st.sampled_from(["menu", "sales"]), language=st.sampled_from(["en", "zh"]),
       attempts=st.integers(0, 9), variables=st.dictionaries(st.text(min_size=1), st.text()))
@settings(max_examples=100, deadline=None)
def test_state_round_trips_through_its_dict(node, language, attempts, variables):
    state = IvrState(node=node, language=language, attempts=attempts, vars=variables)
    assert IvrState.from_dict(state.to_dict()) == state


@given(digits=st.text(alphabet="0123456789*#", max_size=40), speech=st.text(max_size=80),
       attempts=st.integers(0, 2), language=st.sampled_from(["en", "zh"]))
@settings(max_examples=300, deadline=None)
def test_any_input_at_the_demo_main_menu_gives_a_gather_or_an_action(digits, speech, attempts, language):
    config = demo_config().ivr
    port = FakeLookups()
    step = engine.advance(config, IvrState(node="main_menu", attempts=attempts, language=language),
                          ctx(lookups=port), CallInput(digits=digits, speech=speech))
    assert (step.gather is None) != (step.action is None)
    assert step.state.language == language
    assert all(p.language == language for p in step.prompts if isinstance(p, Say))
    if step.gather is not None:
        assert step.state.attempts <= config.nodes[step.state.node].retries


def test_walk_that_never_asks_is_refused_by_the_engine_too():
    # Validation forbids silent loops, so build the config without it to check the engine's own guard.
    from ivr.config import IvrConfig, SayNode

    looping = IvrConfig.model_construct(entry="a", default_language="en", nodes={
        "a": SayNode(type="say", prompt={"en": "a", "zh": "a"}, next="b"),
        "b": SayNode(type="say", prompt={"en": "b", "zh": "b"}, next="a")}, messages=ivr(MENU).messages)
    with pytest.raises(engine.IvrLoopError):
        engine.start(looping, ctx())

