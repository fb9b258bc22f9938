"""A complaint made in the IVR, through Twilio's signed webhooks: category by key, description recorded,
the complaint registered, graded and acknowledged, its reference read back; retries make one complaint."""
from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from app.channels import voice
from app.channels.telephony import RecordingTelephony
from app.complaints.models import Complaint, ComplaintEvent, ComplaintNotice
from app.crm.models import Customer, CustomerPhone
from app.interactions.models import Interaction, InteractionEvent
from app.interactions.states import State
from ivr.engine import spoken_date
from ivr.models import VoiceWebhookReceipt
from tests.factories import make_customer
from tests.ivr.helpers import OPEN_AT
from tests.ivr.phone import BASE, Caller, new_call_sid

REC_SID = "RE" + "a" * 32
REC_URL = "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/" + REC_SID


@pytest.fixture()
def clock(monkeypatch):
    now = {"at": OPEN_AT}
    monkeypatch.setattr(voice, "utcnow", lambda: now["at"])
    return now


@pytest.fixture()
def phone(app, client, clock, monkeypatch):
    monkeypatch.setitem(app.extensions, "desk.telephony", RecordingTelephony())
    return Caller(client)


def complaints(db_session) -> list[Complaint]:
    db_session.expire_all()
    return list(db_session.scalars(select(Complaint).order_by(Complaint.id)))


def interaction_of(db_session, caller: Caller) -> Interaction:
    db_session.expire_all()
    return db_session.scalar(select(Interaction).where(Interaction.external_ref == caller.call_sid))


def facts(db_session, interaction: Interaction, kind: str) -> list[InteractionEvent]:
    return list(db_session.scalars(select(InteractionEvent).where(
        InteractionEvent.interaction_id == interaction.id, InteractionEvent.kind == kind)))


def to_recording(caller: Caller, *menu_keys: str, category_key: str = "1"):
    """Dial, walk the menu with ``menu_keys`` to the complaint node, choose a category; the Record reply."""
    reply = caller.dial()
    for key in menu_keys:
        reply = caller.press(key)
    assert reply.first("Gather").get("action").startswith(f"{BASE}/voice/gather")
    return caller.press(category_key)


def record(caller: Caller, reply, **extra: str):
    params = {"RecordingSid": REC_SID, "RecordingUrl": REC_URL, "RecordingDuration": "21", **extra}
    return caller.post(reply.first("Record").get("action"), params)


def test_a_known_caller_records_a_complaint_and_hears_its_reference(app, phone, db_session):
    customer = make_customer(db_session, phone="+8613800138000", language="en", name="Ada Lin")
    db_session.commit()
    reply = to_recording(phone, "5", category_key="1")  # main menu: new complaint; then product quality
    assert reply.status == 200 and reply.verbs == ["Say", "Record", "Redirect"]
    assert reply.said == ["After the tone, please tell us what happened and what you would like us to do, "
                          "then press the hash key."]
    rec = reply.first("Record")
    assert rec.get("action").startswith(f"{BASE}/voice/complaint?s=")
    assert rec.get("maxLength") == "180" and rec.get("finishOnKey") == "#" and rec.get("playBeep") == "true"
    assert rec.get("transcribe") == "true" and "/voice/complaint-transcript?i=" in rec.get("transcribeCallback")
    assert reply.redirect_url.startswith(f"{BASE}/voice/complaint-empty?s=")

    answered = record(phone, reply)
    assert answered.status == 200 and answered.verbs == ["Gather"]  # read-back, then the after-lookup menu
    [complaint] = complaints(db_session)
    spelled = " ".join(complaint.reference.split("-")[1])
    due = spoken_date(complaint.resolve_due_at.astimezone(ZoneInfo("Asia/Shanghai")).date(), "en")
    assert answered.said[0] == (f"Thank you. Your complaint reference is C M P, {spelled}. "
                                f"We will give you our final response by {due}.")
    assert answered.said[1].startswith("To return to the menu, press 1.")
    interaction = interaction_of(db_session, phone)
    assert (complaint.channel, complaint.customer_id, complaint.category) == ("ivr", customer.id, "product_quality")
    assert complaint.description == f"voice complaint, recording {REC_URL}"
    assert complaint.interaction_id == interaction.id and complaint.language == "en"
    assert (complaint.level, complaint.state) == ("P4", "acknowledged")
    assert complaint.acknowledged_at == OPEN_AT
    [notice] = db_session.scalars(select(ComplaintNotice).where(ComplaintNotice.complaint_id == complaint.id))
    assert (notice.kind, notice.language, notice.recipient_id) == ("acknowledgement", "en", customer.id)
    assert complaint.reference in notice.subject
    kinds = [e.kind for e in db_session.scalars(select(ComplaintEvent).where(
        ComplaintEvent.complaint_id == complaint.id).order_by(ComplaintEvent.id))]
    assert kinds[:3] == ["received", "transition", "intake_source"]
    assert interaction.state == State.IVR and interaction.attributes["ivr_complaint"] is None
    assert [f.data["complaint_id"] for f in facts(db_session, interaction, "ivr.complaint_registered")] == [
        complaint.id]
    scheduled = [(func.__name__, args) for _delay, func, args, _kw in app.extensions["desk.jobs"].scheduled]
    assert ("check_sla_job", (complaint.id,)) in scheduled  # the SLA clock's next check, after the commit


