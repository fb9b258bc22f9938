"""The phone simulator: served only with dev tools on, signs like Twilio, shows the network twin."""
from __future__ import annotations

import pytest

from app.channels import voice
from app.channels.telephony import RecordingTelephony
from tests.ivr.helpers import OPEN_AT
from tests.ivr.phone import BASE, new_call_sid


@pytest.fixture()
def twin(app, monkeypatch):
    monkeypatch.setattr(voice, "utcnow", lambda: OPEN_AT)
    recording = RecordingTelephony()
    monkeypatch.setitem(app.extensions, "desk.telephony", recording)
    return recording


def test_the_page_is_served_in_both_languages(client, twin):
    english = client.get("/dev/phone?lang=en")
    assert english.status_code == 200 and b"Phone simulator" in english.data
    chinese = client.get("/dev/phone?lang=zh")
    assert "电话模拟器" in chinese.get_data(as_text=True)


def test_a_simulated_call_passes_the_same_signature_check(client, twin):
    form = {"CallSid": new_call_sid(), "From": "+8613800138000", "To": "+862100000000"}
    signed = client.post("/dev/phone/sign", json={"url": f"{BASE}/voice/incoming", "params": form}).get_json()
    response = client.post("/voice/incoming", data=form, headers={"X-Twilio-Signature": signed["signature"]})
    assert response.status_code == 200 and b"<Gather" in response.data
    tampered = dict(form, From="+8613900000000")
    response = client.post("/voice/incoming", data=tampered, headers={"X-Twilio-Signature": signed["signature"]})
    assert response.status_code == 403


@pytest.mark.parametrize("body", [
    {"url": "https://evil.example/voice/incoming", "params": {}},
    {"url": f"{BASE}/api/voice/token", "params": {}},
    {"url": f"{BASE}/voice/incoming", "params": {"CallSid": 7}},
    {"url": f"{BASE}/voice/incoming"},
])
def test_the_signer_only_signs_voice_webhooks_of_this_desk(client, twin, body):
    assert client.post("/dev/phone/sign", json=body).status_code == 400


def test_network_shows_redirects_and_callbacks_for_the_caller(client, twin):
    sid = new_call_sid()
    twin.redirect_call(sid, f"{BASE}/voice/connect?i=1&a=1&b=1")
    twin.redirect_call(new_call_sid(), f"{BASE}/voice/connect?i=2&a=1&b=1")
    twin.place_call(to="+8613800138000", from_="+862100000000", url=f"{BASE}/voice/callback-answer?i=1&a=1",
                    status_callback=f"{BASE}/voice/callback-status?i=1")
    body = client.get(f"/dev/phone/network?call_sid={sid}&number=%2B8613800138000&since=0").get_json()
    assert [r["action"] for r in body["requests"]] == ["redirect", "place"]
    assert body["next"] == 3
    later = client.get(f"/dev/phone/network?call_sid={sid}&since=3").get_json()
    assert later["requests"] == []


def test_network_is_empty_with_real_twilio(app, client, monkeypatch):
    monkeypatch.setitem(app.extensions, "desk.telephony", object())
    assert client.get("/dev/phone/network?call_sid=x").get_json() == {"requests": [], "next": 0}


def test_the_simulator_is_gone_without_dev_tools(app, client, monkeypatch):
    settings = app.extensions["desk.settings"]
    monkeypatch.setitem(app.extensions, "desk.settings", settings.model_copy(update={"dev_tools": False}))
    assert client.get("/dev/phone").status_code == 404
    assert client.post("/dev/phone/sign", json={}).status_code == 404
