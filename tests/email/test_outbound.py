"""Outbound: the undo window, retries with backoff over real SMTP, permanent failures, bounces."""
from __future__ import annotations

from datetime import timedelta, UTC

import pytest
from sqlalchemy import select

from app.channels.email import outbound
from app.channels.email.mailer import PermanentFailure, RecordingMailer, SmtpMailer, TemporaryFailure
from app.channels.email.models import EmailMessage, UndeliverableAddress
from app.interactions.models import Interaction, InteractionEvent
from tests.email.conftest import SECRET, build_mail, set_email_config
from tests.email.servers import SmtpSink, free_port
from tests.email.test_rules import _dsn


@pytest.fixture()
def case(ingest, db_session, outbox):
    result = ingest(build_mail(message_id="<q1@customer.test>", sender="Alice <alice@customer.test>"))
    outbox.sent.clear()
    return db_session.get(Interaction, result.interaction_id)


def _reply(db_session, desk, case, body="Here is the answer.", **kwargs):
    message = outbound.schedule_reply(db_session, desk, case.id, body=body, staff_id=None, agent_name="Sam Lee",
                                      secret=SECRET, **kwargs)
    db_session.commit()
    return message


def test_a_reply_waits_for_the_undo_window_and_then_goes(db_session, desk, case, jobs, outbox):
    message = _reply(db_session, desk, case)
    assert message.status == "scheduled" and outbox.sent == []
    [job] = jobs.delayed
    assert job.delay == timedelta(seconds=10) and job.args == (message.id,)
    jobs.run_delayed()
    db_session.refresh(message)
    assert message.status == "sent" and message.attempts == 1
    [sent] = outbox.sent
    mime = sent.message
    assert mime["In-Reply-To"] == "<q1@customer.test>" and mime["References"] == "<q1@customer.test>"
    assert f"[#C-{case.id}]" in mime["Subject"] and mime["Subject"].startswith("Re: Help please")
    assert "Here is the answer." in mime.get_content() and "Sam Lee" in mime.get_content()
    assert mime["Message-ID"] == f"<{message.message_id}>"


def test_a_job_that_runs_early_waits_for_the_rest_of_the_window(db_session, desk, case, jobs, outbox):
    message = _reply(db_session, desk, case)
    jobs.run_delayed(after_s=3)
    assert outbox.sent == [] and len(jobs.delayed) == 1
    jobs.run_delayed()
    assert len(outbox.sent) == 1 and db_session.get(EmailMessage, message.id).status == "sent"


def test_cancel_inside_the_window_stops_the_send(db_session, desk, case, jobs, outbox):
    message = _reply(db_session, desk, case)
    outbound.cancel_outbound(db_session, message.id, staff_id=None)
    db_session.commit()
    jobs.run_delayed()
    assert outbox.sent == [] and db_session.get(EmailMessage, message.id).status == "cancelled"
    with pytest.raises(outbound.TooLateToCancel):
        outbound.cancel_outbound(db_session, message.id, staff_id=None)


def test_cancel_after_the_window_is_refused(db_session, desk, case, jobs):
    message = _reply(db_session, desk, case)
    jobs.advance(11)
    with pytest.raises(outbound.TooLateToCancel):
        outbound.cancel_outbound(db_session, message.id, staff_id=None)


def test_the_reply_goes_to_reply_to_and_cc(db_session, desk, ingest, jobs, outbox):
    result = ingest(build_mail(headers={"Reply-To": "alice.work@customer.test"}))
    outbox.sent.clear()
    message = _reply(db_session, desk, db_session.get(Interaction, result.interaction_id), cc=["Boss@customer.test"])
    jobs.run_delayed()
    assert outbox.sent[0].recipients == ["alice.work@customer.test", "boss@customer.test"]
    assert message.cc == ["boss@customer.test"]


