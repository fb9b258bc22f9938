"""In the browser: a supervisor signs in (password + authenticator code) and watches the wallboard's
counts change, without reloading, when a contact is queued."""
from __future__ import annotations

import pytest

from app.interactions.service import transition
from tests.factories import PASSWORD, make_interaction, totp_code
from tests.supervisor.conftest import USER_AGENT


@pytest.mark.browser
def test_wallboard_counts_change_when_a_contact_is_queued(live_server, chromium_browser, supervisor_client,
                                                          supervisor, db_session):
    from playwright.sync_api import expect

    supervisor.totp_last_step = None  # the test client just used this 30 s window's code
    db_session.commit()
    context = chromium_browser.new_context(locale="en-US", user_agent=USER_AGENT,
                                           viewport={"width": 1366, "height": 860})
    try:
        page = context.new_page()
        page.goto(live_server.url + "/login")
        page.fill("#email", supervisor.email)
        page.fill("#password", PASSWORD)
        page.click("#sign-in")
        page.fill("#code", totp_code(supervisor))
        page.press("#code", "Enter")
        page.wait_for_load_state()
        page.goto(live_server.url + "/supervisor/")
        waiting = page.locator('#sv-queues tr[data-queue="general"] td.waiting')
        expect(waiting).to_have_text("0", timeout=15_000)
        expect(page.locator("#sv-status")).to_have_class("sv-status live")
        expect(page.locator("#sv-alerts li.ok")).to_be_visible()

        contact = make_interaction(db_session)
        contact.queue = "general"
        transition(db_session, contact, "queued", actor="test", data={"queue": "general"})
        db_session.commit()

        expect(waiting).to_have_text("1", timeout=15_000)
        expect(page.locator(f'#sv-waiting tr[data-contact="{contact.id}"]')).to_be_visible()
        expect(page.locator('#sv-queues tr[data-queue="general"] td.offered')).to_have_text("1")

        transition(db_session, contact, "abandoned", actor="test")  # the caller hangs up
        db_session.commit()
        expect(waiting).to_have_text("0", timeout=15_000)
    finally:
        context.close()
