"""Whole calls through the Twilio webhooks, signed as Twilio signs them, TwiML asserted on the XML."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from app.channels import voice
from app.channels.telephony import RecordingTelephony
from app.interactions.models import Interaction, InteractionEvent
from app.interactions.states import State
from ivr.models import VoiceWebhookReceipt
from tests.factories import make_customer, make_order
from tests.ivr.helpers import CLOSED_AT, OPEN_AT
from tests.ivr.phone import BASE, TOKEN, Caller, sign


@pytest.fixture()
def clock(monkeypatch):
    """The webhooks' clock, settable: Thursday 10:00 in Shanghai (the demo desk is open) unless moved."""
    now = {"at": OPEN_AT}
    monkeypatch.setattr(voice, "utcnow", lambda: now["at"])
    return now


@pytest.fixture()
def phone(app, client, clock, monkeypatch):
    twin = RecordingTelephony()
    monkeypatch.setitem(app.extensions, "desk.telephony", twin)
    return Caller(client)


def interaction_of(db_session, caller: Caller) -> Interaction:
    db_session.expire_all()
    return db_session.scalar(select(Interaction).where(Interaction.external_ref == caller.call_sid))


def transitions(db_session, interaction: Interaction) -> list[tuple[str, str]]:
    rows = db_session.scalars(select(InteractionEvent).where(
        InteractionEvent.interaction_id == interaction.id, InteractionEvent.kind == "transition")
        .order_by(InteractionEvent.id))
    return [(row.to_state, row.reason) for row in rows]


def test_an_unknown_caller_walks_to_order_status_queues_and_asks_for_a_callback(phone, db_session):
    make_order(db_session, make_customer(db_session, phone="+8613900000000"), number="10023", status="shipped",
               shipment_status="in_transit")
    db_session.commit()
    reply = phone.dial()
    assert reply.status == 200 and reply.verbs == ["Gather"]
    assert reply.first("Gather").get("action") == f"{BASE}/voice/gather?s=1"
    assert reply.said[0] == "This call may be recorded for quality and training."
    reply = phone.press("1")  # English
    assert "For the status of an order, press 1" in reply.said[-1]
    reply = phone.press("1")  # order status
    assert reply.said[-1].startswith("Please enter your order number")
    reply = phone.press("10023#")
    assert reply.said[0].startswith("Order 1 0 0 2 3 is shipped. Expected delivery:")
    reply = phone.press("0")  # an agent
    assert reply.verbs == ["Redirect"] and reply.redirect_url == f"{BASE}/voice/wait?t=1"
    interaction = interaction_of(db_session, phone)
    assert interaction.state == State.QUEUED and interaction.queue == "general"
    reply = phone.follow()
    assert reply.verbs == ["Gather", "Redirect"]
    assert reply.said[:1] == ["You are number 1 in the queue."]
    reply = phone.press("1")  # callback, keeping the place
    assert reply.verbs == ["Say", "Hangup"]
    interaction = interaction_of(db_session, phone)
    assert interaction.state == State.CALLBACK_PENDING
    assert interaction.attributes["callback_number"] == "+8613800138000"
    assert interaction.attributes["ivr_path"][:4] == ["choose_language", "check_hours", "check_caller", "main_menu"]
    phone.hang_up()
    assert interaction_of(db_session, phone).state == State.CALLBACK_PENDING  # hanging up after is not abandoning
    assert [s for s, _ in transitions(db_session, interaction)] == ["ivr", "queued", "callback_pending"]


def test_a_known_vip_is_queued_at_once_in_their_language(phone, db_session):
    make_customer(db_session, phone="+8613800138000", tier="vip", language="zh")
    db_session.commit()
    reply = phone.dial()
    assert reply.verbs == ["Say", "Say", "Redirect"]  # recording consent, VIP greeting
    assert all(say.get("language") == "cmn-CN" for say in reply.root.iter("Say"))
    interaction = interaction_of(db_session, phone)
    assert (interaction.state, interaction.queue, interaction.language) == (State.QUEUED, "vip", "zh")
    assert interaction.attributes["priority_bump"] == 100
    assert interaction.customer_id is not None


def test_mandarin_speech_at_the_main_menu(phone, db_session):
    phone.dial()
    reply = phone.press("2")
    gather = reply.first("Gather")
    assert gather.get("language") == "cmn-Hans-CN" and gather.get("input") == "dtmf speech"
    reply = phone.press(speech="我想查一下账单")
    assert reply.verbs == ["Redirect"]
    assert interaction_of(db_session, phone).queue == "billing"