def test_temporary_smtp_failures_are_retried_with_backoff_then_succeed(app, db_session, desk, case, jobs):
    with SmtpSink() as sink:
        desk = set_email_config(app, smtp={"transport": "smtp", "host": "127.0.0.1", "port": sink.port,
                                           "security": "none"})
        sink.handler.fail_data = ["451 4.3.0 Try again later"]
        message = _reply(db_session, desk, case)
        jobs.run_delayed()
        db_session.refresh(message)
        assert (message.status, message.attempts) == ("scheduled", 1) and "451" in message.last_error
        [job] = jobs.delayed
        assert job.delay == timedelta(seconds=5)  # backoff_s[0]
        jobs.run_delayed()
        db_session.refresh(message)
        assert (message.status, message.attempts) == ("sent", 2)
        assert len(sink.handler.received) == 1


def test_retries_stop_after_max_attempts(app, db_session, desk, case, jobs):
    desk = set_email_config(app, smtp={"transport": "smtp", "host": "127.0.0.1", "port": free_port(),
                                       "security": "none", "timeout_s": 2})
    message = _reply(db_session, desk, case)
    for _ in range(3):
        jobs.run_delayed()
    db_session.refresh(message)
    assert (message.status, message.attempts) == ("failed", 3) and jobs.delayed == []
    kinds = db_session.scalars(select(InteractionEvent.kind).where(InteractionEvent.interaction_id == case.id)).all()
    assert "email_send_failed" in kinds


def test_a_permanent_refusal_fails_at_once_and_marks_the_address(app, db_session, desk, case, jobs):
    with SmtpSink() as sink:
        desk = set_email_config(app, smtp={"transport": "smtp", "host": "127.0.0.1", "port": sink.port,
                                           "security": "none"})
        sink.handler.refuse_rcpt = "550 5.1.1 No such user"
        message = _reply(db_session, desk, case)
        jobs.run_delayed()
    db_session.refresh(message)
    assert (message.status, message.attempts) == ("failed", 1)
    assert db_session.scalar(select(UndeliverableAddress.address)) == "alice@customer.test"
    with pytest.raises(outbound.AddressUndeliverable):
        _reply(db_session, desk, case)
    db_session.rollback()
    assert outbound.clear_undeliverable(db_session, "alice@customer.test")
    assert not outbound.clear_undeliverable(db_session, "alice@customer.test")


def test_a_bounce_is_matched_to_the_case_and_marks_the_address(db_session, desk, case, ingest, jobs, outbox):
    message = _reply(db_session, desk, case)
    jobs.run_delayed()
    result = ingest(_dsn(original_id=message.message_id))
    assert result.status == "stored" and result.interaction_id == case.id and not result.acknowledged
    db_session.refresh(message)
    assert message.status == "bounced" and message.details["bounce"]["status"] == "5.1.1"
    bounce = db_session.scalar(select(EmailMessage).where(EmailMessage.kind == "bounce"))
    assert bounce.interaction_id == case.id
    assert db_session.scalar(select(UndeliverableAddress.address)) == "gone@customer.test"
    assert len(outbox.sent) == 1  # nobody answered the bounce


def test_a_temporary_bounce_does_not_mark_the_address(db_session, desk, case, ingest, jobs):
    message = _reply(db_session, desk, case)
    jobs.run_delayed()
    ingest(_dsn(original_id=message.message_id, status="4.4.1"))
    assert db_session.scalar(select(UndeliverableAddress)) is None


def test_a_bounce_for_mail_we_never_sent_is_quarantined(ingest, db_session, outbox):
    result = ingest(_dsn(original_id="someone-else@spam.test"))
    assert result.status == "quarantined" and result.reason == "unmatched_bounce"
    assert outbox.sent == []


def test_an_acknowledgement_is_not_sent_to_an_undeliverable_address(ingest, db_session, outbox):
    outbound.mark_undeliverable(db_session, "alice@customer.test", "5.1.1", "gone", None)
    db_session.commit()
    result = ingest(build_mail())
    assert result.new_case and not result.acknowledged and outbox.sent == []


