"""A person on /dev/phone walks the demo menu in a real browser: order status, the queue, a callback."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.channels import voice
from app.channels.telephony import RecordingTelephony
from app.interactions.models import Interaction
from app.interactions.states import State
from tests.factories import make_customer, make_order
from tests.ivr.helpers import OPEN_AT


@pytest.mark.browser
def test_demo_caller_hears_an_order_status_queues_and_asks_for_a_callback(app, db_session, monkeypatch,
                                                                          live_server, browser):  # noqa: F811
    monkeypatch.setattr(voice, "utcnow", lambda: OPEN_AT)
    monkeypatch.setitem(app.extensions, "desk.telephony", RecordingTelephony())
    make_order(db_session, make_customer(db_session, phone="+8613900000000"), number="10023", status="shipped")
    db_session.commit()
    page = browser.new_page()
    page.goto(live_server.url + "/dev/phone?lang=en")
    transcript = page.locator("#transcript")
    page.click("#call")
    transcript.get_by_text("For English, press 1.").wait_for()
    page.click("button.key[data-key='1']")
    transcript.get_by_text("For the status of an order, press 1", exact=False).wait_for()
    page.click("button.key[data-key='1']")
    transcript.get_by_text("Please enter your order number", exact=False).wait_for()
    for key in "10023#":
        page.click(f"button.key[data-key='{key}']")
    transcript.get_by_text("Order 1 0 0 2 3 is shipped.", exact=False).wait_for()
    page.click("button.key[data-key='0']")
    transcript.get_by_text("You are number 1 in the queue.").wait_for()
    page.click("button.key[data-key='1']")
    transcript.get_by_text("We will call you back on this number", exact=False).wait_for()
    page.locator("#status").get_by_text("Call ended").wait_for()
    db_session.expire_all()
    interaction = db_session.scalar(select(Interaction).where(Interaction.channel == "voice"))
    assert interaction.state == State.CALLBACK_PENDING


@pytest.mark.browser
def test_demo_caller_makes_a_complaint_and_hears_its_reference(app, db_session, monkeypatch, live_server,
                                                               browser):  # noqa: F811
    from app.complaints.models import Complaint

    monkeypatch.setattr(voice, "utcnow", lambda: OPEN_AT)
    monkeypatch.setitem(app.extensions, "desk.telephony", RecordingTelephony())
    page = browser.new_page()
    page.goto(live_server.url + "/dev/phone?lang=en")
    transcript = page.locator("#transcript")
    page.click("#call")
    transcript.get_by_text("For English, press 1.").wait_for()
    page.click("button.key[data-key='1']")
    transcript.get_by_text("To make a new complaint, press 5.", exact=False).wait_for()
    page.click("button.key[data-key='5']")
    transcript.get_by_text("If it is about a product, press 1.", exact=False).wait_for()
    page.click("button.key[data-key='2']")
    transcript.get_by_text("After the tone, please tell us what happened", exact=False).wait_for()
    page.locator("#extra button").click()  # stop recording: the simulator posts the Record action
    transcript.get_by_text("Your complaint reference is C M P,", exact=False).wait_for()
    db_session.expire_all()
    complaint = db_session.scalar(select(Complaint))
    assert complaint.channel == "ivr" and complaint.category == "delivery_delay"
    assert complaint.description.startswith("voice complaint, recording https://example.invalid/recordings/RE")
