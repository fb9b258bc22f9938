"""The ``complaint`` node: category by key or word, then a recording; its checks name the node."""
from __future__ import annotations

from datetime import date

import pytest
import yaml
from pydantic import ValidationError

from app.config import DEFAULT_CONFIG_PATH, DeskConfig
from ivr import engine, twiml
from ivr.config import IvrConfig
from ivr.engine import CallInput, IvrState, RecordComplaint, Say
from tests.ivr.helpers import P, ctx, demo_config

NODES = {
    "start": {"type": "complaint", "prompt": P("Product 1, delivery 2."),
              "categories": {"1": "product_quality", "2": {"category": "delivery_delay",
                                                           "words": {"en": ["delivery"], "zh": ["配送"]}}},
              "speech": True, "record_prompt": P("Tell us after the tone."), "retries": 1,
              "fallback": "agents", "next": "bye"},
    "agents": {"type": "enqueue", "queue": "general"},
    "bye": {"type": "hangup"},
}


def config(**start) -> IvrConfig:
    nodes = {**NODES, "start": {**NODES["start"], **start}}
    return IvrConfig.model_validate({"entry": "start", "nodes": nodes})


def test_the_node_asks_for_a_category_with_one_key_and_spoken_words():
    step = engine.start(config(), ctx())
    assert step.gather.node == "start" and step.gather.num_digits == 1
    assert step.gather.input == ("dtmf", "speech") and step.gather.hints == ("delivery",)
    assert step.prompts == (Say("Product 1, delivery 2.", "en"),)


@pytest.mark.parametrize("user_input, category, via", [
    (CallInput(digits="1"), "product_quality", "dtmf"),
    (CallInput(speech="it is about my delivery"), "delivery_delay", "speech"),
])
def test_a_category_leads_to_the_recording(user_input, category, via):
    cfg = config()
    step = engine.advance(cfg, IvrState(node="start"), ctx(), user_input)
    assert step.action == RecordComplaint(category, 180, False)
    assert step.state.node == "start" and step.state.vars["complaint_category"] == category
    assert step.prompts == (Say("Tell us after the tone.", "en"),)
    fact = next(f for f in step.facts if f.kind == "ivr.complaint_category")
    assert fact.data["via"] == via and fact.data["category"] == category


def test_a_wrong_key_is_retried_then_the_fallback_takes_the_call():
    cfg = config()
    step = engine.advance(cfg, IvrState(node="start"), ctx(), CallInput(digits="7"))
    assert step.gather is not None and step.state.attempts == 1
    step = engine.advance(cfg, step.state, ctx(), CallInput(digits="7"))
    assert step.action == engine.Enqueue("general")


def test_transcription_is_asked_only_for_english_calls():
    cfg = config(transcribe=True)
    english = engine.advance(cfg, IvrState(node="start", language="en"), ctx(), CallInput(digits="1"))
    mandarin = engine.advance(cfg, IvrState(node="start", language="zh"), ctx(), CallInput(digits="1"))
    assert english.action.transcribe is True and mandarin.action.transcribe is False
    assert mandarin.prompts == (Say("ZH:Tell us after the tone.", "zh"),)


def test_the_recording_twiml_posts_to_the_complaint_webhook_and_reads_on_when_empty():
    cfg = config(transcribe=True, max_length_s=90)
    step = engine.advance(cfg, IvrState(node="start"), ctx(), CallInput(digits="2"))
    urls = twiml.StepUrls(gather="g", wait="w", voicemail_done="v", complaint_recorded="https://d/voice/complaint?s=3",
                          complaint_empty="https://d/voice/complaint-empty?s=3",
                          complaint_transcript="https://d/voice/complaint-transcript?i=1&s=3")
    root = twiml.render_step(step, cfg, urls)
    verbs = [(verb.name, verb.attrs) for verb in root.verbs]
    assert [name for name, _ in verbs] == ["Say", "Record", "Redirect"]
    record = verbs[1][1]
    assert record["action"] == "https://d/voice/complaint?s=3" and record["maxLength"] == 90
    assert record["transcribe"] is True and record["transcribeCallback"].endswith("complaint-transcript?i=1&s=3")
    assert root.verbs[2].value == "https://d/voice/complaint-empty?s=3"


def test_the_read_back_spells_the_reference_and_says_the_date_in_each_language():
    node = config().nodes["start"]
    en = engine.complaint_read_back(node, "en", reference="CMP-100042", resolve_on=date(2026, 12, 3))
    zh = engine.complaint_read_back(node, "zh", reference="CMP-100042", resolve_on=date(2026, 12, 3))
    assert en == Say("Thank you. Your complaint reference is C M P, 1 0 0 0 4 2. We will give you our final "
                     "response by December 3, 2026.", "en")
    assert zh == Say("谢谢。您的投诉编号是C M P, 1 0 0 0 4 2。我们将在2026年12月3日前给您最终答复。", "zh")


def test_resume_walks_on_from_a_node_after_the_given_prompts():
    cfg = config()
    state = IvrState(node="start", language="zh", vars={"complaint_category": "product_quality"})
    step = engine.resume(cfg, state, ctx(), "bye", prompts=(Say("已登记", "zh"),))
    assert step.action == engine.Hangup() and step.prompts[0] == Say("已登记", "zh")
    assert step.state.language == "zh" and step.state.vars == {"complaint_category": "product_quality"}


@pytest.mark.parametrize("change, fragment", [
    ({"categories": {"12": "other"}}, "key '12' is not a single phone key"),
    ({"categories": {}}, "categories"),
    ({"registered": P("Reference {reference}, level {level}")},
     "registered.en: unknown placeholder {level}; use reference, resolve_by"),
    ({"next": "nowhere"}, "ivr.nodes.start.next: unknown node 'nowhere'"),
    ({"max_length_s": 2}, "max_length_s"),
    ({"record_prompt": {"en": "only English"}}, "record_prompt.zh"),
])
def test_a_bad_complaint_node_is_refused_naming_the_field(change, fragment):
    with pytest.raises(ValidationError) as caught:
        config(**change)
    assert fragment in str(caught.value)


def test_an_unknown_category_stops_the_desk_naming_the_node_and_key():
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))
    raw["ivr"]["nodes"]["new_complaint"]["categories"]["9"] = "weather"
    with pytest.raises(ValidationError) as caught:
        DeskConfig.model_validate(raw)
    assert "ivr.nodes.new_complaint.categories.9: unknown complaint category 'weather'" in str(caught.value)


def test_the_demo_menu_offers_a_new_complaint_in_both_languages():
    cfg = demo_config().ivr
    menu = cfg.nodes["main_menu"]
    assert menu.options["5"].goto == "new_complaint"
    assert "To make a new complaint, press 5." in menu.prompt.en and "新的投诉请按5" in menu.prompt.zh
    step = engine.advance(cfg, IvrState(node="main_menu", language="zh"), ctx(), CallInput(speech="我要投诉"))
    assert step.state.node == "new_complaint"  # spoken "make a complaint" is not the status lookup
    step = engine.advance(cfg, IvrState(node="main_menu"), ctx(), CallInput(speech="my complaint status"))
    assert step.state.node == "complaint_status"
