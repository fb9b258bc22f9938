"""Complaints from email, through the email channel's real ingest path: a new message matching a
``complaints.email_intake`` rule becomes a graded, acknowledged complaint on its case, with one reply to
the customer; replies and messages about an existing complaint never make a second one."""
from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from app.channels.email.models import EmailMessage
from app.complaints.config import EmailIntakeConfig
from app.complaints.email_rules import match_rule
from app.complaints.models import Complaint, ComplaintEvent, ComplaintNotice
from app.config import DeskConfig
from app.crm.models import Customer
from app.interactions.models import Interaction, InteractionEvent
from tests.email.conftest import build_mail, desk, ingest, outbox, set_email_config  # noqa: F401 (fixtures)
from tests.factories import make_customer, make_order

RULES = [
    {"name": "billing_complaint", "subject_keywords": ["complaint", "投诉"],
     "keywords": ["refund", "charged twice", "退款"], "category": "billing"},
    {"name": "delivery_complaint", "subject_keywords": ["complaint", "投诉"], "keywords": ["late", "快递", "延误"],
     "category": "delivery_delay"},
    {"name": "help_address", "addresses": ["help@desk.test"], "category": "other"},
    {"name": "complaint_words", "keywords": ["complaint", "compensation", "投诉", "赔偿"], "category": "other"},
]


@pytest.fixture()
def rules(app, desk):  # noqa: F811 - the email tests' desk fixture
    """The test desk with these intake rules (the email fixture restores the config afterwards)."""
    config = app.extensions["desk.config"]
    intake = EmailIntakeConfig.model_validate({"rules": RULES})
    app.extensions["desk.config"] = config.model_copy(update={
        "complaints": config.complaints.model_copy(update={"email_intake": intake, "notice_mailbox": "support"})})
    return app.extensions["desk.config"]


def complaints(db_session) -> list[Complaint]:
    db_session.expire_all()
    return list(db_session.scalars(select(Complaint).order_by(Complaint.id)))


def acks(db_session) -> list[EmailMessage]:
    return list(db_session.scalars(select(EmailMessage).where(EmailMessage.kind == "ack").order_by(EmailMessage.id)))


def desk_jobs(db_session):
    from flask import current_app

    return current_app.extensions["desk.jobs"]


def trail(db_session, complaint: Complaint) -> list[ComplaintEvent]:
    return list(db_session.scalars(select(ComplaintEvent).where(ComplaintEvent.complaint_id == complaint.id)
                                   .order_by(ComplaintEvent.id)))


def test_a_matching_email_becomes_a_complaint_acknowledged_once_in_the_thread(rules, ingest, db_session,  # noqa: F811
                                                                              outbox):  # noqa: F811
    customer = make_customer(db_session, email="alice@customer.test", name="Alice Wong")
    order = make_order(db_session, customer, number="ORD000777")
    db_session.commit()
    body = "I was charged twice for order ORD000777.\nPlease refund the second payment."
    result = ingest(build_mail(subject="Complaint about my bill", body=body))

    assert result.new_case and result.acknowledged
    [complaint] = complaints(db_session)
    interaction = db_session.get(Interaction, result.interaction_id)
    assert (complaint.channel, complaint.customer_id, complaint.interaction_id) == ("email", customer.id,
                                                                                    interaction.id)
    assert (complaint.category, complaint.order_id, complaint.language) == ("billing", order.id, "en")
    assert complaint.description == body
    assert (complaint.level, complaint.state) == ("P4", "acknowledged")
    intake = next(e for e in trail(db_session, complaint) if e.kind == "intake_rule")
    assert intake.note == ("email rule 'billing_complaint' matched: subject keyword 'complaint'; "
                           "keyword 'refund'; keyword 'charged twice'")
    assert intake.data["order_number"] == "ORD000777" and intake.data["interaction_id"] == interaction.id

    [ack] = acks(db_session)  # one answer to the customer's message: the complaint's acknowledgement
    [sent] = outbox.sent
    assert sent.recipients == ["alice@customer.test"] and ack.status == "sent"
    assert sent.message["Subject"] == f"We have received your complaint ({complaint.reference}) [#C-{interaction.id}]"
    text = sent.message.get_content()
    assert "Dear Alice Wong" in text and f"registered as {complaint.reference}" in text
    assert "final response by" in text
    inbound = db_session.scalar(select(EmailMessage).where(EmailMessage.direction == "in"))
    assert sent.message["In-Reply-To"] == f"<{inbound.message_id}>"
    [notice] = db_session.scalars(select(ComplaintNotice).where(ComplaintNotice.complaint_id == complaint.id))
    assert (notice.kind, notice.status, notice.address) == ("acknowledgement", "sent", "alice@customer.test")
    assert notice.data["email_message_id"] == ack.id
    assert [e.kind for e in trail(db_session, complaint)].count("notice_sent") == 1
    delayed = [(job.func.__name__, job.args) for job in desk_jobs(db_session).delayed]
    assert ("check_sla_job", (complaint.id,)) in delayed  # the first SLA check ran after commit, the next waits


