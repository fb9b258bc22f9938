"""Done-when, with real servers: mail sent to the dovecot mailbox becomes a routed case with one
acknowledgement; the agent's reply arrives at the SMTP sink correctly threaded; the customer's
answer lands in the same case."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.channels.email.jobs import poll_due_mailboxes
from app.channels.email.models import EmailMessage, MailboxPollState
from app.channels.email.threads import case_tag
from app.interactions.models import Interaction
from tests.email.conftest import SECRET, build_mail, set_email_config
from tests.email.servers import SmtpSink, start_dovecot
from tests.factories import login, make_customer, make_staff


@pytest.fixture(scope="module")
def dovecot():
    server = start_dovecot()
    yield server
    server.stop()


@pytest.fixture()
def sink():
    with SmtpSink(username="desk", password="smtp-secret") as server:
        yield server


def _wire(app, dovecot, sink, imap_password: str | None = None):
    return set_email_config(app, mailboxes=[
        {"name": "support", "address": "support@desk.test", "display_name": "Test Desk", "queue": "general",
         "imap": {"host": "127.0.0.1", "port": dovecot.port, "security": "none", "username": dovecot.username,
                  "password": {"value": imap_password or dovecot.password}, "batch_size": 2}}],
        smtp={"transport": "smtp", "host": "127.0.0.1", "port": sink.port, "security": "none",
              "username": "desk", "password": {"value": "smtp-secret"}})


def _clear_folder(dovecot):
    client = dovecot.client()
    try:
        client.select_folder("INBOX")
        uids = client.search(["ALL"])
        if uids:
            client.delete_messages(uids)
            client.expunge()
    finally:
        client.logout()


def test_mail_to_the_mailbox_becomes_a_case_and_the_conversation_threads(app, desk, jobs, db_session, client,
                                                                         dovecot, sink):
    _clear_folder(dovecot)
    desk_config = _wire(app, dovecot, sink)
    make_customer(db_session, email="alice@customer.test", name="Alice Wong")
    supervisor = make_staff(db_session, role="supervisor")
    db_session.commit()

    # 1. The customer writes; the desk polls dovecot for real.
    dovecot.deliver(build_mail(message_id="<first@customer.test>", subject="Parcel missing"))
    [report] = poll_due_mailboxes(db_session, desk_config, secret=SECRET, force=True)
    assert (report.fetched, report.stored, report.error) == (1, 1, None)
    interaction = db_session.scalars(select(Interaction)).one()
    assert (interaction.channel, interaction.state, interaction.queue) == ("email", "queued", "general")

    # ... with exactly one acknowledgement, marked automatic, at the SMTP sink.
    [ack] = sink.handler.messages()
    assert ack["To"] == "alice@customer.test" and ack["Auto-Submitted"] == "auto-replied"
    assert case_tag(interaction.id) in ack["Subject"] and ack["In-Reply-To"] == "<first@customer.test>"

    # The message stays on the server, flagged; polling again fetches nothing.
    imap = dovecot.client()
    imap.select_folder("INBOX")
    [(uid, data)] = imap.fetch(imap.search(["ALL"]), ["FLAGS"]).items()
    imap.logout()
    assert b"$DeskStored" in data[b"FLAGS"] and b"\\Seen" not in data[b"FLAGS"]
    [again] = poll_due_mailboxes(db_session, desk_config, secret=SECRET, force=True)
    assert again.fetched == 0

    # 2. The agent replies through the API; after the undo window it goes out over SMTP.
    login(client, supervisor)
    response = client.post(f"/api/email/interactions/{interaction.id}/replies",
                           json={"body": "We are sending a new parcel today."})
    assert response.status_code == 201, response.get_json()
    assert sink.handler.received[1:] == []  # still inside the undo window
    assert jobs.run_delayed() == 1
    reply = sink.handler.messages()[1]
    assert reply["To"] == "alice@customer.test"
    assert reply["In-Reply-To"] == "<first@customer.test>"
    assert "<first@customer.test>" in reply["References"]
    assert case_tag(interaction.id) in reply["Subject"]
    assert reply["Reply-To"].startswith(f"reply+c{interaction.id}-")
    assert "We are sending a new parcel today." in reply.get_content()
    assert "Auto-Submitted" not in reply

    # 3. The customer answers the reply from their mail client: same case, no second acknowledgement.
    dovecot.deliver(build_mail(message_id="<second@customer.test>", subject=f"Re: {reply['Subject']}",
                               in_reply_to=reply["Message-ID"].strip("<>"),
                               references=["first@customer.test", reply["Message-ID"].strip("<>")],
                               to=reply["Reply-To"], body="Thank you!"))
    [third] = poll_due_mailboxes(db_session, desk_config, secret=SECRET, force=True)
    assert third.stored == 1
    inbound = db_session.scalars(select(EmailMessage).where(EmailMessage.direction == "in")
                                 .order_by(EmailMessage.id)).all()
    assert [m.interaction_id for m in inbound] == [interaction.id, interaction.id]
    assert db_session.scalar(select(func.count()).select_from(Interaction)) == 1
    assert len(sink.handler.received) == 2  # the ack and the reply: nothing more


def test_uidvalidity_change_rereads_and_duplicates_are_stored_once(app, desk, jobs, db_session, dovecot, sink):
    _clear_folder(dovecot)
    desk_config = _wire(app, dovecot, sink)
    for n in range(3):
        dovecot.deliver(build_mail(message_id=f"<u{n}@customer.test>", sender=f"c{n}@customer.test"))
    [first] = poll_due_mailboxes(db_session, desk_config, secret=SECRET, force=True)
    assert (first.fetched, first.stored) == (3, 3)  # in batches of two

    state = db_session.scalar(select(MailboxPollState))
    state.uidvalidity = 1  # as if the server rebuilt the folder
    db_session.commit()
    [second] = poll_due_mailboxes(db_session, desk_config, secret=SECRET, force=True)
    assert second.uidvalidity_reset and (second.fetched, second.duplicates, second.stored) == (3, 3, 0)
    assert db_session.scalar(select(func.count()).select_from(Interaction)) == 3


def test_a_failing_mailbox_alerts_admins_once_and_again_on_recovery(app, desk, jobs, db_session, dovecot, sink):
    _clear_folder(dovecot)
    make_staff(db_session, role="admin", email="admin@desk.test", language="zh")
    db_session.commit()
    good = _wire(app, dovecot, sink)
    broken = _wire(app, dovecot, sink, imap_password="wrong")
    reports = [poll_due_mailboxes(db_session, broken, secret=SECRET, force=True)[0] for _ in range(4)]
    assert all(r.error for r in reports)
    assert [r.alert for r in reports] == [None, "failing", None, None]  # alert_after_failures = 2
    [alert] = sink.handler.messages()
    assert alert["To"] == "admin@desk.test" and "support" in alert["Subject"]
    assert "无法" in alert["Subject"]  # in the admin's language

    recovered = poll_due_mailboxes(db_session, good, secret=SECRET, force=True)[0]
    assert recovered.alert == "recovered" and recovered.error is None
    assert len(sink.handler.received) == 2
    state = db_session.scalar(select(MailboxPollState))
    assert (state.consecutive_failures, state.alerting) == (0, False)