def test_closed_desk_voicemail_is_stored_and_queued_for_an_agent(phone, db_session, clock):
    clock["at"] = CLOSED_AT
    phone.dial()
    phone.press("1")
    reply = phone.press("1")  # voicemail
    assert reply.verbs == ["Say", "Record"]
    assert interaction_of(db_session, phone).state == State.VOICEMAIL
    reply = phone.post(reply.first("Record").get("action"),
                       {"RecordingUrl": "https://api.twilio.com/rec/RE1", "RecordingDuration": "14"})
    assert reply.verbs == ["Say", "Hangup"]
    interaction = interaction_of(db_session, phone)
    assert (interaction.state, interaction.recording_url, interaction.recording_duration_s) == (
        State.QUEUED, "https://api.twilio.com/rec/RE1", 14)


def test_hanging_up_in_the_queue_is_abandoned_with_the_wait(phone, db_session, clock):
    phone.dial()
    phone.press("1")
    phone.press("0")
    clock["at"] = OPEN_AT + timedelta(seconds=95)
    phone.hang_up()
    interaction = interaction_of(db_session, phone)
    assert interaction.state == State.ABANDONED
    event = db_session.scalar(select(InteractionEvent).where(InteractionEvent.interaction_id == interaction.id,
                                                             InteractionEvent.to_state == State.ABANDONED,
                                                             InteractionEvent.kind == "transition"))
    assert event.data == {"where": "queue", "wait_s": 95}


def test_hanging_up_in_the_ivr_is_abandoned_in_the_ivr(phone, db_session):
    phone.dial()
    phone.hang_up()
    interaction = interaction_of(db_session, phone)
    assert interaction.state == State.ABANDONED
    assert transitions(db_session, interaction)[-1] == ("abandoned", "caller_hung_up")


def test_the_same_webhook_twice_gives_one_interaction_and_the_same_answer(phone, db_session):
    first = phone.dial()
    second = phone.dial()
    assert second.status == 200 and second.text == first.text
    assert db_session.scalar(select(func.count()).select_from(Interaction)) == 1
    press_one = phone.press("1")
    phone.last = first
    again = phone.press("1")
    assert again.text == press_one.text
    assert db_session.scalar(select(func.count()).select_from(VoiceWebhookReceipt)) == 2


def test_a_stale_step_is_refused_politely(phone):
    phone.dial()
    phone.press("1")
    reply = phone.post(f"{BASE}/voice/gather?s=7", {"Digits": "1"})
    assert reply.status == 409 and reply.verbs == ["Say", "Hangup"]


@pytest.mark.parametrize("signature", ["", "bm9wZQ==", "forged"])
def test_a_bad_or_missing_signature_gets_403_and_changes_nothing(phone, db_session, signature):
    reply = phone.post("/voice/incoming", {"CallStatus": "ringing"}, signature=signature)
    assert reply.status == 403 and reply.verbs == ["Say", "Hangup"]
    assert db_session.scalar(select(func.count()).select_from(Interaction)) == 0


def test_a_signature_for_another_host_is_refused(phone, client, db_session):
    form = {"CallSid": phone.call_sid, "From": "+8613800138000", "To": "+862100000000"}
    signed_for_proxy_host = sign("http://internal-node:8000/voice/incoming", form)
    response = client.post("/voice/incoming", data=form, headers={"X-Twilio-Signature": signed_for_proxy_host})
    assert response.status_code == 403


def test_signature_is_checked_against_the_public_url_whatever_the_host(phone, client):
    form = {"CallSid": phone.call_sid, "From": "+8613800138000", "To": "+862100000000"}
    response = client.post("/voice/incoming", data=form, base_url="http://10.0.0.7:8000",
                           headers={"X-Twilio-Signature": sign(f"{BASE}/voice/incoming", form)})
    assert response.status_code == 200


def test_a_signature_over_the_url_with_its_default_port_is_accepted(phone, client):
    # Twilio has signed some URLs with the scheme's port spelled out: the validator's slower check of
    # both variants still accepts them when the exact URL's signature does not match.
    form = {"CallSid": phone.call_sid, "From": "+8613800138000", "To": "+862100000000"}
    response = client.post("/voice/incoming", data=form,
                           headers={"X-Twilio-Signature": sign("http://desk.test:80/voice/incoming", form)})
    assert response.status_code == 200


def test_a_sha256_signature_named_in_the_settings_header_is_checked_with_sha256(phone, client, db_session):
    form = {"CallSid": phone.call_sid, "From": "+8613800138000", "To": "+862100000000"}
    url = f"{BASE}/voice/incoming"
    validator = RequestValidator(TOKEN)
    settings = {"X-Twilio-Webhooks-Signature-Settings": "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"}
    sha1_signed = client.post("/voice/incoming", data=form,
                              headers={"X-Twilio-Signature": validator.compute_signature(url, form), **settings})
    assert sha1_signed.status_code == 403
    sha256_signed = client.post("/voice/incoming", data=form, headers={
        "X-Twilio-Signature": validator.compute_signature(url, form, "HMAC_SHA256"), **settings})
    assert sha256_signed.status_code == 200