def test_twilio_retries_of_the_recording_make_one_complaint(phone, db_session):
    make_customer(db_session, phone="+8613800138000", language="en")
    db_session.commit()
    reply = to_recording(phone, "5", category_key="2")
    first = record(phone, reply)
    again = record(phone, reply)
    other_sid = record(phone, reply, RecordingSid="RE" + "b" * 32)  # the same step, whatever the sid
    assert first.status == again.status == other_sid.status == 200
    assert first.text == again.text == other_sid.text
    assert len(complaints(db_session)) == 1
    receipts = db_session.scalar(select(func.count(VoiceWebhookReceipt.id)).where(
        VoiceWebhookReceipt.call_sid == phone.call_sid, VoiceWebhookReceipt.event.like("complaint:%")))
    assert receipts == 1


def test_an_unknown_mandarin_caller_becomes_a_prospect_and_hears_chinese(phone, db_session):
    phone.from_ = "+8613911112222"
    reply = to_recording(phone, "2", "5", category_key="3")  # Mandarin, new complaint, billing
    assert all(say.get("language") == "cmn-CN" for say in reply.root.iter("Say"))
    assert reply.said == ["请在提示音后告诉我们发生了什么，以及您希望我们如何处理，结束后请按井号键。"]
    assert reply.first("Record").get("transcribe") is None  # Twilio transcribes English only
    answered = record(phone, reply)
    [complaint] = complaints(db_session)
    customer = db_session.get(Customer, complaint.customer_id)
    assert customer.is_prospect and customer.language == "zh"
    assert [p.e164 for p in customer.phones] == ["+8613911112222"]
    assert interaction_of(db_session, phone).customer_id == customer.id
    spelled = " ".join(complaint.reference.split("-")[1])
    due = complaint.resolve_due_at.astimezone(ZoneInfo("Asia/Shanghai")).date()
    assert answered.said[0] == (f"谢谢。您的投诉编号是C M P, {spelled}。"
                                f"我们将在{due.year}年{due.month}月{due.day}日前给您最终答复。")
    assert (complaint.category, complaint.language) == ("billing", "zh")
    notice = db_session.scalar(select(ComplaintNotice).where(ComplaintNotice.complaint_id == complaint.id))
    assert notice.language == "zh" and notice.subject.startswith("我们已收到您的投诉")


def test_a_transcription_sent_with_the_recording_is_graded_at_intake(phone, db_session):
    make_customer(db_session, phone="+8613800138000", language="en")
    db_session.commit()
    reply = to_recording(phone, "5", category_key="1")
    record(phone, reply, TranscriptionText="The charger exploded and burned my hand.")
    [complaint] = complaints(db_session)
    assert complaint.description.endswith("transcription: The charger exploded and burned my hand.")
    assert complaint.factor_scores["harm"] == 3 and complaint.level == "P1"
    assert complaint.state == "received"  # P1 is acknowledged by a person's phone call within the hour


def test_a_later_transcription_joins_the_description_as_suggestions(phone, db_session):
    make_customer(db_session, phone="+8613800138000", language="en")
    db_session.commit()
    reply = to_recording(phone, "5", category_key="1")
    transcript_url = reply.first("Record").get("transcribeCallback")
    record(phone, reply)
    params = {"RecordingSid": REC_SID, "TranscriptionStatus": "completed",
              "TranscriptionText": "Third time calling. My lawyer will hear about this."}
    first = phone.post(transcript_url, params)
    again = phone.post(transcript_url, params)
    assert first.status == again.status == 200 and first.verbs == []
    [complaint] = complaints(db_session)
    assert complaint.description == (f"voice complaint, recording {REC_URL}\n"
                                     "transcription: Third time calling. My lawyer will hear about this.")
    [event] = db_session.scalars(select(ComplaintEvent).where(ComplaintEvent.complaint_id == complaint.id,
                                                             ComplaintEvent.kind == "transcription"))
    assert event.data["suggestions"] == {"legal_risk": 2, "repeat_contact": 2}
    assert complaint.level == "P4"  # suggestions wait for a person's regrade
    wrong = phone.post(transcript_url, {**params, "RecordingSid": "RE" + "c" * 32})
    assert wrong.status == 409 and wrong.verbs == ["Say", "Hangup"]


