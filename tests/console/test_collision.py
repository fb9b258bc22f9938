"""Collision control in the console: the open work item heart-beats and shows who else is on it."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from app import collision
from tests.console.test_browser import sign_in
from tests.console.test_socket import connected_contact
from tests.factories import login, make_staff

HEARTBEAT_WAIT_MS = 15_000  # one heartbeat period (10 s) and some


@pytest.mark.browser
def test_the_open_contact_shows_who_else_is_on_it(app, client, db_session, live_server, browser):
    agent = make_staff(db_session, name="Agent Amy")
    colleague = make_staff(db_session, name="Bob Backup")
    work = connected_contact(db_session, agent, channel="chat")
    key = f"interaction:{work.id}"
    login(client, colleague)
    reply = client.post(f"/api/collision/{key}/heartbeat", json={"mode": "replying"})
    assert reply.status_code == 200 and reply.get_json()["others"] == []

    page = browser.new_page()
    sign_in(page, live_server.url, agent.email)
    note = page.locator(f"#collision-{work.id}")
    expect(note).to_have_text("Also on this contact: Bob Backup (replying)")
    expect(note).to_have_attribute("role", "status")

    seen_by_bob = client.post(f"/api/collision/{key}/heartbeat", json={"mode": "viewing"}).get_json()["others"]
    assert [(p["name"], p["mode"]) for p in seen_by_bob] == [("Agent Amy", "viewing")]

    client.post(f"/api/collision/{key}/leave")
    expect(note).to_have_text("", timeout=HEARTBEAT_WAIT_MS)  # gone at the console's next heartbeat

    page.goto("about:blank")  # the agent closes the console: their entry goes at once
    redis = app.extensions["desk.redis"]
    for _ in range(50):
        if not collision.present(redis, key):
            break
        page.wait_for_timeout(100)
    assert collision.present(redis, key) == []
