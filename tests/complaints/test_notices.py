"""The complaint_notices outbox: every notice goes out once, on the recipient's channel."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.channels.email.mailer import PermanentFailure, RecordingMailer, TemporaryFailure
from app.channels.email.models import UndeliverableAddress
from app.complaints import flows, notices, service
from app.complaints.config import check_notice_mailbox
from app.complaints.models import ComplaintEvent, ComplaintNotice
from app.db import utcnow
from tests.complaints.test_flows import new_complaint, walk_to_investigating
from tests.factories import make_customer


@pytest.fixture()
def outbox(app):
    """The email channel's recording transport (config.yaml: smtp.transport recording), emptied."""
    app.extensions["desk.email.outbox"] = RecordingMailer()
    return app.extensions["desk.email.outbox"]


def _notice(db_session, **where) -> ComplaintNotice:
    db_session.expire_all()
    query = select(ComplaintNotice)
    for key, value in where.items():
        query = query.where(getattr(ComplaintNotice, key) == value)
    return db_session.scalar(query.order_by(ComplaintNotice.id))


class FlakyMailer:
    """Fails with the given errors first, then records."""

    def __init__(self, *errors):
        self.errors = list(errors)
        self.sent = []

    def send(self, message, *, sender, recipients):
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append((message, recipients))


def test_acknowledgement_is_emailed_once_in_the_customers_language(db_session, people, outbox):
    customer = make_customer(db_session, language="zh", email="li@example.cn")
    complaint = new_complaint(db_session, people, customer=customer, language="zh", scores={"harm": 1})
    [mail] = outbox.sent  # the inline job ran after the commit
    assert mail.recipients == ["li@example.cn"] and mail.sender == "support@desk.example"
    assert complaint.reference in mail.message["Subject"] and "最终答复" in mail.message.get_content()
    assert mail.message["Message-ID"].startswith("<complaint-notice-")
    assert mail.message["Auto-Submitted"] == "auto-generated" and mail.message["Content-Language"] == "zh-CN"
    notice = _notice(db_session, kind="acknowledgement")
    assert notice.status == "sent" and notice.sent_at is not None and notice.address == "li@example.cn"
    recorded = db_session.scalar(select(ComplaintEvent).where(ComplaintEvent.kind == "notice_sent"))
    assert recorded.data == {"notice_id": notice.id, "kind": "acknowledgement", "channel": "email"}
    # a duplicated or retried job finds it sent and sends nothing
    assert notices.deliver(db_session, flows._config(), notice.id, mailer=outbox) == "skipped"
    assert notices.send_notice_job(notice.id) == "skipped"
    assert len(outbox.sent) == 1


def test_status_changes_and_compensation_reach_the_customer(db_session, people, outbox):
    customer = make_customer(db_session, email="jane@example.com")
    complaint = new_complaint(db_session, people, customer=customer, scores={"harm": 1})
    walk_to_investigating(db_session, people, complaint)
    from app.complaints.compensation import FixedClaim

    flows.propose(db_session, complaint.id, actor_id=people["agent"].id, include_goodwill=False,
                  fixed=[FixedClaim("delivery_delay_per_day", days=2)])  # approved, issued by the inline job
    flows.resolve(db_session, complaint.id, actor_id=people["agent"].id, note="voucher sent")
    flows.reopen(db_session, complaint.id, actor_id=people["agent"].id, note="voucher did not work")
    subjects = [m.message["Subject"] for m in outbox.sent]
    assert subjects == [f"We have received your complaint ({complaint.reference})",
                        f"Your complaint {complaint.reference} is now being investigated",
                        f"Compensation for your complaint {complaint.reference}",
                        f"Your complaint {complaint.reference} is resolved",
                        f"Your complaint {complaint.reference} has been reopened and we are looking into it again"]
    assert "V" in outbox.sent[2].message.get_content()  # the voucher code is in the customer's email only
    assert all(n.status == "sent" for n in notices.notices_of(db_session, complaint.id))


def test_temporary_failure_is_retried_with_backoff_then_sent(db_session, people, jobs):
    complaint = new_complaint(db_session, people, scores={"harm": 1})
    notice = _notice(db_session, kind="acknowledgement")
    config = flows._config()
    mailer = FlakyMailer(TemporaryFailure("421 busy", 421))
    now = utcnow()
    assert notices.deliver(db_session, config, notice.id, mailer=mailer, now=now) == "retry"
    notice = _notice(db_session, id=notice.id)
    assert notice.status == "pending" and notice.attempts == 1 and "421" in notice.last_error
    assert notice.send_after == now + timedelta(seconds=config.email.outbound.backoff_s[0])
    assert ("send_notice_job", (notice.id,), "email", timedelta(seconds=30)) in [c[:4] for c in jobs.calls]
    assert notices.deliver(db_session, config, notice.id, mailer=mailer, now=now) == "early"
    later = now + timedelta(seconds=31)
    assert notices.deliver(db_session, config, notice.id, mailer=mailer, now=later) == "sent"
    notice = _notice(db_session, id=notice.id)
    assert notice.status == "sent" and notice.attempts == 2 and notice.last_error is None
    assert len(mailer.sent) == 1 and complaint.reference in mailer.sent[0][0]["Subject"]


