"""What an agent and a supervisor see in the browser (Playwright with Debian's chromium), with the real
router running on its thread: nothing in these tests makes an offer by hand."""
from __future__ import annotations


import pyotp
import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from app.channels.telephony import RecordingTelephony
from app.interactions.models import Interaction
from queues.models import AgentState
from tests.factories import PASSWORD, make_customer, make_interaction, make_order, make_staff
from tests.ivr.phone import Caller

LIVE_TIMEOUT_MS = 15_000


@pytest.fixture()
def phone(app, client, monkeypatch):
    """A caller whose webhooks are signed as Twilio signs them, while the desk is open (the real clock,
    so the router and the wallboard's "today" agree with the call's timestamps)."""
    import ivr.engine

    monkeypatch.setattr(ivr.engine, "is_open", lambda calendar, at: True)
    monkeypatch.setitem(app.extensions, "desk.telephony", RecordingTelephony())
    return Caller(client, from_="+8613800138000")


def sign_in(page, base_url: str, email: str, lang: str = "en") -> None:
    page.goto(base_url + f"/login?lang={lang}")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("#sign-in")
    page.goto(base_url + "/console/")
    expect(page.locator("#connection")).to_have_attribute("data-ok", "1")


def sign_in_supervisor(page, base_url: str, email: str) -> None:
    """Password, then the first-time authenticator enrolment the supervisor role requires."""
    page.goto(base_url + "/login?lang=en")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("#sign-in")
    page.wait_for_url("**/account/2fa**")
    secret = page.locator("#totp-secret").inner_text().strip()
    page.fill("#code", pyotp.TOTP(secret).now())
    page.press("#code", "Enter")
    page.wait_for_load_state()
    page.goto(base_url + "/supervisor/")
    expect(page.locator("#sv-status")).to_have_class("sv-status live", timeout=LIVE_TIMEOUT_MS)


@pytest.mark.browser
def test_a_routed_vip_call_pops_accepts_wraps_up_and_the_wallboard_follows(app, db_session, live_server, browser,
                                                                          phone, running_router):
    agent = make_staff(db_session, name="Agent Amy", skills={"vip": 8, "general": 5})
    boss = make_staff(db_session, role="supervisor", name="Sue Visor")
    customer = make_customer(db_session, name="Wang Fang", tier="vip", phone="+8613800138000")
    make_order(db_session, customer, number="ORD-8842", shipment_status="in_transit")
    db_session.commit()

    board = browser.new_page()
    sign_in_supervisor(board, live_server.url, boss.email)
    vip_row = board.locator('#sv-queues tr[data-queue="vip"]')
    expect(vip_row.locator("td.offered")).to_have_text("0", timeout=LIVE_TIMEOUT_MS)
    agent_row = board.locator(f'#sv-agents tr[data-agent="{agent.id}"]')

    page = browser.new_page()
    sign_in(page, live_server.url, agent.email)
    page.click("#go-available")
    expect(page.locator("#presence-now")).to_have_attribute("data-presence", "available")
    expect(agent_row.locator("td.presence")).to_contain_text("Available", timeout=LIVE_TIMEOUT_MS)

    reply = phone.dial()  # a signed webhook: the VIP is identified and queued at once
    assert reply.status == 200
    call = db_session.scalar(select(Interaction).where(Interaction.external_ref == phone.call_sid))
    assert (call.queue, call.customer_id) == ("vip", customer.id)

    card = page.locator(".offer")  # the router chose Amy; the card carries the real offer's id
    expect(card).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    expect(card.locator(".offer-title")).to_contain_text("Wang Fang")
    expect(card.locator(".screenpop")).to_contain_text("ORD-8842")
    expect(card.locator(".screenpop")).to_contain_text("in transit")  # the shipment's status, named
    expect(card.locator(".screenpop .pop-section.ivr")).to_contain_text("The contact did not go through the IVR.")
    expect(card.locator(".screenpop")).to_contain_text("VIP customer")  # why it has its priority
    expect(card.locator(".countdown")).to_contain_text("Expires in")
    expect(vip_row.locator("td.offered")).to_have_text("1", timeout=LIVE_TIMEOUT_MS)

    card.locator(".accept").click()
    expect(card).to_have_count(0)
    tab = page.locator(f"#tab-{call.id}")
    expect(tab).to_contain_text("Wang Fang")
    panel = page.locator(f"#panel-{call.id}")
    expect(panel.locator(".screenpop")).to_contain_text("ORD-8842")
    expect(vip_row.locator("td").last).to_have_text("1", timeout=LIVE_TIMEOUT_MS)  # answered
    expect(agent_row.locator("td").nth(2)).to_have_text("1", timeout=LIVE_TIMEOUT_MS)  # open contacts

    panel.locator(f"#notes-{call.id}").fill("Asked about the parcel; it arrives tomorrow.")
    panel.locator(f"#disposition-{call.id}").select_option("information_given")
    panel.locator(".complete").click()
    expect(tab).to_have_count(0)
    expect(page.locator("#stats")).to_contain_text("Handled today1")
    expect(page.locator("#presence-now")).to_have_attribute("data-presence", "available")
    expect(agent_row.locator("td").nth(2)).to_have_text("0", timeout=LIVE_TIMEOUT_MS)

    db_session.expire_all()
    done = db_session.get(Interaction, call.id)
    assert (done.state, done.disposition, done.notes) == ("closed", "information_given",
                                                           "Asked about the parcel; it arrives tomorrow.")
    assert [e.actor for e in done.events if e.to_state == "offered"] == ["router"]
    assert db_session.get(AgentState, agent.id).presence == "available"


@pytest.mark.browser
def test_console_in_chinese(db_session, live_server, browser):
    agent = make_staff(db_session, language="zh")
    db_session.commit()
    page = browser.new_page()
    sign_in(page, live_server.url, agent.email, lang="zh")
    expect(page.locator("#go-available")).to_have_text("置为空闲")
    expect(page.locator("#connection")).to_have_text("已连接")
    expect(page.locator("#no-work")).to_have_text("暂无处理中的工作。置为空闲即可接收联络。")


@pytest.mark.browser
def test_the_screen_pop_names_states_and_statuses_in_the_agents_language(db_session, live_server, browser, phone,
                                                                        running_router):
    agent = make_staff(db_session, language="zh", skills={"vip": 8, "general": 5})
    customer = make_customer(db_session, name="王芳", tier="vip", phone="+8613800138000")
    make_order(db_session, customer, number="ORD-7001", status="shipped", shipment_status="in_transit")
    earlier = make_interaction(db_session, channel="email", customer=customer, subject="发票问题")
    earlier.state = "closed"
    db_session.commit()
    page = browser.new_page()
    sign_in(page, live_server.url, agent.email, lang="zh")
    page.click("#go-available")
    assert phone.dial().status == 200

    pop = page.locator(".offer .screenpop")
    expect(pop).to_contain_text("ORD-7001 · 已发货", timeout=LIVE_TIMEOUT_MS)
    expect(pop).to_contain_text("运输中")
    expect(pop).to_contain_text("电子邮箱 · 已关闭 · 发票问题")
    for code in ("shipped", "in_transit", "closed"):
        expect(pop).not_to_contain_text(code)