def test_an_empty_recording_puts_the_caller_through_to_an_agent(phone, db_session):
    make_customer(db_session, phone="+8613800138000", language="en")
    db_session.commit()
    reply = to_recording(phone, "5", category_key="1")
    answered = phone.follow()  # Twilio reads on past <Record> when nothing was recorded
    assert answered.verbs == ["Say", "Redirect"] and answered.redirect_url == f"{BASE}/voice/wait?t=1"
    assert answered.said == ["Sorry, we did not get a message, so we will put you through to a colleague."]
    interaction = interaction_of(db_session, phone)
    assert (interaction.state, interaction.queue) == (State.QUEUED, "general")
    assert interaction.attributes["priority_bump"] == 50
    assert complaints(db_session) == []
    late = record(phone, reply)  # a recording for that step after all: the step is over
    assert late.status == 409 and complaints(db_session) == []


def test_a_withheld_number_is_taken_by_an_agent_without_a_prospect(phone, db_session):
    phone.from_ = "anonymous"
    reply = to_recording(phone, "1", "5", category_key="1")
    assert reply.verbs == ["Say", "Redirect"]
    assert reply.said[0].startswith("To take your complaint we need to know who you are")
    interaction = interaction_of(db_session, phone)
    assert interaction.state == State.QUEUED and interaction.customer_id is None
    assert db_session.scalar(select(func.count(Customer.id))) == 0
    assert len(facts(db_session, interaction, "ivr.complaint_unidentified")) == 1


def test_a_caller_who_hangs_up_after_recording_still_gets_the_complaint(phone, db_session):
    make_customer(db_session, phone="+8613800138000", language="en")
    db_session.commit()
    reply = to_recording(phone, "5", category_key="4")
    phone.hang_up()  # the status callback may come before the Record action
    interaction = interaction_of(db_session, phone)
    assert interaction.state == State.CLOSED
    answered = record(phone, reply)
    assert answered.status == 200 and answered.verbs == ["Hangup"]
    [complaint] = complaints(db_session)
    assert complaint.category == "loss_or_damage" and complaint.interaction_id == interaction.id


@pytest.mark.parametrize("params, status", [
    ({"RecordingSid": REC_SID, "RecordingDuration": "5"}, 400),  # no RecordingUrl
    ({"RecordingSid": REC_SID, "RecordingUrl": "javascript:alert(1)"}, 400),
    ({"RecordingUrl": REC_URL}, 400),  # no RecordingSid
    ({"RecordingSid": "not-a-sid", "RecordingUrl": REC_URL}, 400),
])
def test_bad_recording_callbacks_get_an_apology_and_change_nothing(phone, db_session, params, status):
    make_customer(db_session, phone="+8613800138000", language="en")
    db_session.commit()
    reply = to_recording(phone, "5", category_key="1")
    answered = phone.post(reply.first("Record").get("action"), params)
    assert answered.status == status and answered.verbs == ["Say", "Hangup"]
    assert answered.said[0].startswith("We are sorry, something went wrong")
    assert complaints(db_session) == []
    assert interaction_of(db_session, phone).attributes["ivr_complaint"]["category"] == "product_quality"


def test_a_recording_for_a_step_not_waiting_or_unsigned_is_refused(phone, db_session):
    make_customer(db_session, phone="+8613800138000", language="en")
    db_session.commit()
    reply = to_recording(phone, "5", category_key="1")
    action = reply.first("Record").get("action")
    stale = phone.post(action.replace("?s=", "?s=9"), {"RecordingSid": REC_SID, "RecordingUrl": REC_URL})
    assert stale.status == 409
    forged = phone.post(action, {"RecordingSid": REC_SID, "RecordingUrl": REC_URL}, signature="forged")
    assert forged.status == 403
    stranger = Caller(phone.client, call_sid=new_call_sid())
    unknown = stranger.post(action, {"RecordingSid": REC_SID, "RecordingUrl": REC_URL})
    assert unknown.status == 404
    assert complaints(db_session) == []
    assert db_session.scalar(select(func.count(CustomerPhone.id))) == 1
