"""What an agent does in the browser (Playwright with Debian's chromium)."""
from __future__ import annotations

import importlib.util
from datetime import timedelta

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from app import realtime
from app.channels import voice
from app.channels.telephony import RecordingTelephony
from app.db import utcnow
from app.interactions.models import Interaction
from app.interactions.service import transition
from tests.factories import PASSWORD, make_customer, make_order, make_staff
from tests.ivr.helpers import OPEN_AT
from tests.ivr.phone import Caller

ROUTER_INSTALLED = importlib.util.find_spec("queues.service") is not None


@pytest.fixture()
def phone(app, client, monkeypatch):
    """A caller whose webhooks are signed as Twilio signs them; the desk is open (Thursday 10:00)."""
    monkeypatch.setattr(voice, "utcnow", lambda: OPEN_AT)
    monkeypatch.setitem(app.extensions, "desk.telephony", RecordingTelephony())
    return Caller(client, from_="+8613800138000")


def sign_in(page, base_url: str, email: str) -> None:
    page.goto(base_url + "/login?lang=en")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("#sign-in")
    page.goto(base_url + "/console/")
    expect(page.locator("#connection")).to_have_attribute("data-ok", "1")


def offer_to(session, interaction: Interaction, agent, offer_id: int) -> None:
    """What the router does when it picks ``agent`` (its own tests cover the choice): offer, then announce."""
    interaction.agent_id = agent.id
    transition(session, interaction, "offered", actor="router", data={"agent_id": agent.id})
    realtime.after_commit(session, "offer.created", {
        "offer_id": offer_id, "interaction_id": interaction.id, "agent_id": agent.id,
        "expires_at": (utcnow() + timedelta(seconds=60)).isoformat(), "priority": interaction.priority,
        "priority_reasons": interaction.priority_reasons or [], "channel": "voice", "queue": interaction.queue})
    session.commit()


@pytest.mark.browser
def test_agent_takes_a_vip_call_with_the_screenpop_and_wraps_up(app, db_session, live_server, browser, phone):
    agent = make_staff(db_session, name="Agent Amy", skills={"vip": 8, "general": 5})
    customer = make_customer(db_session, name="Wang Fang", tier="vip", phone="+8613800138000")
    make_order(db_session, customer, number="ORD-8842", shipment_status="in_transit")
    db_session.commit()
    page = browser.new_page()
    sign_in(page, live_server.url, agent.email)

    page.click("#go-available")
    if ROUTER_INSTALLED:
        expect(page.locator("#presence-now")).to_have_attribute("data-presence", "available")
    else:
        expect(page.locator("#notice")).to_have_text("Routing is not available right now.")

    reply = phone.dial()  # a signed webhook: the VIP is identified and queued at once
    assert reply.status == 200
    call = db_session.scalar(select(Interaction).where(Interaction.external_ref == phone.call_sid))
    assert (call.state, call.queue, call.customer_id) == ("queued", "vip", customer.id)
    offer_to(db_session, call, agent, offer_id=501)

    card = page.locator("#offer-501")
    expect(card).to_be_visible()
    expect(card.locator(".offer-title")).to_contain_text("Wang Fang")
    expect(card.locator(".screenpop")).to_contain_text("ORD-8842")
    expect(card.locator(".screenpop")).to_contain_text("in_transit")
    expect(card.locator(".countdown")).to_contain_text("Expires in")

    card.locator(".accept").click()
    if not ROUTER_INSTALLED:  # the console asked routing; without it, play the accept as routing would
        expect(page.locator("#notice")).to_have_text("Routing is not available right now.")
        db_session.expire_all()
        call = db_session.get(Interaction, call.id)
        transition(db_session, call, "connected", actor=f"agent:{agent.id}", data={"agent_id": agent.id})
        realtime.after_commit(db_session, "offer.accepted", {"offer_id": 501, "interaction_id": call.id,
                                                             "agent_id": agent.id, "channel": "voice"})
        db_session.commit()
    expect(card).to_have_count(0)
    tab = page.locator(f"#tab-{call.id}")
    expect(tab).to_contain_text("Wang Fang")
    panel = page.locator(f"#panel-{call.id}")
    expect(panel.locator(".screenpop")).to_contain_text("ORD-8842")

    panel.locator(f"#notes-{call.id}").fill("Asked about the parcel; it arrives tomorrow.")
    panel.locator(f"#disposition-{call.id}").select_option("information_given")
    panel.locator(".complete").click()
    expect(tab).to_have_count(0)
    expect(page.locator("#stats")).to_contain_text("Handled today1")

    db_session.expire_all()
    done = db_session.get(Interaction, call.id)
    assert (done.state, done.disposition, done.notes) == ("closed", "information_given",
                                                           "Asked about the parcel; it arrives tomorrow.")


@pytest.mark.browser
def test_console_in_chinese(db_session, live_server, browser):
    agent = make_staff(db_session, language="zh")
    db_session.commit()
    page = browser.new_page()
    page.goto(live_server.url + "/login?lang=zh")
    page.fill("#email", agent.email)
    page.fill("#password", PASSWORD)
    page.click("#sign-in")
    page.goto(live_server.url + "/console/")
    expect(page.locator("#go-available")).to_have_text("置为空闲")
    expect(page.locator("#connection")).to_have_text("已连接")
    expect(page.locator("#no-work")).to_have_text("暂无处理中的工作。置为空闲即可接收联络。")
