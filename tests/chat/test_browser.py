"""The whole customer journey in Debian's chromium: sign in, open a case (with article suggestions), chat
with an agent through the widget, lose the network mid-chat and come back to the full history, answer
the survey. The agent's side is driven through the chat service the console calls (post_agent_message,
typing, mark_read, end_by_agent), over the same live server and database."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.channels import chat
from app.channels.chat_models import ChatSession
from app.extensions import socketio
from app.interactions.service import transition
from app.interactions.states import State
from app.portal.models import PortalEmail
from app.portal.seed import seed_knowledge_base
from tests.chat.conftest import connect_agent
from tests.factories import PASSWORD, make_staff
from tests.portal.helpers import make_account

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("fallback_routing", "no_timers", "open_hours")]
TIMEOUT_MS = 15_000


def _chat_session(db_session) -> ChatSession:
    db_session.expire_all()
    return db_session.scalar(select(ChatSession).order_by(ChatSession.id.desc()))


def test_customer_journey_with_network_drop(app, db_session, live_server, browser):  # noqa: F811
    account = make_account(db_session, email="wang@example.com", name="Wang Fang")
    agent = make_staff(db_session, name="Agent Bo")
    seed_knowledge_base(db_session)
    db_session.commit()
    config = app.extensions["desk.config"].chat
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)

    # sign in and open a case; articles are suggested while typing
    page.goto(f"{live_server.url}/portal/signin")
    page.fill("#email", account.email)
    page.fill("#password", PASSWORD)
    page.click("#sign-in")
    page.wait_for_url(re.compile(r"/portal/$"))
    page.goto(f"{live_server.url}/portal/cases/new")
    page.fill("#subject", "Parcel not here")
    page.type("#description", "Where is my order? The tracking has not moved.")
    page.wait_for_selector("#suggestions:not([hidden]) a")
    assert "track" in page.inner_text("#suggestions").lower()
    page.click("#send-case")
    page.wait_for_url(re.compile(r"/portal/cases/\d+$"))
    assert "Parcel not here" in page.inner_text("h1")

    # chat through the one-script-tag widget; a signed-in customer skips the pre-chat form
    page.goto(f"{live_server.url}/portal/chat")
    frame = page.frame_locator("#desk-chat-frame")
    frame.locator("#chat-launcher").click()
    assert not frame.locator("#prechat").is_visible()
    frame.locator("#si-start").click()
    frame.locator("#chat-status").filter(has_text="number 1 in the queue").wait_for()
    frame.locator("#chat-input").fill("Hello <b>agent</b>")
    frame.locator("#chat-send").click()
    frame.locator("#messages li.customer .meta", has_text="Sent").wait_for()
    assert frame.locator("#messages li.customer b").count() == 0  # text, never HTML
    assert "Hello <b>agent</b>" in frame.locator("#messages li.customer").first.inner_text()

    found = _chat_session(db_session)
    assert found.account_id == account.id
    connect_agent(db_session, found.interaction, agent)
    frame.locator("#chat-status", has_text="You are chatting with Agent Bo").wait_for()
    chat.typing(found.interaction_id, sender="agent", on=True, agent_id=agent.id)
    frame.locator("#typing").wait_for(state="visible")
    chat.post_agent_message(db_session, config, found.interaction_id, agent.id, client_id="agent-000001",
                            text="Hi Wang, let me look.")
    frame.locator("#messages li.agent", has_text="let me look").wait_for()
    last_customer = max(m["id"] for m in chat.history(db_session, found) if m["sender"] == "customer")
    chat.mark_read(db_session, found.interaction_id, reader="agent", upto_id=last_customer, agent_id=agent.id)
    frame.locator("#messages li.customer .meta", has_text="Read").wait_for()
    db_session.expire_all()
    assert _chat_session(db_session).customer_read_upto > 0  # the customer's side sent its read receipt

    # the network drops: the socket is cut and cannot reconnect while offline
    browser.set_offline(True)
    for sid in list(app.extensions["desk.redis"].smembers(f"chat:sockets:{found.interaction_id}")):
        socketio.server.disconnect(sid, namespace="/customer")
    frame.locator("#chat-status", has_text="Reconnecting").wait_for()
    frame.locator("#chat-input").fill("Are you still there?")
    frame.locator("#chat-send").click()
    frame.locator("#messages li.pending", has_text="Are you still there?").wait_for()
    chat.post_agent_message(db_session, config, found.interaction_id, agent.id, client_id="agent-000002",
                            text="It arrives tomorrow.")
    browser.set_offline(False)
    frame.locator("#messages li.agent", has_text="It arrives tomorrow.").wait_for(timeout=30_000)
    frame.locator("#messages li.customer:not(.pending)", has_text="Are you still there?").wait_for()
    stored = [m["body"] for m in chat.history(db_session, found) if m["sender"] == "customer"]
    assert stored.count("Are you still there?") == 1

    # a full reload restores the whole conversation from the server
    page.reload()
    frame = page.frame_locator("#desk-chat-frame")
    frame.locator("#chat-launcher").click()
    frame.locator("#messages li.agent", has_text="It arrives tomorrow.").wait_for()
    assert frame.locator("#messages li.customer").count() == 2

    # the agent ends; the contact closes; the survey link arrives and is answered
    chat.end_by_agent(db_session, found.interaction_id, agent.id)
    frame.locator("#chat-new").wait_for(state="visible")
    db_session.refresh(found.interaction)
    transition(db_session, found.interaction, State.CLOSED, actor=f"staff:{agent.id}", reason="wrap-up done")
    db_session.commit()
    db_session.expire_all()
    survey = db_session.scalar(select(PortalEmail).where(PortalEmail.kind == "survey"))
    assert survey is not None and survey.to_address == account.email
    path = survey.body[survey.body.index("/portal/survey/"):].split()[0]
    page.goto(live_server.url + path)
    page.check("#csat input[value='5']")
    page.check("#nps input[value='10']")
    page.fill("#comment", "Very helpful")
    page.click("#send-survey")
    page.wait_for_selector("text=Your answers help us do better.")


def _serve_page(html: str):
    """A one-page site on its own origin (another port), like a shop that embeds the widget."""
    import http.server
    import threading

    body = html.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def test_widget_on_an_allowed_site_with_the_prechat_form(app, db_session, live_server, browser):  # noqa: F811
    tag = f'<!doctype html><html lang="en"><body><h1>Shop</h1><script src="{live_server.url}/chat/widget.js" ' \
          'async></script></body></html>'
    shop, shop_origin = _serve_page(tag)
    stranger, _ = _serve_page(tag)  # a site not in chat.allowed_origins
    config = app.extensions["desk.config"]
    app.extensions["desk.config"] = config.model_copy(update={"chat": config.chat.model_copy(
        update={"allowed_origins": [shop_origin]})})
    try:
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(shop_origin)
        frame = page.frame_locator("#desk-chat-frame")
        frame.locator("#chat-launcher").click()
        page.wait_for_function("document.getElementById('desk-chat-frame').style.width === '380px'")
        frame.locator("#pc-start").click()  # empty form: the server says what is wrong
        frame.locator("#pc-error", has_text="enter your name").wait_for()
        frame.locator("#pc-name").fill("Visitor")
        frame.locator("#pc-email").fill("visitor@example.com")
        frame.locator("#pc-topic").select_option("billing")
        frame.locator("#pc-start").click()
        frame.locator("#chat-status", has_text="in the queue").wait_for()
        frame.locator("#chat-input").fill("Invoice question")
        frame.locator("#chat-input").press("Enter")
        frame.locator("#messages li.customer .meta", has_text="Sent").wait_for()
        found = _chat_session(db_session)
        assert found.origin == shop_origin and found.topic == "billing" and found.interaction.queue == "billing"
        frame.locator("#chat-transcript").click()
        frame.locator("#chat-error", has_text="visitor@example.com").wait_for()
        frame.locator("#chat-leave").click()
        frame.locator("#chat-status", has_text="kept as request").wait_for()

        other = browser.new_page()
        other.goto(f"http://127.0.0.1:{stranger.server_address[1]}")
        other.wait_for_timeout(1500)
        assert other.frame_locator("#desk-chat-frame").locator("#chat-launcher").count() == 0
    finally:
        app.extensions["desk.config"] = config
        shop.shutdown()
        stranger.shutdown()
