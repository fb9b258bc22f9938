"""TwiML built from engine steps, asserted on the parsed XML (structure, never string shapes)."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from ivr import engine, twiml
from ivr.config import IvrConfig, Prompt
from ivr.engine import CallInput, IvrState
from ivr.twiml import StepUrls
from tests.ivr.helpers import P, ctx, demo_config, ivr

URLS = StepUrls(gather="https://desk.example/voice/gather?t=1", wait="https://desk.example/voice/wait",
                voicemail_done="https://desk.example/voice/voicemail", recording_status="https://desk.example/voice/rec")


def parse(response) -> ET.Element:
    root = ET.fromstring(str(response))
    assert root.tag == "Response"
    return root


def verbs(root: ET.Element) -> list[str]:
    return [child.tag for child in root]


def test_a_gather_step_nests_its_prompts_with_their_language():
    config = demo_config().ivr
    root = parse(twiml.render_step(engine.start(config, ctx()), config, URLS))
    assert verbs(root) == ["Gather"]
    gather = root[0]
    assert gather.get("action") == URLS.gather and gather.get("method") == "POST"
    assert gather.get("numDigits") == "1" and gather.get("actionOnEmptyResult") == "true"
    says = [(say.get("language"), say.text) for say in gather.findall("Say")]
    assert says == [("en-US", "Welcome to the Demo Service Desk. For English, press 1."),
                    ("cmn-CN", "欢迎致电客户服务中心。普通话服务请按2。")]


def test_a_speech_menu_sets_speech_language_and_hints():
    config = demo_config().ivr
    step = engine.advance(config, IvrState(node="choose_language"), ctx(), CallInput(digits="2"))
    gather = parse(twiml.render_step(step, config, URLS)).find("Gather")
    assert gather.get("input") == "dtmf speech"
    assert gather.get("language") == "cmn-Hans-CN"
    assert "订单" in gather.get("hints")
    assert all(say.get("language") == "cmn-CN" for say in gather.findall("Say"))


def test_a_lookup_gather_finishes_on_hash_without_a_digit_count():
    config = demo_config().ivr
    step = engine.advance(config, IvrState(node="main_menu"), ctx(), CallInput(digits="1"))
    gather = parse(twiml.render_step(step, config, URLS)).find("Gather")
    assert gather.get("finishOnKey") == "#" and gather.get("numDigits") is None
    assert gather.get("input") == "dtmf"


def test_an_enqueue_step_says_then_redirects_to_the_wait_loop():
    config = ivr({"start": {"type": "enqueue", "queue": "general", "prompt": P("Please hold")}})
    root = parse(twiml.render_step(engine.start(config, ctx()), config, URLS))
    assert verbs(root) == ["Say", "Redirect"]
    assert root[1].text == URLS.wait and root[1].get("method") == "POST"


def test_a_voicemail_step_records_with_callbacks():
    config = ivr({"start": {"type": "voicemail", "queue": "general", "prompt": P("Speak"), "max_length_s": 90}})
    root = parse(twiml.render_step(engine.start(config, ctx()), config, URLS))
    assert verbs(root) == ["Say", "Record"]
    record = root[1]
    assert record.get("maxLength") == "90" and record.get("action") == URLS.voicemail_done
    assert record.get("recordingStatusCallback") == URLS.recording_status and record.get("playBeep") == "true"


@pytest.mark.parametrize("node, expected", [
    ({"type": "callback", "queue": "general", "prompt": P("We will call you")}, ["Say", "Hangup"]),
    ({"type": "hangup", "prompt": P("So long")}, ["Say", "Say", "Hangup"]),  # node prompt, then goodbye
    ({"type": "hangup"}, ["Say", "Hangup"]),
])
def test_steps_that_end_the_call_hang_up(node, expected):
    config = ivr({"start": node})
    assert verbs(parse(twiml.render_step(engine.start(config, ctx()), config, URLS))) == expected


def test_play_and_configured_voice():
    config = ivr({"start": {"type": "say", "prompt": P("Hi"), "play": {"en": "https://a/x.mp3"}, "next": "bye"},
                  "bye": {"type": "hangup"}}, voice={"en": "Polly.Joanna"})
    root = parse(twiml.render_step(engine.start(config, ctx()), config, URLS))
    assert verbs(root) == ["Say", "Play", "Say", "Hangup"]
    assert root[0].get("voice") == "Polly.Joanna" and root[1].text == "https://a/x.mp3"


def test_a_step_with_neither_gather_nor_action_is_refused():
    with pytest.raises(TypeError):
        twiml.render_step(engine.Step(state=IvrState(node="x")), IvrConfig(), URLS)


@pytest.mark.parametrize("language, position, ewt_s, announce, said", [
    ("en", 3, 250, True, ["You are number 3 in the queue.", "The estimated wait is about 5 minutes.",
                          "To be called back without losing your place, press 1. To leave a voicemail, press 2."]),
    ("zh", 1, 20, True, ["您目前排在第1位。", "客服人员将在一分钟内为您服务。",
                         "如需保留排队位置并等待回电，请按1。如需留言，请按2。"]),
    ("en", 2, None, True, ["You are number 2 in the queue.",
                           "To be called back without losing your place, press 1. To leave a voicemail, press 2."]),
    ("en", 2, 100, False, []),  # between announcements only the music plays
])
def test_wait_loop(language, position, ewt_s, announce, said):
    config = IvrConfig()
    root = parse(twiml.render_wait(config, language, key_action="https://d/key", wait_url="https://d/wait",
                                   position=position, ewt_s=ewt_s, announce=announce))
    assert verbs(root) == ["Gather", "Redirect"]
    gather = root[0]
    assert gather.get("numDigits") == "1" and gather.get("action") == "https://d/key"
    assert [say.text for say in gather.findall("Say")] == said
    assert gather.find("Play").text == config.waiting.hold_music_url
    assert root[1].text == "https://d/wait"


def test_wait_loop_without_music_pauses():
    config = IvrConfig.model_validate({"waiting": {"hold_music_url": None, "announce_every_s": 20}})
    root = parse(twiml.render_wait(config, "en", key_action="k", wait_url="w", position=None, ewt_s=None,
                                   announce=False))
    assert root[0].find("Pause").get("length") == "20"


def test_voicemail_and_messages():
    config = IvrConfig()
    root = parse(twiml.render_voicemail(config, "zh", URLS))
    assert verbs(root) == ["Say", "Record"] and root[0].get("language") == "cmn-CN"
    assert root[1].get("maxLength") == str(config.waiting.voicemail_max_length_s)
    root = parse(twiml.render_message(config, "en", Prompt(en="Saved", zh="已保存"), hangup=False))
    assert verbs(root) == ["Say"]


@pytest.mark.parametrize("language, expected_language", [("zh", "cmn-CN"), ("en", "en-US"), ("xx", "en-US")])
def test_apology_says_sorry_and_hangs_up(language, expected_language):
    root = parse(twiml.render_apology(IvrConfig(), language))
    assert verbs(root) == ["Say", "Hangup"]
    assert root[0].get("language") == expected_language


def test_connect_to_a_browser_client_with_recording():
    root = parse(twiml.render_connect(IvrConfig(), "en", client_identity="agent-7", action="https://d/dial",
                                      record=True, recording_status="https://d/rec", caller_id="+8610"))
    assert verbs(root) == ["Say", "Dial"]
    dial = root[1]
    assert dial.find("Client").text.strip() == "agent-7"
    assert dial.get("record") == "record-from-answer-dual" and dial.get("recordingStatusCallback") == "https://d/rec"
    assert dial.get("action") == "https://d/dial" and dial.get("callerId") == "+8610"


def test_a_softphone_call_carries_its_contact():
    root = parse(twiml.render_connect(IvrConfig(), "en", client_identity="agent-7", interaction_id=42))
    client = root.find("Dial").find("Client")
    assert client.find("Identity").text.strip() == "agent-7"
    assert [(p.get("name"), p.get("value")) for p in client.findall("Parameter")] == [("interaction_id", "42")]


def test_connect_to_a_phone_number():
    dial = parse(twiml.render_connect(IvrConfig(), "zh", number="+8613800000000")).find("Dial")
    assert dial.find("Number").text == "+8613800000000" and dial.get("record") is None


@pytest.mark.parametrize("kwargs", [{}, {"client_identity": "a", "number": "+1"}])
def test_connect_needs_exactly_one_target(kwargs):
    with pytest.raises(ValueError):
        twiml.render_connect(IvrConfig(), "en", **kwargs)


# --- memoised rendering: the same XML as rendering afresh, for every caller's own URLs -------------------

def _urls(seq: int, interaction_id: int, *, recording: bool = True) -> StepUrls:
    base = "https://desk.example/voice"
    return StepUrls(gather=f"{base}/gather?s={seq}&t={interaction_id}", wait=f"{base}/wait?t=1",
                    voicemail_done=f"{base}/voicemail",
                    recording_status=f"{base}/recording?i={interaction_id}" if recording else None,
                    complaint_recorded=f"{base}/complaint?s={seq}", complaint_empty=f"{base}/complaint-empty?s={seq}",
                    complaint_transcript=f"{base}/complaint-transcript?i={interaction_id}&s={seq}")


MEMO_STEPS = [
    pytest.param(lambda c: engine.start(c, ctx()), id="gather"),
    pytest.param(lambda c: engine.advance(c, IvrState(node="choose_language"), ctx(), CallInput(digits="2")),
                 id="speech gather in Mandarin"),
]
MEMO_CONFIGS = {
    "enqueue": {"start": {"type": "enqueue", "queue": "general", "prompt": P("Please hold")}},
    "voicemail": {"start": {"type": "voicemail", "queue": "general", "prompt": P("Speak"), "max_length_s": 90}},
    "hangup": {"start": {"type": "hangup", "prompt": P("So long")}},
}


@pytest.mark.parametrize("make_step", MEMO_STEPS)
def test_a_memoised_menu_step_is_the_xml_rendered_afresh_with_each_callers_urls(make_step):
    config = demo_config().ivr
    step = make_step(config)
    for seq, interaction_id in ((1, 7), (2, 7), (1, 8), (1, 7)):  # the third and fourth come from the memo
        urls = _urls(seq, interaction_id)
        assert str(twiml.memoised_step(step, config, urls)) == str(twiml.render_step(step, config, urls))


@pytest.mark.parametrize("name", sorted(MEMO_CONFIGS))
@pytest.mark.parametrize("recording", [True, False])
def test_a_memoised_action_step_is_the_xml_rendered_afresh(name, recording):
    config = ivr(MEMO_CONFIGS[name])
    step = engine.start(config, ctx())
    for interaction_id in (3, 4):
        urls = _urls(1, interaction_id, recording=recording)
        assert str(twiml.memoised_step(step, config, urls)) == str(twiml.render_step(step, config, urls))


def test_a_memoised_wait_turn_is_the_xml_rendered_afresh():
    config = IvrConfig()
    for position, announce in ((3, True), (3, True), (None, False)):
        for turn in (1, 2):
            urls = {"key_action": f"https://d/key?t={turn}&a=9", "wait_url": f"https://d/wait?t={turn + 1}&a=9"}
            memoised = twiml.memoised_wait(config, "zh", position=position, ewt_s=250, announce=announce, **urls)
            afresh = twiml.render_wait(config, "zh", position=position, ewt_s=250, announce=announce, **urls)
            assert str(memoised) == str(afresh)
            assert memoised.to_xml(xml_declaration=False) == afresh.to_xml(xml_declaration=False)


def test_a_memoised_response_takes_no_more_verbs():
    config = IvrConfig()
    response = twiml.memoised_wait(config, "en", key_action="k", wait_url="w", position=None, ewt_s=None,
                                   announce=False)
    with pytest.raises(TypeError):
        response.redirect("https://d/elsewhere")


def test_another_configuration_is_rendered_with_its_own_prompts():
    first = ivr({"start": {"type": "enqueue", "queue": "general", "prompt": P("Please hold")}})
    second = ivr({"start": {"type": "enqueue", "queue": "general", "prompt": P("Please hold")}},
                 say_language={"en": "en-GB", "zh": "cmn-CN"})
    step = engine.start(first, ctx())
    twiml.memoised_step(step, first, URLS)
    root = parse(twiml.memoised_step(step, second, URLS))
    assert root[0].get("language") == "en-GB"


def test_the_memo_starts_over_when_full(monkeypatch):
    monkeypatch.setattr(twiml, "MEMO_SIZE", 2)
    monkeypatch.setattr(twiml, "_templates", {})
    config = IvrConfig()
    for position in (1, 2, 3):  # the third shape finds the memo full
        twiml.memoised_wait(config, "en", key_action="k", wait_url="w", position=position, ewt_s=None, announce=True)
    assert len(twiml._templates) == 1
    root = parse(twiml.memoised_wait(config, "en", key_action="k", wait_url="w", position=1, ewt_s=None,
                                     announce=True))
    assert root[0].find("Say").text == "You are number 1 in the queue."