def test_a_message_marked_undeliverable_while_waiting_is_not_sent(db_session, desk, case, jobs, outbox):
    _reply(db_session, desk, case)
    outbound.mark_undeliverable(db_session, "alice@customer.test", "5.1.1", "gone", None)
    db_session.commit()
    jobs.run_delayed()
    assert outbox.sent == []


def test_the_sweeper_requeues_lost_jobs_and_stuck_sends(db_session, desk, case, jobs, outbox):
    message = _reply(db_session, desk, case)
    jobs.delayed.clear()  # Redis lost the job
    jobs.advance(30)
    assert outbound.requeue_stale_outbound(db_session) == 0  # not overdue enough to be called lost
    jobs.advance(90)
    assert outbound.requeue_stale_outbound(db_session) == 1
    assert db_session.get(EmailMessage, message.id).status == "sent"
    stuck = _reply(db_session, desk, case, body="second")
    jobs.delayed.clear()
    stuck.status = "sending"  # a worker died mid-send
    db_session.commit()
    jobs.advance(3600)
    assert outbound.requeue_stale_outbound(db_session) == 1
    assert db_session.get(EmailMessage, stuck.id).status == "sent"


def test_deliver_skips_what_is_not_scheduled(db_session, desk, case):
    message = _reply(db_session, desk, case)
    message.status = "cancelled"
    db_session.commit()
    assert outbound.deliver(db_session, desk.email, message.id, RecordingMailer(), secret=SECRET) == "skipped"
    assert outbound.deliver(db_session, desk.email, 999_999, RecordingMailer(), secret=SECRET) == "skipped"


def test_a_reply_needs_an_email_thread(db_session, desk):
    with pytest.raises(LookupError):
        outbound.schedule_reply(db_session, desk, 12345, body="x", staff_id=None, agent_name="", secret=SECRET)


def test_smtp_auth_and_classification(app):
    from app.channels.email.config import SmtpSettings

    with SmtpSink(username="desk", password="right") as sink:
        mime = outbound.MimeMessage()
        mime["From"], mime["To"], mime["Subject"] = "a@desk.test", "b@x.test", "s"
        mime.set_content("x")
        good = SmtpMailer(SmtpSettings(host="127.0.0.1", port=sink.port, security="none", username="desk",
                                       password={"value": "right"}))
        good.send(mime, sender="a@desk.test", recipients=["b@x.test"])
        assert len(sink.handler.received) == 1
        bad = SmtpMailer(SmtpSettings(host="127.0.0.1", port=sink.port, security="none", username="desk",
                                      password={"value": "wrong"}))
        with pytest.raises(TemporaryFailure):
            bad.send(mime, sender="a@desk.test", recipients=["b@x.test"])
        sink.handler.fail_data = ["554 5.7.1 Spam"]
        with pytest.raises(PermanentFailure) as info:
            good.send(mime, sender="a@desk.test", recipients=["b@x.test"])
        assert info.value.code == 554
        sink.handler.refuse_rcpt = "450 4.2.0 Mailbox busy"
        with pytest.raises(TemporaryFailure):
            good.send(mime, sender="a@desk.test", recipients=["b@x.test"])


def test_the_acknowledgement_promises_a_reply_time_from_the_queue_sla(ingest, db_session, outbox):
    ingest(build_mail(subject="Invoice question"))  # billing queue: reply_within_h 8 on the default calendar
    body = outbox.sent[0].message.get_content()
    assert "Asia/Shanghai" in body or "UTC" in body


def test_expected_reply_uses_business_hours(desk):
    from datetime import datetime

    friday_evening = datetime(2026, 6, 5, 12, 0, tzinfo=UTC)  # 20:00 in Shanghai, after closing
    due = outbound.expected_reply_at(desk, "billing", friday_evening)
    assert due > friday_evening + timedelta(hours=8)  # the night and Sunday do not count
