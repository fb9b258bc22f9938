"""The demo IVR out of hours: the closed menu still takes a complaint -- registered, graded and
acknowledged, its reference read back -- and no agent is asked for; driven through Twilio's signed
webhooks with the desk's own config.yaml, in English and in Mandarin."""
from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from app.channels import voice
from app.channels.telephony import RecordingTelephony
from app.complaints.models import Complaint, ComplaintNotice
from app.interactions.models import Interaction
from app.interactions.states import State
from ivr.engine import spoken_date
from ivr.validation import check_ivr_against_desk, graph_problems
from tests.factories import make_customer
from tests.ivr.helpers import CLOSED_AT, demo_config
from tests.ivr.phone import BASE, Caller

REC_URL = "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE" + "d" * 32


@pytest.fixture()
def phone(app, client, monkeypatch):
    monkeypatch.setattr(voice, "utcnow", lambda: CLOSED_AT)  # Thursday 22:00 in Shanghai: the desk is closed
    monkeypatch.setitem(app.extensions, "desk.telephony", RecordingTelephony())
    return Caller(client)


def _complaints(db_session) -> list[Complaint]:
    db_session.expire_all()
    return list(db_session.scalars(select(Complaint).order_by(Complaint.id)))


def _interaction(db_session, caller: Caller) -> Interaction:
    db_session.expire_all()
    return db_session.scalar(select(Interaction).where(Interaction.external_ref == caller.call_sid))


def _record(caller: Caller, reply):
    return caller.post(reply.first("Record").get("action"),
                       {"RecordingSid": "RE" + "d" * 32, "RecordingUrl": REC_URL, "RecordingDuration": "30"})


def test_the_demo_graph_still_validates_and_the_closed_menu_reaches_the_complaint_node():
    config = demo_config()
    assert graph_problems(config.ivr) == []  # no unreachable nodes, unknown targets or silent loops
    check_ivr_against_desk(config)  # queues, calendars and complaint categories exist
    closed = config.ivr.nodes["closed_menu"]
    assert closed.options["4"].goto == "closed_complaint"
    assert "press 4" in closed.prompt.text("en") and "投诉请按4" in closed.prompt.text("zh")
    node = config.ivr.nodes["closed_complaint"]
    assert node.type == "complaint" and node.next == "goodbye"
    assert node.fallback == "closed_voicemail"  # never an agent queue
    assert "colleague" not in node.unidentified.text("en") and "colleague" not in node.not_recorded.text("en")


def test_a_known_caller_makes_a_complaint_while_the_desk_is_closed(app, phone, db_session):
    customer = make_customer(db_session, phone="+8613800138000", language="en", name="Ada Lin")
    db_session.commit()
    menu = phone.dial()  # the caller's language is on record: straight to the hours check, then the closed menu
    assert "To make a complaint, press 4." in " ".join(menu.said)
    categories = phone.press("4")
    assert categories.first("Gather").get("action").startswith(f"{BASE}/voice/gather")
    assert "If it is about a product, press 1." in " ".join(categories.said)
    reply = phone.press("2")  # a delivery
    assert reply.verbs == ["Say", "Record", "Redirect"]
    assert reply.said == ["After the tone, please tell us what happened and what you would like us to do, "
                          "then press the hash key."]

    answered = _record(phone, reply)
    assert answered.status == 200
    [complaint] = _complaints(db_session)
    spelled = " ".join(complaint.reference.split("-")[1])
    due = spoken_date(complaint.resolve_due_at.astimezone(ZoneInfo("Asia/Shanghai")).date(), "en")
    assert answered.said[0] == (f"Thank you. Your complaint reference is C M P, {spelled}. "
                                f"We will give you our final response by {due}.")
    assert answered.verbs[-1] == "Hangup"  # recorded, acknowledged, goodbye: no agent is needed
    assert (complaint.channel, complaint.customer_id, complaint.category) == ("ivr", customer.id, "delivery_delay")
    assert complaint.state == "acknowledged" and complaint.acknowledged_at == CLOSED_AT
    notice = db_session.scalar(select(ComplaintNotice).where(ComplaintNotice.complaint_id == complaint.id))
    assert (notice.kind, notice.language) == ("acknowledgement", "en")
    interaction = _interaction(db_session, phone)
    assert complaint.interaction_id == interaction.id
    assert interaction.state != State.QUEUED and interaction.queue in (None, "")


def test_a_mandarin_caller_hears_the_closed_complaint_option_in_chinese(phone, db_session):
    make_customer(db_session, phone="+8613800138000", language="zh", name="王小红")
    db_session.commit()
    menu = phone.dial()
    assert "投诉请按4。" in " ".join(menu.said)
    assert all(say.get("language") == "cmn-CN" for say in menu.root.iter("Say"))
    reply = phone.press("4")
    assert "产品问题请按1。" in " ".join(reply.said)
    reply = phone.press("9")  # anything else
    answered = _record(phone, reply)
    [complaint] = _complaints(db_session)
    assert answered.said[0].startswith("谢谢。您的投诉编号是C M P")
    assert (complaint.category, complaint.language, complaint.state) == ("other", "zh", "acknowledged")


def test_a_withheld_number_out_of_hours_is_offered_a_voicemail_not_a_queue(phone, db_session):
    phone.from_ = "anonymous"
    phone.dial()  # no caller language: the language question first
    phone.press("1")
    reply = phone.press("4")
    reply = phone.press("1")
    assert reply.said[0].startswith("To register a complaint we need to know who you are")
    assert "leave it as a message" in reply.said[0] and not any("colleague" in said for said in reply.said)
    assert reply.first("Record") is not None and "/voice/voicemail" in reply.first("Record").get("action")
    interaction = _interaction(db_session, phone)
    assert interaction.state != State.QUEUED and _complaints(db_session) == []


def test_nothing_recorded_out_of_hours_offers_a_voicemail_in_the_closed_wording(phone, db_session):
    make_customer(db_session, phone="+8613800138000", language="en", name="Ada Lin")
    db_session.commit()
    phone.dial()
    phone.press("4")
    phone.press("2")
    answered = phone.follow()  # Twilio reads on past <Record> when nothing was recorded
    assert answered.said[0].startswith("Sorry, we did not get a message. Please try once more as a voicemail")
    assert not any("colleague" in said for said in answered.said)
    assert answered.first("Record") is not None and "/voice/voicemail" in answered.first("Record").get("action")
    assert _complaints(db_session) == [] and _interaction(db_session, phone).state != State.QUEUED