def test_a_chinese_complaint_is_acknowledged_in_chinese(rules, ingest, db_session, outbox):  # noqa: F811
    make_customer(db_session, email="wang@customer.test", name="王芳", language="zh")
    db_session.commit()
    result = ingest(build_mail(sender="wang@customer.test", subject="投诉：快递延误", body="我的快递已经延误五天了。"))
    [complaint] = complaints(db_session)
    assert (complaint.category, complaint.language) == ("delivery_delay", "zh")
    assert complaint.interaction_id == result.interaction_id
    [sent] = outbox.sent
    assert sent.message["Subject"].startswith(f"我们已收到您的投诉（编号 {complaint.reference}）")
    assert "王芳，您好" in sent.message.get_content()
    event = next(e for e in trail(db_session, complaint) if e.kind == "intake_rule")
    assert event.data["rule"] == "delivery_complaint"
    assert ["keyword", "快递"] in event.data["evidence"] and ["keyword", "延误"] in event.data["evidence"]


def test_replies_in_the_thread_do_not_make_a_second_complaint(rules, ingest, db_session, outbox):  # noqa: F811
    make_customer(db_session, email="alice@customer.test")
    db_session.commit()
    first = ingest(build_mail(subject="Complaint: late again", body="The parcel is late."))
    [ack] = acks(db_session)
    reply = ingest(build_mail(subject="Re: Complaint: late again", body="Still late. I want compensation.",
                              in_reply_to=ack.message_id))
    assert reply.interaction_id == first.interaction_id and not reply.new_case
    assert len(complaints(db_session)) == 1
    assert len(outbox.sent) == 1  # a reply on a case is not acknowledged again


def test_a_new_email_quoting_a_complaint_reference_is_added_to_that_complaint(rules, ingest, db_session,  # noqa: F811
                                                                               outbox):  # noqa: F811
    make_customer(db_session, email="alice@customer.test")
    db_session.commit()
    ingest(build_mail(subject="Complaint", body="Refund please, it arrived broken."))
    [complaint] = complaints(db_session)
    again = ingest(build_mail(subject=f"About my complaint {complaint.reference}", body="Any news?"))
    assert again.new_case and len(complaints(db_session)) == 1
    [event] = [e for e in trail(db_session, complaint) if e.kind == "customer_email"]
    assert event.data == {"interaction_id": again.interaction_id, "rule": "complaint_words"}
    skipped = db_session.scalar(select(InteractionEvent).where(
        InteractionEvent.interaction_id == again.interaction_id, InteractionEvent.kind == "complaint_rule_skipped"))
    assert skipped.reason == f"names existing complaint {complaint.reference}"
    assert "We have received your complaint" not in outbox.sent[-1].message["Subject"]  # the generic case ack


def test_an_order_of_someone_else_is_not_linked(rules, ingest, db_session):  # noqa: F811
    make_customer(db_session, email="alice@customer.test")
    make_order(db_session, make_customer(db_session), number="ORD000999")
    db_session.commit()
    ingest(build_mail(subject="Complaint", body="Order ORD000999 never came; I want a refund."))
    [complaint] = complaints(db_session)
    assert complaint.order_id is None


def test_mail_to_a_complaints_address_from_a_stranger_makes_a_prospects_complaint(rules, ingest, db_session):  # noqa: F811
    result = ingest(build_mail(sender="new.person@elsewhere.test", to="help@desk.test", subject="Hello",
                               body="Your courier threw my parcel over the fence."))
    [complaint] = complaints(db_session)
    customer = db_session.get(Customer, complaint.customer_id)
    assert customer.is_prospect and [e.email for e in customer.emails] == ["new.person@elsewhere.test"]
    assert complaint.category == "other" and complaint.interaction_id == result.interaction_id
    event = next(e for e in trail(db_session, complaint) if e.kind == "intake_rule")
    assert event.note == "email rule 'help_address' matched: address 'help@desk.test'"


