"""Start-up checks: a broken IVR graph or node stops the desk with a message naming the node."""
from __future__ import annotations

import copy

import pytest
import yaml
from pydantic import ValidationError

from app.config import DEFAULT_CONFIG_PATH, DeskConfig
from ivr.config import IvrConfig
from ivr.validation import graph_problems
from tests.ivr.helpers import P

BASE = {
    "start": {"type": "menu", "prompt": P("Menu"), "options": {"1": "queue", "2": "bye"}, "fallback": "bye"},
    "queue": {"type": "enqueue", "queue": "general"},
    "bye": {"type": "hangup"},
}


def with_nodes(**changes) -> dict:
    nodes = copy.deepcopy(BASE)
    for node_id, node in changes.items():
        if node is None:
            nodes.pop(node_id)
        else:
            nodes[node_id] = node
    return nodes


def error_of(nodes: dict, entry: str = "start") -> str:
    with pytest.raises(ValidationError) as caught:
        IvrConfig.model_validate({"entry": entry, "nodes": nodes})
    return str(caught.value)


@pytest.mark.parametrize("nodes, entry, message", [
    (with_nodes(start={"type": "menu", "prompt": P("M"), "options": {"1": "queue", "3": "billing"},
                       "fallback": "bye"}),
     "start", "ivr.nodes.start.options.3: unknown node 'billing'"),
    (with_nodes(), "welcome", "ivr.entry: unknown node 'welcome'"),
    (with_nodes(start={"type": "say", "prompt": P("Hi"), "next": "menu"}), "start",
     "ivr.nodes.start.next: unknown node 'menu'"),
    (with_nodes(start={"type": "caller", "rules": [{"when": {"tier": ["vip"]}, "goto": "vip"}],
                       "otherwise": "queue"}), "start", "ivr.nodes.start.rules.0.goto: unknown node 'vip'"),
    (with_nodes(start={"type": "hours", "open": "queue", "closed": "shut"}), "start",
     "ivr.nodes.start.closed: unknown node 'shut'"),
    (with_nodes(start=dict(BASE["start"], fallback="agents")), "start",
     "ivr.nodes.start.fallback: unknown node 'agents'"),
    (with_nodes(orphan={"type": "hangup"}), "start", "ivr.nodes.orphan: unreachable from the entry node 'start'"),
    (with_nodes(start={"type": "say", "prompt": P("A"), "next": "again"},
                again={"type": "hours", "open": "start", "closed": "queue"}, bye=None),
     "start", "ivr.nodes.start: loop start -> again -> start never asks the caller for input"),
    (with_nodes(start={"type": "caller", "rules": [{"when": {"known": True}, "goto": "start"}],
                       "otherwise": "queue"}, bye=None),
     "start", "ivr.nodes.start: loop start -> start never asks the caller for input"),
    (with_nodes(start={"type": "language", "prompt": P("Lang"), "choices": {"1": "en"}, "use_caller_language": True,
                       "fallback": "queue", "next": "hello"},
                hello={"type": "say", "prompt": P("Hi"), "next": "start"}, bye=None),
     "start", "ivr.nodes.start: loop start -> hello -> start never asks the caller for input"),
])
def test_graph_errors_name_the_node(nodes, entry, message):
    assert message in error_of(nodes, entry)


def test_a_loop_through_a_menu_is_fine():
    nodes = with_nodes(queue={"type": "say", "prompt": P("Again"), "next": "start"})
    config = IvrConfig.model_validate({"entry": "start", "nodes": nodes})
    assert graph_problems(config) == []


def test_a_language_question_in_a_loop_is_fine_when_it_always_asks():
    nodes = with_nodes(start={"type": "language", "prompt": P("Lang"), "choices": {"1": "en"},
                              "fallback": "queue", "next": "hello"},
                       hello={"type": "say", "prompt": P("Hi"), "next": "start"}, bye=None)
    IvrConfig.model_validate({"entry": "start", "nodes": nodes})


def test_several_problems_are_all_reported():
    nodes = with_nodes(orphan={"type": "hangup"}, lonely={"type": "hangup"})
    message = error_of(nodes)
    assert "ivr.nodes.orphan: unreachable" in message and "ivr.nodes.lonely: unreachable" in message