def test_gives_up_after_the_last_attempt(db_session, people, jobs):
    new_complaint(db_session, people, scores={"harm": 1})
    notice = _notice(db_session, kind="acknowledgement")
    config = flows._config()
    attempts = config.email.outbound.max_attempts
    mailer = FlakyMailer(*[TemporaryFailure("timeout") for _ in range(attempts)])
    at = utcnow()
    outcomes = []
    for _ in range(attempts):
        outcomes.append(notices.deliver(db_session, config, notice.id, mailer=mailer, now=at))
        at += timedelta(hours=2)
    assert outcomes == ["retry"] * (attempts - 1) + ["failed"]
    assert _notice(db_session, id=notice.id).status == "failed" and not mailer.sent


def test_permanent_refusal_marks_the_address_undeliverable(db_session, people, jobs):
    customer = make_customer(db_session, email="gone@example.com")
    complaint = new_complaint(db_session, people, customer=customer, scores={"harm": 1})
    notice = _notice(db_session, kind="acknowledgement")
    mailer = FlakyMailer(PermanentFailure("550 no such user", 550))
    assert notices.deliver(db_session, flows._config(), notice.id, mailer=mailer) == "failed"
    assert db_session.scalar(select(UndeliverableAddress.address)) == "gone@example.com"
    walk_to_investigating(db_session, people, complaint)
    update = _notice(db_session, kind="status_investigating")
    assert notices.deliver(db_session, flows._config(), update.id, mailer=mailer) == "failed"
    assert "undeliverable" in _notice(db_session, id=update.id).last_error and not mailer.sent


def test_a_complaints_messages_reach_the_customer_in_the_order_they_were_written(db_session, people, jobs):
    complaint = new_complaint(db_session, people, scores={"harm": 1})
    walk_to_investigating(db_session, people, complaint)
    ack, update = _notice(db_session, kind="acknowledgement"), _notice(db_session, kind="status_investigating")
    config, mailer = flows._config(), RecordingMailer()
    # the update's job runs first (jobs side by side): it waits for the acknowledgement
    assert notices.deliver(db_session, config, update.id, mailer=mailer) == "waiting"
    assert ("send_notice_job", (update.id,), "email", notices.IN_ORDER_WAIT) in [c[:4] for c in jobs.calls]
    assert _notice(db_session, id=update.id).status == "pending" and not mailer.sent
    assert notices.deliver(db_session, config, ack.id, mailer=mailer) == "sent"
    assert notices.deliver(db_session, config, update.id, mailer=mailer) == "sent"
    assert [m.message["Subject"] for m in mailer.sent] == [
        _notice(db_session, id=ack.id).subject, _notice(db_session, id=update.id).subject]


def test_a_twin_job_racing_the_send_does_not_send_again(db_session, people, jobs, app):
    from sqlalchemy.orm import Session as SASession

    from app.extensions import db

    new_complaint(db_session, people, scores={"harm": 1})
    notice_id = _notice(db_session, kind="acknowledgement").id
    config = flows._config()
    twin_outcomes = []

    class TwinDuringSend(RecordingMailer):
        def send(self, message, *, sender, recipients):
            with SASession(db.engine) as other:  # a second worker picks up the same notice mid-send
                twin_outcomes.append(notices.deliver(other, config, notice_id, mailer=self))
            super().send(message, sender=sender, recipients=recipients)

    mailer = TwinDuringSend()
    assert notices.deliver(db_session, config, notice_id, mailer=mailer) == "sent"
    assert twin_outcomes == ["skipped"] and len(mailer.sent) == 1


def test_sla_alerts_go_to_the_console_and_by_email(db_session, people, outbox, events):
    received = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
    complaint = new_complaint(db_session, people, scores={"harm": 1}, at=received)
    flows.check_sla(db_session, complaint.id, now=complaint.resolve_due_at)
    alerts = events.named("alert.complaint_sla")
    staff_ids = {people[k].id for k in people}
    assert {a["agent_id"] for a in alerts} == staff_ids  # owner (the agent) and every supervisor and admin
    assert {a["point"] for a in alerts} == {"50%", "80%", "breach"} and len(alerts) == 3 * len(staff_ids)
    assert all(a["complaint_id"] == complaint.id and a["owner_id"] == people["agent"].id
               and a["reference"] == complaint.reference and a["clock"] == "resolve" for a in alerts)
    staff_mail = [m for m in outbox.sent if m.recipients[0] in {p.email for p in people.values()}]
    assert len(staff_mail) == 3 * len(staff_ids)
    assert any("is overdue" in m.message["Subject"] for m in staff_mail)
    db_session.expire_all()
    staff_notices = db_session.scalars(select(ComplaintNotice).where(ComplaintNotice.recipient_kind == "staff"))
    assert {n.status for n in staff_notices} == {"sent"}
    # staff alerts are in the trail as the alerts themselves, not once more per email
    kinds = [e.kind for e in service.audit_trail(db_session, complaint.id)]
    assert kinds.count("sla_alert") == 3 and kinds.count("notice_sent") == 1  # the acknowledgement only