@pytest.mark.parametrize("mail", [
    {"subject": "Where is my order?", "body": "It has not arrived yet."},  # no rule matches
    {"subject": "Complaint", "body": "I am away", "headers": {"Auto-Submitted": "auto-replied"}},  # automatic
    {"subject": "complaints department", "body": "Please forward my CV."},  # 'complaints' is not 'complaint'
])
def test_mail_that_no_rule_takes_is_an_ordinary_case(rules, ingest, db_session, outbox, mail):  # noqa: F811
    make_customer(db_session, email="alice@customer.test")
    db_session.commit()
    result = ingest(build_mail(**mail))
    assert result.new_case and complaints(db_session) == []


def test_the_same_message_in_two_mailboxes_makes_one_complaint(rules, ingest, db_session):  # noqa: F811
    make_customer(db_session, email="alice@customer.test")
    db_session.commit()
    raw = build_mail(subject="Complaint", body="I want compensation.", message_id="<once@customer.test>",
                     to="support@desk.test, billing@desk.test")
    ingest(raw, "support")
    second = ingest(raw, "billing")
    assert second.new_case and len(complaints(db_session)) == 1
    skipped = db_session.scalar(select(InteractionEvent).where(
        InteractionEvent.interaction_id == second.interaction_id, InteractionEvent.kind == "complaint_rule_skipped"))
    assert skipped.reason == "this message already raised a complaint"


def test_without_a_case_acknowledgement_the_complaint_notice_goes_its_own_way(app, rules, ingest, db_session,  # noqa: F811
                                                                               outbox):  # noqa: F811
    set_email_config(app, autoreply={"enabled": False})
    app.extensions["desk.config"] = app.extensions["desk.config"].model_copy(update={"complaints": rules.complaints})
    make_customer(db_session, email="alice@customer.test", name="Alice Wong")
    db_session.commit()
    result = ingest(build_mail(subject="Complaint", body="I want compensation."))
    assert not result.acknowledged and acks(db_session) == []
    [complaint] = complaints(db_session)
    [notice] = db_session.scalars(select(ComplaintNotice).where(ComplaintNotice.complaint_id == complaint.id))
    assert notice.status == "sent" and "email_message_id" not in (notice.data or {})
    [sent] = outbox.sent
    assert sent.message["Subject"] == f"We have received your complaint ({complaint.reference})"


def test_a_p1_complaint_waits_for_its_call_and_the_case_gets_the_generic_ack(rules, ingest, db_session, outbox):  # noqa: F811
    make_customer(db_session, email="alice@customer.test")
    db_session.commit()
    result = ingest(build_mail(subject="Complaint", body="The heater exploded and burned my hand."))
    [complaint] = complaints(db_session)
    assert (complaint.level, complaint.state) == ("P1", "received")
    assert db_session.scalar(select(func.count(ComplaintNotice.id))) == 0
    [sent] = outbox.sent
    assert f"[#C-{result.interaction_id}]" in sent.message["Subject"]
    assert sent.message["Subject"].startswith("We have received your message")  # the generic case ack


def test_the_new_complaint_counts_in_the_case_priority(rules, ingest, db_session):  # noqa: F811
    make_customer(db_session, email="alice@customer.test")
    db_session.commit()
    result = ingest(build_mail(subject="Complaint", body="Third time asking: refund me or I go to the consumer council."))
    interaction = db_session.get(Interaction, result.interaction_id)
    [complaint] = complaints(db_session)
    assert complaint.level == "P3"
    assert any(r["code"] == "open_complaint" and "P3" in r["en"] for r in interaction.priority_reasons)