def test_an_unknown_signature_algorithm_is_refused(phone, client, db_session):
    form = {"CallSid": phone.call_sid, "From": "+8613800138000", "To": "+862100000000"}
    response = client.post("/voice/incoming", data=form, headers={
        "X-Twilio-Signature": sign(f"{BASE}/voice/incoming", form),
        "X-Twilio-Webhooks-Signature-Settings": "algorithm=HMAC_MD5"})
    assert response.status_code == 403
    assert db_session.scalar(select(func.count()).select_from(Interaction)) == 0


def test_a_get_is_refused(client, db_session):
    assert client.get("/voice/incoming").status_code == 405
    assert db_session.scalar(select(func.count()).select_from(Interaction)) == 0


@pytest.mark.parametrize("url, params, status", [
    ("/voice/gather?s=1", {"Digits": "1" * 65}, 400),                 # absurd Digits
    ("/voice/gather?s=1", {"Digits": "12;DROP"}, 400),
    ("/voice/gather?s=abc", {"Digits": "1"}, 400),                    # malformed step
    ("/voice/gather", {"Digits": "1"}, 400),
    ("/voice/gather?s=1", {"SpeechResult": "x" * 2000}, 400),
    ("/voice/status", {"CallStatus": "exploded"}, 400),
    ("/voice/wait?t=1", {}, 404),                                       # unknown CallSid
    ("/voice/recording?i=1", {"RecordingSid": "nope", "RecordingUrl": "u", "RecordingStatus": "completed"}, 400),
])
def test_bad_input_gets_a_4xx_with_an_apology(phone, url, params, status):
    reply = phone.post(url, params)
    assert reply.status == status
    assert reply.verbs == ["Say", "Hangup"] and reply.said[0].startswith("We are sorry")


def test_missing_call_sid_is_a_400_with_an_apology(phone):
    phone.call_sid = ""
    reply = phone.post("/voice/incoming")
    assert reply.status == 400 and reply.verbs == ["Say", "Hangup"]


def test_an_apology_speaks_the_callers_language(phone, db_session):
    phone.dial()
    phone.press("2")
    reply = phone.post(f"{BASE}/voice/gather?s=9", {"Digits": "1"})
    assert reply.status == 409 and reply.first("Say").get("language") == "cmn-CN"


def test_recording_callback_stores_url_and_duration(phone, db_session):
    phone.dial()
    interaction = interaction_of(db_session, phone)
    params = {"RecordingSid": "RE" + "a" * 32, "RecordingUrl": "https://api.twilio.com/rec/REa",
              "RecordingStatus": "completed", "RecordingDuration": "61"}
    assert phone.post(f"/voice/recording?i={interaction.id}", params).status == 200
    interaction = interaction_of(db_session, phone)
    assert (interaction.recording_url, interaction.recording_duration_s) == ("https://api.twilio.com/rec/REa", 61)


def test_wait_loop_announces_only_every_interval(phone, clock):
    phone.dial()
    phone.press("1")
    phone.press("0")
    first = phone.follow()
    assert first.said  # the first turn announces, and its next turn carries when
    announced = int(OPEN_AT.timestamp())
    assert first.redirect_url == f"{BASE}/voice/wait?t=2&a={announced}"
    assert first.gather_url == f"{BASE}/voice/wait-key?t=1&a={announced}"
    clock["at"] = OPEN_AT + timedelta(seconds=20)
    second = phone.follow()
    assert second.said == [] and second.redirect_url == f"{BASE}/voice/wait?t=3&a={announced}"
    clock["at"] = OPEN_AT + timedelta(seconds=31)
    third = phone.follow()
    assert third.said[0] == "You are number 1 in the queue."
    assert third.redirect_url == f"{BASE}/voice/wait?t=4&a={announced + 31}"


def test_voicemail_key_while_waiting(phone, db_session):
    phone.dial()
    phone.press("1")
    phone.press("0")
    phone.follow()
    reply = phone.press("2")
    assert reply.verbs == ["Say", "Record"]
    assert interaction_of(db_session, phone).state == State.VOICEMAIL
    phone.hang_up()  # left without recording anything
    assert interaction_of(db_session, phone).state == State.CLOSED


def test_other_keys_while_waiting_keep_waiting(phone, db_session):
    phone.dial()
    phone.press("1")
    phone.press("0")
    phone.follow()
    reply = phone.press("7")
    assert reply.verbs == ["Redirect"] and "/voice/wait?t=2" in reply.redirect_url
    assert interaction_of(db_session, phone).state == State.QUEUED


