"""The browser softphone: Twilio's Voice JS SDK is served by the desk from node_modules, loaded only for
agents whose call leg is the browser, fed a token from the voice channel, and a Twilio.Device is
built. Twilio itself is out of reach here (and must stay so): every request and WebSocket to anything
but the test server is stopped inside the browser, which is exactly the "cannot reach Twilio" case the
agent must be told about, in English and Chinese, with the rest of the console still working."""
from __future__ import annotations

import re

import jwt
import pytest
from playwright.sync_api import expect

from app.auth.models import Role
from ivr.agent_leg import set_agent_device
from tests.console.test_browser import sign_in
from tests.factories import login, make_staff

LOCAL = re.compile(r"^(https?|wss?)://127\.0\.0\.1(:\d+)?/")


def _only_the_test_server(context) -> list[str]:
    """Stop every request and WebSocket leaving for anything but the test server; returns what was
    stopped (so a test can see the SDK really tried to reach Twilio)."""
    stopped: list[str] = []

    def block(route):
        stopped.append(route.request.url)
        route.abort()

    def block_socket(ws):
        stopped.append(ws.url)
        ws.close()

    context.route(lambda url: not LOCAL.match(url), block)
    context.route_web_socket(lambda url: not LOCAL.match(url), block_socket)
    return stopped


API_KEY = {"TWILIO_API_KEY_SID": "SK" + "0" * 32, "TWILIO_API_KEY_SECRET": "test-api-key-secret-0123456789abcdef"}


@pytest.fixture()
def api_key(app):
    """A Twilio API key is configured (production); restored afterwards."""
    before = {key: app.config.get(key) for key in API_KEY}
    app.config.update(API_KEY)
    yield API_KEY
    app.config.update(before)


@pytest.fixture()
def quick_timeout(app, api_key):
    app.config["SOFTPHONE_REGISTER_TIMEOUT_S"] = 4
    yield
    app.config.pop("SOFTPHONE_REGISTER_TIMEOUT_S", None)


def test_without_an_api_key_the_console_loads_no_softphone(app, db_session, client):
    """The demo and the tests: the account's own credentials cannot sign tokens Twilio accepts."""
    agent = make_staff(db_session)
    db_session.commit()
    login(client, agent)
    page = client.get("/console/").get_data(as_text=True)
    assert "twilio.min.js" not in page and 'id="softphone"' not in page


def test_the_sdk_is_served_from_node_modules_and_only_to_browser_agents(app, db_session, client, api_key):
    sdk = client.get("/console/vendor/twilio.min.js")
    assert sdk.status_code == 200 and sdk.headers["Content-Type"].startswith("text/javascript")
    assert b"Twilio" in sdk.data[:2000] and len(sdk.data) > 100_000
    assert client.get("/console/vendor/evil.js").status_code == 404

    browser_agent = make_staff(db_session, role=Role.AGENT)
    phone_agent = make_staff(db_session, role=Role.AGENT, phone_e164="+4930123456")
    set_agent_device(db_session, phone_agent, "phone")
    db_session.commit()
    login(client, browser_agent)
    page = client.get("/console/").get_data(as_text=True)
    assert "/console/vendor/twilio.min.js" in page and 'id="softphone"' in page and "softphone.js" in page
    other = app.test_client()
    login(other, phone_agent)
    page = other.get("/console/").get_data(as_text=True)
    assert "twilio.min.js" not in page and 'id="softphone"' not in page


@pytest.mark.browser
def test_softphone_builds_a_device_and_says_twilio_is_out_of_reach(app, db_session, live_server, browser,
                                                                    quick_timeout):
    agent = make_staff(db_session, name="Agent Amy")
    db_session.commit()
    stopped = _only_the_test_server(browser)
    page = browser.new_page()
    loaded: list[tuple[str, int]] = []
    page.on("response", lambda r: loaded.append((r.url, r.status)))
    sign_in(page, live_server.url, agent.email)

    phone = page.locator("#softphone")
    expect(phone).to_have_attribute("data-device", "constructed")
    expect(phone).to_have_attribute("data-identity", f"agent-{agent.id}")
    expect(phone).to_have_attribute("data-state", "failed", timeout=15_000)
    expect(phone.locator(".softphone-status")).to_contain_text("Twilio cannot be reached")
    assert (f"{live_server.url}/console/vendor/twilio.min.js", 200) in loaded
    token_responses = [status for url, status in loaded if url == f"{live_server.url}/api/voice/token"]
    assert token_responses == [200]
    assert any("twilio.com" in url for url in stopped)  # the Device did try; nothing left this machine
    token = page.evaluate("fetch('/api/voice/token').then((r) => r.json())")
    claims = jwt.decode(token["token"], API_KEY["TWILIO_API_KEY_SECRET"], algorithms=["HS256"])
    assert claims["iss"] == API_KEY["TWILIO_API_KEY_SID"]  # signed with the API key
    assert claims["grants"]["identity"] == f"agent-{agent.id}" and claims["grants"]["voice"]["incoming"]["allow"]

    # the rest of the console carries on
    page.click("#go-available")
    expect(page.locator("#presence-now")).to_have_attribute("data-presence", "available")
    expect(page.locator("#connection")).to_have_attribute("data-ok", "1")


@pytest.mark.browser
def test_softphone_failure_in_chinese(app, db_session, live_server, browser, quick_timeout):
    agent = make_staff(db_session, language="zh")
    db_session.commit()
    _only_the_test_server(browser)
    page = browser.new_page()
    sign_in(page, live_server.url, agent.email, lang="zh")
    phone = page.locator("#softphone")
    expect(phone).to_have_attribute("data-state", "failed", timeout=15_000)
    expect(phone.locator(".softphone-status")).to_contain_text("无法连接 Twilio")
    expect(page.locator("#go-available")).to_have_text("置为空闲")


@pytest.mark.browser
def test_a_missing_sdk_is_reported_and_the_console_still_works(app, db_session, live_server, browser, api_key):
    agent = make_staff(db_session)
    db_session.commit()
    _only_the_test_server(browser)
    browser.route(re.compile(r".*/console/vendor/twilio\.min\.js$"), lambda route: route.fulfill(status=404))
    page = browser.new_page()
    sign_in(page, live_server.url, agent.email)
    phone = page.locator("#softphone")
    expect(phone).to_have_attribute("data-state", "failed")
    expect(phone).to_have_attribute("data-reason", "sdk_missing")
    page.click("#go-available")
    expect(page.locator("#presence-now")).to_have_attribute("data-presence", "available")