def test_a_batch_raises_the_complaint_and_acknowledges_it_once_beside_ordinary_mail(rules, db_session,  # noqa: F811
                                                                                     outbox):  # noqa: F811
    from app.channels.email.batch import RawMessage, ingest_many
    from tests.email.conftest import SECRET

    customer = make_customer(db_session, email="alice@customer.test", name="Alice Wong")
    make_customer(db_session, email="bob@customer.test")
    db_session.commit()
    raws = [build_mail(sender="bob@customer.test", subject="Question", body="Where is my parcel?"),
            build_mail(subject="Complaint about my bill", body="I was charged twice. Please refund me."),
            build_mail(sender="carol@customer.test", subject="Hello", body="Just saying hello.")]
    results = ingest_many(db_session, rules, "support", [RawMessage(raw) for raw in raws], source="imap",
                          secret=SECRET)

    assert [(r.status, r.new_case, r.acknowledged) for r in results] == [("stored", True, True)] * 3
    [complaint] = complaints(db_session)
    assert (complaint.customer_id, complaint.interaction_id) == (customer.id, results[1].interaction_id)
    [notice] = db_session.scalars(select(ComplaintNotice).where(ComplaintNotice.complaint_id == complaint.id))
    ack = next(a for a in acks(db_session) if a.interaction_id == results[1].interaction_id)
    assert notice.status == "sent" and notice.data["email_message_id"] == ack.id
    subjects = {m.recipients[0]: m.message["Subject"] for m in outbox.sent}
    assert subjects["alice@customer.test"].startswith(f"We have received your complaint ({complaint.reference})")
    assert subjects["bob@customer.test"].startswith("We have received your message")
    kinds = db_session.scalars(select(InteractionEvent.kind).where(
        InteractionEvent.interaction_id == results[1].interaction_id).order_by(InteractionEvent.id)).all()
    assert kinds[:4] == ["created", "complaint_raised", "transition", "email_acknowledgement"]


# ------------------------------------------------------------------------------------ the rules (pure)
@pytest.mark.parametrize("mailbox, to, subject, body, rule", [
    ("support", "support@desk.test", "Complaint", "you refund me now", "billing_complaint"),
    ("support", "support@desk.test", "COMPLAINT", "It came LATE", "delivery_complaint"),
    ("support", "support@desk.test", "投诉", "请退款", "billing_complaint"),
    ("support", "support@desk.test", "Question", "refund please", None),  # the subject must say complaint
    ("support", "help@desk.test", "Question", "refund please", "help_address"),
    ("support", "support@desk.test", "Question", "我要求赔偿", "complaint_words"),
    ("support", "support@desk.test", "Question", "No complaints here", None),
    ("support", "support@desk.test", "Lateness", "it was lateish", None),
])
def test_rules_match_in_order_on_every_condition(mailbox, to, subject, body, rule):
    config = EmailIntakeConfig.model_validate({"rules": RULES})
    found = match_rule(config, mailbox=mailbox, recipients=[to], subject=subject, body=body)
    assert (found.rule.name if found else None) == rule


def test_a_rule_can_be_limited_to_a_mailbox_and_the_intake_switched_off():
    config = EmailIntakeConfig.model_validate({"rules": [{"name": "b", "mailboxes": ["billing"], "category": "billing"}]})
    assert match_rule(config, mailbox="billing", recipients=[], subject="", body="").evidence == (
        ("mailbox", "billing"),)
    assert match_rule(config, mailbox="support", recipients=[], subject="", body="") is None
    off = config.model_copy(update={"enabled": False})
    assert match_rule(off, mailbox="billing", recipients=[], subject="", body="") is None


def _desk_raw() -> dict:
    import yaml

    from app.config import DEFAULT_CONFIG_PATH

    return yaml.safe_load(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))


@pytest.mark.parametrize("rules_yaml, message", [
    ([{"name": "x", "keywords": ["complaint"], "category": "weather"}],
     "email_intake.rules.0.category: unknown category 'weather'"),
    ([{"name": "x", "mailboxes": ["complaints"], "category": "other"}],
     "complaints.email_intake.rules.0.mailboxes: unknown mailbox 'complaints'"),
    ([{"name": "x", "category": "other"}], "rule 'x' needs at least one of mailboxes, addresses"),
    ([{"name": "x", "addresses": ["not-an-address"], "category": "other"}], "'not-an-address' is not an email"),
    ([{"name": "x", "keywords": ["a"], "category": "other"}, {"name": "x", "keywords": ["b"], "category": "other"}],
     "email_intake.rules.1.name: 'x' is used by another rule"),
    ([{"name": "x", "keywords": ["a"], "category": "other", "colour": "red"}], "colour"),
])
def test_bad_rules_stop_the_desk_naming_the_key(rules_yaml, message):
    raw = _desk_raw()
    raw["complaints"]["email_intake"]["rules"] = rules_yaml
    with pytest.raises(ValidationError) as caught:
        DeskConfig.model_validate(raw)
    assert message in str(caught.value)


def test_the_demo_rules_validate():
    config = DeskConfig.model_validate(_desk_raw())
    names = [rule.name for rule in config.complaints.email_intake.rules]
    assert names == ["billing_complaint", "delivery_complaint", "complaints_address", "complaint_words"]
    assert "complaints@desk.example" in config.email.mailbox("support").aliases