def test_customer_without_email_is_told_in_the_portal(db_session, people, outbox, events):
    customer = make_customer(db_session, phone="+8613800000002")
    complaint = new_complaint(db_session, people, customer=customer, scores={"harm": 1})
    notice = _notice(db_session, kind="acknowledgement")
    assert notice.channel == "portal" and notice.status == "sent" and not outbox.sent
    [posted] = events.named("portal.complaint_notice")
    assert posted == {"notice_id": notice.id, "complaint_id": complaint.id, "customer_id": customer.id,
                      "kind": "acknowledgement"}
    assert [n.id for n in notices.customer_notices(db_session, customer.id)] == [notice.id]
    assert notices.customer_notices(db_session, customer.id, complaint_id=complaint.id + 1) == []


@pytest.mark.parametrize("change, error", [
    ({"channel": "sms"}, "no transport for channel 'sms'"),
    ({"recipient_id": 0}, "no email address"),
])
def test_undeliverable_notices_fail_with_the_reason(db_session, people, jobs, change, error):
    new_complaint(db_session, people, scores={"harm": 1})
    notice = _notice(db_session, kind="acknowledgement")
    for key, value in change.items():
        setattr(notice, key, value)
    db_session.commit()
    assert notices.deliver(db_session, flows._config(), notice.id, mailer=RecordingMailer()) == "failed"
    assert error in _notice(db_session, id=notice.id).last_error


def test_no_mailbox_configured_fails_clearly(db_session, people, jobs, desk_config):
    new_complaint(db_session, people, scores={"harm": 1})
    notice = _notice(db_session, kind="acknowledgement")
    bare = desk_config.model_copy(update={"email": desk_config.email.model_copy(update={"mailboxes": []})})
    assert notices.deliver(db_session, bare, notice.id, mailer=RecordingMailer()) == "failed"
    assert "no email mailbox" in _notice(db_session, id=notice.id).last_error
    named = desk_config.model_copy(update={
        "complaints": desk_config.complaints.model_copy(update={"notice_mailbox": "billing"})})
    notice.status = "pending"
    db_session.commit()
    mailer = RecordingMailer()
    assert notices.deliver(db_session, named, notice.id, mailer=mailer) == "sent"
    assert mailer.sent[0].sender == "billing@desk.example"


def test_notice_mailbox_must_exist(desk_config):
    check_notice_mailbox(desk_config)
    wrong = desk_config.model_copy(update={
        "complaints": desk_config.complaints.model_copy(update={"notice_mailbox": "nowhere"})})
    with pytest.raises(ValueError, match="complaints.notice_mailbox"):
        check_notice_mailbox(wrong)


def test_sweep_releases_stuck_sends_and_requeues_lost_jobs(db_session, people, jobs):
    new_complaint(db_session, people, scores={"harm": 1})
    notice = _notice(db_session, kind="acknowledgement")
    now = utcnow()
    assert notices.requeue_stale(db_session, now=now) == 0  # just written: its own job is on its way
    notice.status, notice.claimed_at = "sending", now - timedelta(minutes=30)
    db_session.commit()
    jobs.calls.clear()
    assert notices.requeue_stale(db_session, now=now + timedelta(minutes=5)) == 1
    assert _notice(db_session, id=notice.id).status == "pending"
    assert [c[:2] for c in jobs.calls] == [("send_notice_job", (notice.id,))]
    notice = _notice(db_session, id=notice.id)
    notice.send_after = now + timedelta(hours=1)  # waiting for a retry: not the sweep's business
    db_session.commit()
    assert notices.requeue_stale(db_session, now=now + timedelta(minutes=5)) == 0


def test_periodic_job_sweeps_alerts_and_notices(db_session, people, jobs):
    from app.complaints.jobs import sweep_sla_job

    new_complaint(db_session, people, scores={"harm": 1})
    assert sweep_sla_job() == 0


def test_listener_ignores_other_events(jobs):
    notices.on_event("complaint.state", {"id": 1})
    notices.on_event("complaint.notice", {"complaint_id": 1})  # an event from before notices had ids
    assert jobs.calls == []


@pytest.mark.parametrize("language, state, expected", [
    ("en", "investigating", "is now being investigated"),
    ("en", "reopened", "has been reopened"),
    ("zh", "investigating", "正在调查中"),
    ("zh", "reopened", "已重新打开"),
])
def test_status_update_text(language, state, expected):
    from app.complaints.messages import status_update

    subject, body = status_update(language, name="N", reference="CMP-100001", state=state, resolve_by="2026-12-01")
    assert expected in subject and "CMP-100001" in body and "2026-12-01" in body