def test_withheld_number_cannot_ask_for_a_callback(app, client, clock, db_session, monkeypatch):
    monkeypatch.setitem(app.extensions, "desk.telephony", RecordingTelephony())
    caller = Caller(client, from_="anonymous")
    caller.dial()
    caller.press("1")
    caller.press("0")
    caller.follow()
    reply = caller.press("1")
    assert reply.said[0].startswith("Sorry, we cannot call back a withheld number")
    assert interaction_of(db_session, caller).state == State.QUEUED


def test_silent_caller_reaches_the_general_queue(phone, db_session):
    reply = phone.dial()
    for _ in range(5):
        reply = phone.press("")
    assert reply.verbs[-1] == "Redirect"
    assert interaction_of(db_session, phone).queue == "general"


def test_closed_desk_callback_node_keeps_a_place_and_hangs_up(phone, db_session, clock):
    clock["at"] = CLOSED_AT
    phone.dial()
    phone.press("1")
    reply = phone.press("2")
    assert reply.verbs == ["Say", "Hangup"] and "call you back" in reply.said[0]
    interaction = interaction_of(db_session, phone)
    assert interaction.state == State.CALLBACK_PENDING and interaction.queue == "general"


def test_closed_desk_callback_from_a_withheld_number_waits_on_the_line(app, client, clock, db_session, monkeypatch):
    monkeypatch.setitem(app.extensions, "desk.telephony", RecordingTelephony())
    clock["at"] = CLOSED_AT
    caller = Caller(client, from_="anonymous")
    caller.dial()
    caller.press("1")
    reply = caller.press("2")
    assert reply.verbs == ["Say", "Redirect"]
    assert interaction_of(db_session, caller).state == State.QUEUED


def test_a_gather_after_the_call_left_the_ivr_is_refused(phone):
    phone.dial()
    phone.press("1")
    phone.press("0")  # now queued
    reply = phone.post(f"{BASE}/voice/gather?s=3", {"Digits": "1"})
    assert reply.status == 409


def test_wait_for_a_call_that_is_not_waiting_is_refused(phone):
    phone.dial()
    assert phone.post(f"{BASE}/voice/wait?t=1").status == 409
    assert phone.post(f"{BASE}/voice/wait-key?t=1", {"Digits": "1"}).status == 409
    assert phone.post(f"{BASE}/voice/voicemail", {"RecordingUrl": "u", "RecordingDuration": "3"}).status == 409


def test_ringing_status_changes_nothing_and_a_failed_recording_is_ignored(phone, db_session):
    phone.dial()
    assert phone.post("/voice/status", {"CallStatus": "in-progress"}).status == 200
    interaction = interaction_of(db_session, phone)
    assert interaction.state == State.IVR
    params = {"RecordingSid": "RE" + "b" * 32, "RecordingUrl": "https://x/rec", "RecordingStatus": "failed"}
    assert phone.post(f"/voice/recording?i={interaction.id}", params).status == 200
    assert interaction_of(db_session, phone).recording_url is None


def test_a_changed_menu_restarts_the_ivr_for_a_live_call(phone, db_session):
    phone.dial()
    interaction = interaction_of(db_session, phone)
    interaction.attributes = {**interaction.attributes, "ivr": {**interaction.attributes["ivr"], "node": "gone"}}
    db_session.commit()
    reply = phone.press("1")
    assert reply.status == 200 and reply.verbs == ["Gather"]
    assert "For English, press 1." in reply.said[0]


def test_a_waiting_turn_writes_nothing(phone, db_session, clock):
    phone.dial()
    phone.press("1")
    phone.press("0")
    before = interaction_of(db_session, phone).version
    receipts = db_session.scalar(select(func.count()).select_from(VoiceWebhookReceipt))
    phone.follow()
    clock["at"] = OPEN_AT + timedelta(seconds=5)
    again = phone.follow()
    assert again.redirect_url.startswith(f"{BASE}/voice/wait?t=3")
    assert interaction_of(db_session, phone).version == before
    assert db_session.scalar(select(func.count()).select_from(VoiceWebhookReceipt)) == receipts


def test_a_retried_status_gets_the_stored_answer_and_changes_nothing_twice(phone, db_session, clock):
    phone.dial()
    first = phone.hang_up()
    clock["at"] = OPEN_AT + timedelta(seconds=9)
    second = phone.hang_up()
    assert (second.status, second.text) == (first.status, first.text)
    interaction = interaction_of(db_session, phone)
    assert interaction.attributes["call_ended_at"] == OPEN_AT.isoformat()
    assert [s for s, _ in transitions(db_session, interaction)] == ["ivr", "abandoned"]


def test_a_malformed_announcement_time_is_refused(phone):
    phone.dial()
    assert phone.post(f"{BASE}/voice/wait?t=1&a=soon").status == 400
