"""The chat panel and the email composer in the browser, on contacts the real router offered."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from app.channels import chat
from app.channels.chat_models import ChatMessage, ChatSession
from app.channels.email.models import EmailMessage
from queues.service import enqueue_contact
from tests.console.test_browser import LIVE_TIMEOUT_MS, sign_in
from tests.email.conftest import build_mail, desk, ingest, jobs, outbox  # noqa: F401  (fixtures)
from tests.factories import make_interaction, make_staff


def accept_the_offer(page) -> None:
    page.click("#go-available")
    card = page.locator(".offer")
    expect(card).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    card.locator(".accept").click()
    expect(card).to_have_count(0)


@pytest.mark.browser
def test_agent_chats_with_typing_and_read_receipts(app, db_session, live_server, browser, running_router,
                                                   monkeypatch):
    monkeypatch.setattr(chat, "is_open", lambda calendar, at: True)
    agent = make_staff(db_session, name="Agent Amy")
    db_session.commit()
    config = app.extensions["desk.config"]
    page = browser.new_page()
    sign_in(page, live_server.url, agent.email)
    found, _token = chat.start_chat(db_session, config, name="Li Na", email="li@example.com", topic="general")
    iid = found.interaction_id
    accept_the_offer(page)

    log = page.locator(f"#chat-log-{iid}")
    expect(log.locator(".from-system")).to_contain_text("An agent will be with you shortly")
    db_session.expire_all()  # the chat's interaction is now Amy's
    chat.post_customer_message(db_session, config.chat, db_session.get(ChatSession, found.id),
                               client_id="customer-0001", text="Hello, is my parcel lost?")
    expect(log.locator(".from-customer")).to_contain_text("Hello, is my parcel lost?")
    chat.typing(iid, sender="customer", on=True, agent_id=agent.id)
    expect(page.locator(f"#chat-typing-{iid}")).to_have_text("The customer is typing...")

    box = page.locator(f"#chat-input-{iid}")
    box.fill("No - it arrives tomorrow.")
    box.press("Enter")
    mine = log.locator(".from-agent")
    expect(mine).to_contain_text("No - it arrives tomorrow.")
    expect(box).to_have_value("")
    db_session.expire_all()
    sent = db_session.scalar(select(ChatMessage).where(ChatMessage.chat_id == found.id, ChatMessage.sender == "agent"))
    assert sent.body == "No - it arrives tomorrow."
    assert db_session.get(ChatSession, found.id).agent_read_upto >= sent.id - 1  # the agent read the customer

    chat.mark_read(db_session, iid, reader="customer", upto_id=sent.id, chat=db_session.get(ChatSession, found.id))
    expect(mine.locator(".receipt")).to_have_text("Read")


@pytest.mark.browser
def test_email_composer_warns_of_a_newer_message_and_can_undo(app, db_session, live_server, browser, running_router,
                                                              desk, ingest, jobs, outbox):  # noqa: F811
    agent = make_staff(db_session, name="Agent Amy")
    db_session.commit()
    first = ingest(build_mail(subject="Help please", body="My order has not arrived."))
    iid = first.interaction_id
    page = browser.new_page()
    sign_in(page, live_server.url, agent.email)
    accept_the_offer(page)
    pop = page.locator(f"#panel-{iid} .screenpop")
    expect(pop.locator(".collected")).to_contain_text("mailbox=support")  # what the mail's intake noted
    expect(pop.locator(".pop-section.ivr")).to_have_count(0)  # mail never meets the IVR: no section for it

    thread = page.locator(f"#email-thread-{iid}")
    expect(thread.locator(".email-msg.in")).to_contain_text("My order has not arrived.")
    page.fill(f"#email-body-{iid}", "It ships today.")
    page.click(".email-preview")
    expect(page.locator(f"#email-preview-{iid}")).to_contain_text("Kind regards,")

    ack = db_session.scalar(select(EmailMessage).where(EmailMessage.interaction_id == iid, EmailMessage.kind == "ack"))
    ingest(build_mail(subject="Re: Help please", in_reply_to=ack.message_id, body="It was the wrong colour too."))
    page.click(".email-send")
    warning = page.locator(f"#email-warning-{iid}")
    expect(warning).to_contain_text("The customer wrote again while you were typing.")
    expect(warning).to_contain_text("It was the wrong colour too.")
    assert db_session.scalar(select(EmailMessage).where(EmailMessage.kind == "reply")) is None

    page.fill(f"#email-body-{iid}", "It ships today, in the right colour.")
    page.click(".email-send")
    status = page.locator(f"#email-status-{iid}")
    expect(status).to_contain_text("Sending in")
    page.click(".email-undo")
    expect(status).to_have_text("Reply cancelled; your text is back in the box.")
    expect(page.locator(f"#email-body-{iid}")).to_have_value("It ships today, in the right colour.")

    page.click(".email-send")
    expect(status).to_contain_text("Sending in")
    jobs.run_delayed()
    db_session.expire_all()
    replies = db_session.scalars(select(EmailMessage).where(EmailMessage.kind == "reply")
                                 .order_by(EmailMessage.id)).all()
    assert [r.status for r in replies] == ["cancelled", "sent"]
    assert any("in the right colour" in m.message.get_content() for m in outbox.sent)


@pytest.mark.browser
def test_a_chat_reply_over_a_newer_customer_message_waits_for_send_anyway(app, db_session, live_server, browser,
                                                                          running_router, monkeypatch):
    monkeypatch.setattr(chat, "is_open", lambda calendar, at: True)
    agent = make_staff(db_session, name="Agent Amy")
    db_session.commit()
    config = app.extensions["desk.config"]
    page = browser.new_page()
    sign_in(page, live_server.url, agent.email)
    found, _token = chat.start_chat(db_session, config, name="Li Na", email="li@example.com", topic="general")
    iid = found.interaction_id
    accept_the_offer(page)
    log = page.locator(f"#chat-log-{iid}")
    db_session.expire_all()
    chat.post_customer_message(db_session, config.chat, db_session.get(ChatSession, found.id),
                               client_id="customer-0001", text="Is my parcel lost?")
    expect(log.locator(".from-customer")).to_have_count(1)

    box = page.locator(f"#chat-input-{iid}")
    box.fill("No - it arrives tomorrow.")  # the draft starts here, having seen one message
    chat.post_customer_message(db_session, config.chat, db_session.get(ChatSession, found.id),
                               client_id="customer-0002", text="Sorry, I mean the second parcel.")
    expect(log.locator(".from-customer")).to_have_count(2)
    box.press("Enter")
    warning = page.locator(f"#chat-warning-{iid}")
    expect(warning).to_contain_text("The customer wrote again while you were typing.")
    expect(warning.locator("blockquote")).to_have_text("Sorry, I mean the second parcel.")
    expect(box).to_have_value("No - it arrives tomorrow.")
    db_session.expire_all()
    assert db_session.scalar(select(ChatMessage).where(ChatMessage.sender == "agent")) is None

    warning.locator(".edit-reply").click()
    expect(warning).to_be_hidden()
    expect(box).to_be_focused()
    box.fill("Both parcels arrive tomorrow.")
    chat.post_customer_message(db_session, config.chat, db_session.get(ChatSession, found.id),
                               client_id="customer-0003", text="Hello?")
    expect(log.locator(".from-customer")).to_have_count(3)
    box.press("Enter")
    expect(warning.locator("blockquote")).to_have_text("Hello?")
    warning.locator(".send-anyway").click()
    expect(log.locator(".from-agent")).to_contain_text("Both parcels arrive tomorrow.")
    expect(warning).to_be_hidden()
    db_session.expire_all()
    assert db_session.scalars(select(ChatMessage.body).where(ChatMessage.sender == "agent")).all() == \
        ["Both parcels arrive tomorrow."]

    page.select_option(f"#chat-template-{iid}", "canned_more_details")  # canned replies in chat too
    page.click(".chat-panel .insert-template")
    expect(box).to_have_value(re.compile(r"^To look into this for you, could you please tell us your order number"))


@pytest.mark.browser
def test_an_email_reply_gets_a_canned_template_and_the_customers_new_mail_live(
        app, db_session, live_server, browser, running_router, desk, ingest, jobs, outbox):  # noqa: F811
    agent = make_staff(db_session, name="Agent Amy")
    db_session.commit()
    first = ingest(build_mail(subject="Help please", body="My order has not arrived."))
    iid = first.interaction_id
    page = browser.new_page()
    sign_in(page, live_server.url, agent.email)
    accept_the_offer(page)
    thread = page.locator(f"#email-thread-{iid}")
    expect(thread.locator(".email-msg.in")).to_have_count(1)

    body = page.locator(f"#email-body-{iid}")
    page.select_option(f"#email-template-{iid}", "canned_delivery_delay")
    page.click(".email-composer .insert-template")
    expect(body).to_have_value(re.compile(rf"^Thank you for your patience\. .*case C-{iid} within one working day\.$"))

    ack = db_session.scalar(select(EmailMessage).where(EmailMessage.interaction_id == iid, EmailMessage.kind == "ack"))
    ingest(build_mail(subject="Re: Help please", in_reply_to=ack.message_id, body="Any news?"))
    expect(thread.locator(".email-msg.in")).to_have_count(2)  # arrived live, no reload
    expect(thread.locator(".email-msg.in").last).to_contain_text("Any news?")
    page.click(".email-send")
    warning = page.locator(f"#email-warning-{iid}")
    expect(warning.locator("blockquote")).to_have_text(re.compile(r"Any news\?\s*"))
    warning.locator(".send-anyway").click()
    expect(page.locator(f"#email-status-{iid}")).to_contain_text("Sending in")


@pytest.mark.browser
def test_a_follow_up_task_shows_what_it_noted_once_in_the_agents_language(app, db_session, live_server, browser,
                                                                         running_router):
    agent = make_staff(db_session, name="Agent Amy", language="zh")
    task = make_interaction(db_session, channel="task", attributes={
        "follow_up": "vip_keep_in_touch", "subject_en": "Keep in touch", "subject_zh": "保持联系"})
    enqueue_contact(db_session, task, "general", actor="test")
    db_session.commit()
    page = browser.new_page()
    sign_in(page, live_server.url, agent.email, lang="zh")
    accept_the_offer(page)
    noted = page.locator(f"#panel-{task.id} .screenpop .collected")
    expect(noted).to_contain_text("subject=保持联系")
    expect(noted).not_to_contain_text("Keep in touch")
    expect(page.locator(f"#panel-{task.id} .screenpop .pop-section.ivr")).to_have_count(0)