@pytest.mark.parametrize("node, fragment", [
    ({"type": "menu", "prompt": P("M"), "options": {"12": "queue"}, "fallback": "bye"},
     "key '12' is not a single phone key"),
    ({"type": "language", "prompt": P("L"), "choices": {"x": "en"}, "fallback": "bye", "next": "bye"},
     "key 'x' is not a single phone key"),
    ({"type": "language", "prompt": P("L"), "choices": {"1": "fr"}, "fallback": "bye", "next": "bye"}, "choices.1"),
    ({"type": "say", "next": "bye"}, "a say node needs a prompt or play URLs"),
    ({"type": "say", "prompt": {"en": "only English"}, "next": "bye"}, "prompt.zh"),
    ({"type": "say", "prompt": {"en": "", "zh": "空"}, "next": "bye"}, "prompt.en"),
    ({"type": "caller", "rules": [{"when": {}, "goto": "bye"}], "otherwise": "bye"},
     "a condition needs at least one of known, tier, open_complaint, language"),
    ({"type": "caller", "rules": [{"when": {"tier": ["platinum"]}, "goto": "bye"}], "otherwise": "bye"}, "tier"),
    ({"type": "lookup", "kind": "order_status", "prompt": P("N"), "found": P("Order {number} costs {price}"),
      "not_found": P("no"), "fallback": "bye", "next": "bye"},
     "found.en: unknown placeholder {price} for order_status"),
    ({"type": "lookup", "kind": "order_status", "prompt": P("N"), "found": P("ok"), "not_found": P("no"),
      "min_digits": 9, "max_digits": 3, "fallback": "bye", "next": "bye"}, "min_digits must not exceed max_digits"),
    ({"type": "gather", "prompt": P("N"), "save_as": "x", "min_digits": 9, "max_digits": 3, "fallback": "bye",
      "next": "bye"}, "min_digits must not exceed max_digits"),
    ({"type": "gather", "prompt": P("N"), "save_as": "Bad Name", "fallback": "bye", "next": "bye"}, "save_as"),
    ({"type": "teleport", "next": "bye"}, "does not match any of the expected tags"),
    ({"type": "hangup", "colour": "red"}, "colour"),
    ({"type": "menu", "prompt": P("M"), "options": {"1": "bye"}, "fallback": "bye", "retries": 12}, "retries"),
])
def test_bad_nodes_are_refused_with_their_path(node, fragment):
    nodes = with_nodes(start=node)
    assert fragment in error_of(nodes)


def test_waiting_prompts_only_take_their_placeholders():
    with pytest.raises(ValidationError, match=r"position.zh: unknown placeholder \{minutes\}"):
        IvrConfig.model_validate({"waiting": {"position": {"en": "#{position}", "zh": "{minutes}"}}})
    with pytest.raises(ValidationError, match="callback_key and voicemail_key must differ"):
        IvrConfig.model_validate({"waiting": {"callback_key": "1", "voicemail_key": "1"}})


def test_status_words_add_to_the_built_in_ones():
    config = IvrConfig.model_validate({"status_words": {"shipped": {"en": "sent", "zh": "已寄出"}, "lost": P("lost")}})
    assert config.status_words["shipped"].en == "sent"
    assert config.status_words["lost"].en == "lost"
    assert config.status_words["delivered"].zh == "已送达"


def test_an_ivr_section_left_out_gives_a_working_default():
    config = IvrConfig()
    assert config.entry == "welcome" and config.nodes["queue"].queue == "general"


def _desk_raw() -> dict:
    return yaml.safe_load(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))


def test_the_demo_config_validates():
    config = DeskConfig.model_validate(_desk_raw())
    types = {node.type for node in config.ivr.nodes.values()}
    assert {"language", "hours", "caller", "menu", "lookup", "enqueue", "voicemail", "callback", "hangup"} <= types
    queues = {node.queue for node in config.ivr.nodes.values() if node.type == "enqueue"}
    assert queues == {"general", "billing", "vip"}


@pytest.mark.parametrize("change, message", [
    (lambda raw: raw["ivr"]["nodes"]["billing_queue"].update(queue="refunds"),
     "ivr.nodes.billing_queue.queue: unknown queue 'refunds'"),
    (lambda raw: raw["ivr"]["nodes"]["check_hours"].update(calendar="lunar"),
     "ivr.nodes.check_hours.calendar: unknown calendar 'lunar'"),
    (lambda raw: next(q for q in raw["routing"]["queues"] if q["name"] == "billing").update(channels=["email"]),
     "ivr.nodes.billing_queue.queue: queue 'billing' does not take voice calls"),
])
def test_cross_section_checks_name_the_node(change, message):
    raw = _desk_raw()
    change(raw)
    with pytest.raises(ValidationError) as caught:
        DeskConfig.model_validate(raw)
    assert message in str(caught.value)
