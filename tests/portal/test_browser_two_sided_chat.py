"""Issue 6's "done when", in one test and two browser contexts of Debian's chromium: the customer signs in
to the portal and chats through the widget; the agent signs in to the console, goes available, accepts
the offer the real router makes (with the screen-pop), and answers in the console's chat panel. The
customer's network drops mid-chat (the context goes offline and its socket is cut); back online, the
customer has the full history and the message written while offline is stored once. The agent ends
the chat and completes wrap-up; the contact closes and the customer answers the emailed survey.

Nothing here calls the chat or routing services by hand: every step is a click or a key press."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from app.channels import chat
from app.channels.chat_models import ChatMessage, ChatSession
from app.crm.models import CustomerFeedback
from app.extensions import socketio
from app.interactions.models import Interaction
from app.portal.models import PortalEmail
from tests.chat.conftest import no_timers  # noqa: F401  (fixture)
from tests.console.conftest import running_router  # noqa: F401  (fixture)
from tests.console.test_browser import sign_in as agent_sign_in
from tests.factories import PASSWORD, make_staff
from tests.portal.helpers import make_account

TIMEOUT_MS = 15_000


def _chat(db_session) -> ChatSession:
    db_session.expire_all()
    return db_session.scalar(select(ChatSession).order_by(ChatSession.id.desc()))


def _customer_bodies(db_session, chat_id: int) -> list[str]:
    db_session.expire_all()
    return list(db_session.scalars(select(ChatMessage.body).where(ChatMessage.chat_id == chat_id,
                                                                  ChatMessage.sender == "customer")
                                   .order_by(ChatMessage.id)))


@pytest.mark.browser
def test_customer_and_agent_chat_through_a_network_drop_to_the_survey(
        app, db_session, live_server, chromium_browser, running_router, no_timers, monkeypatch):  # noqa: F811
    monkeypatch.setattr(chat, "is_open", lambda calendar, at: True)  # the desk is open, whatever the clock
    account = make_account(db_session, email="wang@example.com", name="Wang Fang")
    agent = make_staff(db_session, name="Agent Bo")
    db_session.commit()
    contexts = [chromium_browser.new_context(locale="en-US", viewport={"width": 1366, "height": 860})
                for _ in range(2)]
    customer_ctx, agent_ctx = contexts
    try:
        # the agent: console, available
        console = agent_ctx.new_page()
        console.set_default_timeout(TIMEOUT_MS)
        agent_sign_in(console, live_server.url, agent.email)
        console.click("#go-available")
        expect(console.locator("#presence-now")).to_have_attribute("data-presence", "available")

        # the customer: portal sign-in, then the widget (signed in: no pre-chat form)
        portal = customer_ctx.new_page()
        portal.set_default_timeout(TIMEOUT_MS)
        portal.goto(f"{live_server.url}/portal/signin?lang=en")
        portal.fill("#email", account.email)
        portal.fill("#password", PASSWORD)
        portal.click("#sign-in")
        portal.wait_for_url(re.compile(r"/portal/$"))
        portal.goto(f"{live_server.url}/portal/chat")
        widget = portal.frame_locator("#desk-chat-frame")
        widget.locator("#chat-launcher").click()
        widget.locator("#si-start").click()
        widget.locator("#chat-input").fill("Hello, where is my parcel?")
        widget.locator("#chat-send").click()
        widget.locator("#messages li.customer .meta", has_text="Sent").wait_for()
        found = _chat(db_session)
        iid = found.interaction_id
        assert found.account_id == account.id

        # the router offers the chat to Bo; the screen-pop knows the signed-in customer
        card = console.locator(".offer")
        expect(card).to_be_visible(timeout=TIMEOUT_MS)
        expect(card).to_contain_text("Wang Fang")
        card.locator(".accept").click()
        expect(card).to_have_count(0)
        log = console.locator(f"#chat-log-{iid}")
        expect(log.locator(".from-customer")).to_contain_text("Hello, where is my parcel?")
        widget.locator("#chat-status", has_text="You are chatting with Agent Bo").wait_for()

        box = console.locator(f"#chat-input-{iid}")
        box.fill("Hi Wang, let me look.")
        box.press("Enter")
        widget.locator("#messages li.agent", has_text="let me look").wait_for()
        expect(log.locator(".from-agent .receipt")).to_have_text("Read")  # the open widget read it

        # the customer's network drops: offline, and the live socket is cut (going offline alone does
        # not close an open WebSocket in chromium)
        customer_ctx.set_offline(True)
        for sid in list(app.extensions["desk.redis"].smembers(f"chat:sockets:{iid}")):
            socketio.server.disconnect(sid, namespace="/customer")
        widget.locator("#chat-status", has_text="Reconnecting").wait_for()
        widget.locator("#chat-input").fill("Are you still there?")
        widget.locator("#chat-send").click()
        widget.locator("#messages li.pending", has_text="Are you still there?").wait_for()
        box.fill("It arrives tomorrow.")
        box.press("Enter")
        expect(log.locator(".from-agent").last).to_contain_text("It arrives tomorrow.")
        assert _customer_bodies(db_session, found.id) == ["Hello, where is my parcel?"]  # nothing got through

        customer_ctx.set_offline(False)
        widget.locator("#messages li.agent", has_text="It arrives tomorrow.").wait_for(timeout=30_000)
        widget.locator("#messages li.customer:not(.pending)", has_text="Are you still there?").wait_for()
        expect(log.locator(".from-customer").last).to_contain_text("Are you still there?")
        assert _customer_bodies(db_session, found.id) == ["Hello, where is my parcel?", "Are you still there?"]

        # a reload restores the whole conversation from the server
        portal.reload()
        widget = portal.frame_locator("#desk-chat-frame")
        widget.locator("#chat-launcher").click()
        widget.locator("#messages li.agent", has_text="It arrives tomorrow.").wait_for()
        texts = [t.strip() for t in widget.locator("#messages li.customer .text, #messages li.agent .text")
                 .all_inner_texts()]
        # in the order the server stored them: the agent's offline-time reply came first
        assert texts == ["Hello, where is my parcel?", "Hi Wang, let me look.", "It arrives tomorrow.",
                         "Are you still there?"]
        expect(log.locator(".from-customer")).to_have_count(2)  # the agent saw the resent message once

        # the agent ends the chat and completes wrap-up; the contact closes; the survey is emailed
        console.locator(f"#panel-{iid} .end").click()
        widget.locator("#chat-new").wait_for(state="visible")
        console.select_option(f"#disposition-{iid}", "information_given")
        console.locator(f"#panel-{iid} .complete").click()
        expect(console.locator(f"#tab-{iid}")).to_have_count(0)
        db_session.expire_all()
        assert db_session.get(Interaction, iid).state == "closed"
        survey = db_session.scalar(select(PortalEmail).where(PortalEmail.kind == "survey"))
        assert survey is not None and survey.to_address == account.email
        path = survey.body[survey.body.index("/portal/survey/"):].split()[0]

        portal.goto(live_server.url + path)
        portal.check("#csat input[value='5']")
        portal.check("#nps input[value='9']")
        portal.fill("#comment", "Quick, even with my bad connection")
        portal.click("#send-survey")
        portal.wait_for_selector("text=Your answers help us do better.")
        db_session.expire_all()
        answers = {f.kind: f for f in db_session.scalars(select(CustomerFeedback)
                                                          .where(CustomerFeedback.interaction_id == iid))}
        assert (answers["csat"].score, answers["nps"].score) == (5, 9)
    finally:
        for context in contexts:
            context.close()
