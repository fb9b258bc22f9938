"""The mail simulator: the customer's side of the email channel in the demo, through the real intake."""
from __future__ import annotations

import re

from sqlalchemy import select

from app.channels import dev_mail
from app.channels.email.models import EmailMessage, EmailThread
from app.interactions.models import Interaction
from tests.factories import login, make_staff


def _signed_in(client, db_session):
    agent = make_staff(db_session)
    db_session.commit()
    login(client, agent)
    return agent


def _flash(page: str) -> str:
    return re.search(r'<p class="flash" role="status">([^<]*)</p>', page).group(1)


def test_the_simulator_is_for_signed_in_staff_and_gone_without_dev_tools(app, client, db_session, desk, monkeypatch):
    assert client.get("/dev/mail").headers["Location"].startswith("/login")
    assert client.post("/dev/mail/send", data={}).status_code == 302  # to the sign-in page: nothing sent
    _signed_in(client, db_session)
    english = client.get("/dev/mail?lang=en").get_data(as_text=True)
    assert "Mail simulator" in english and 'value="support@desk.test"' in english
    assert "邮件模拟器" in client.get("/dev/mail?lang=zh").get_data(as_text=True)
    settings = app.extensions["desk.settings"]
    monkeypatch.setitem(app.extensions, "desk.settings", settings.model_copy(update={"dev_tools": False}))
    assert client.get("/dev/mail").status_code == 404
    assert client.post("/dev/mail/send", data={}).status_code == 404


def test_a_mail_becomes_a_case_and_the_answer_to_its_acknowledgement_lands_in_it(client, db_session, desk, outbox):
    _signed_in(client, db_session)
    sent = client.post("/dev/mail/send", data={
        "sender": "wei@customer.test", "name": "Li Wei", "to": "support@desk.test", "subject": "Parcel missing",
        "body": "My parcel has not arrived."}, follow_redirects=True)
    case = db_session.scalar(select(Interaction).where(Interaction.channel == "email"))
    assert _flash(sent.get_data(as_text=True)) == f"Delivered: a new case, C-{case.id}."
    assert case.state == "queued" and case.queue == "general"
    page = client.get("/dev/mail?sender=wei%40customer.test").get_data(as_text=True)
    assert len(outbox.sent) == 1 and "automatic" in page and f"[#C-{case.id}]" in page  # the acknowledgement

    draft = client.get("/dev/mail?reply=0").get_data(as_text=True)
    ack = outbox.sent[0].message
    assert f'name="in_reply_to" value="{ack["Message-ID"]}"' in draft.replace("&lt;", "<").replace("&gt;", ">")
    assert 'name="sender" type="email" required maxlength="254" value="wei@customer.test"' in draft
    assert re.search(r'name="to" [^>]*value="reply\+[0-9a-z-]+@desk\.test"', draft)
    assert f'value="Re: {ack["Subject"]}"' in draft
    answered = client.post("/dev/mail/send", data={
        "sender": "wei@customer.test", "to": str(ack["Reply-To"]), "subject": f"Re: {ack['Subject']}",
        "body": "Thank you.", "in_reply_to": str(ack["Message-ID"]), "references": ""}, follow_redirects=True)
    assert _flash(answered.get_data(as_text=True)) == f"Delivered to case C-{case.id}."
    inbound = db_session.scalars(select(EmailMessage).where(EmailMessage.direction == "in")
                                 .order_by(EmailMessage.id)).all()
    assert [m.interaction_id for m in inbound] == [case.id, case.id]
    assert inbound[1].in_reply_to == str(ack["Message-ID"]).strip("<>")
    assert db_session.scalar(select(EmailThread.customer_address)) == "wei@customer.test"


def test_a_mail_without_a_subject_or_sender_is_refused_and_nothing_is_stored(client, db_session, desk):
    _signed_in(client, db_session)
    for form in ({"sender": "wei@customer.test", "to": "support@desk.test", "subject": "", "body": "x"},
                 {"sender": "nobody", "to": "support@desk.test", "subject": "Hi", "body": "x"},
                 {"sender": "wei@customer.test", "to": "support@desk.test", "subject": "Hi",
                  "body": "x" * (dev_mail.MAX_BODY_CHARS + 1)}):
        page = client.post("/dev/mail/send", data=form, follow_redirects=True).get_data(as_text=True)
        assert _flash(page).startswith("Give a sender and recipient address")
    assert db_session.scalar(select(EmailMessage.id)) is None


def test_the_same_mail_twice_is_stored_once(client, db_session, desk, monkeypatch):
    _signed_in(client, db_session)
    monkeypatch.setattr(dev_mail, "make_msgid", lambda domain: f"<fixed@{domain}>")
    form = {"sender": "wei@customer.test", "to": "help@desk.test", "subject": "Hello", "body": "Hi"}
    client.post("/dev/mail/send", data=form, follow_redirects=True)
    again = client.post("/dev/mail/send", data=form, follow_redirects=True).get_data(as_text=True)
    assert _flash(again) == "The desk already had this message."
    assert len(db_session.scalars(select(EmailMessage).where(EmailMessage.direction == "in")).all()) == 1


def test_mail_sent_through_a_real_server_is_not_listed(app, client, db_session, desk):
    from tests.email.conftest import set_email_config

    set_email_config(app, smtp={"transport": "smtp", "host": "127.0.0.1", "port": 2525, "security": "none"})
    _signed_in(client, db_session)
    page = client.get("/dev/mail").get_data(as_text=True)
    assert "sends through a real SMTP server" in page


def test_a_reply_address_or_unknown_recipient_reaches_a_mailbox_on_its_domain(app, desk):
    with app.app_context():
        assert dev_mail._mailbox_for("billing@desk.test").name == "billing"
        assert dev_mail._mailbox_for("HELP@desk.test").name == "support"  # an alias
        assert dev_mail._mailbox_for("reply+abc@desk.test").name == "support"  # the first on that domain
        assert dev_mail._mailbox_for("someone@elsewhere.test").name == "support"


def test_what_the_desk_quarantines_is_said_so(app, client, db_session, desk):
    from tests.email.conftest import set_email_config

    _signed_in(client, db_session)
    bounce = client.post("/dev/mail/send", data={
        "sender": "mailer-daemon@elsewhere.test", "to": "support@desk.test", "subject": "Undelivered Mail",
        "body": "The mail system could not deliver your message."}, follow_redirects=True)
    assert _flash(bounce.get_data(as_text=True)) == "The desk quarantined this message: unmatched_bounce."
    set_email_config(app, limits={"max_message_bytes": 1000})
    big = client.post("/dev/mail/send", data={
        "sender": "wei@customer.test", "to": "support@desk.test", "subject": "Big", "body": "y" * 5000},
        follow_redirects=True)
    assert _flash(big.get_data(as_text=True)) == "The desk quarantined this message: too_large."


def test_without_a_mailbox_nothing_is_sent(app, client, db_session, desk):
    from tests.email.conftest import set_email_config

    set_email_config(app, mailboxes=[], rules=[])
    _signed_in(client, db_session)
    assert 'name="to" type="email" required maxlength="254" value=""' in client.get("/dev/mail").get_data(as_text=True)
    page = client.post("/dev/mail/send", data={"sender": "wei@customer.test", "to": "support@desk.test",
                                                "subject": "Hi", "body": "x"}, follow_redirects=True)
    assert _flash(page.get_data(as_text=True)) == "No mailbox is configured (email.mailboxes)."
