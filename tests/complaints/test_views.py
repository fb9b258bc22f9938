"""The staff pages: a complaint raised from a call reaches 'closed' through the console, with its trail."""
from __future__ import annotations

import re

from sqlalchemy import select

from app.complaints.models import CompensationProposal, Complaint
from tests.factories import login, make_customer, make_interaction, make_staff


def _post(client, url, **data):
    return client.post(url, data=data, follow_redirects=True)


def test_complaint_from_a_call_to_closed_through_the_console(client, db_session):
    agent = make_staff(db_session, role="agent", name="Alice")
    lead = make_staff(db_session, role="supervisor", name="Tara")
    customer = make_customer(db_session, name="Zhang Wei", tier="ordinary", language="zh", email="z@example.cn")
    call = make_interaction(db_session, channel="voice", customer=customer, subject="包裹丢了，我要找媒体",
                            language="zh")
    db_session.commit()
    login(client, agent)

    form = client.get(f"/complaints/new?interaction_id={call.id}").get_data(as_text=True)
    assert "包裹丢了" in form and "public exposure" in form  # prefilled, with the desk's suggestion shown

    page = _post(client, "/complaints/new", customer_id=customer.id, interaction_id=call.id, channel="voice",
                 category="loss_or_damage", description="包裹丢了，我要找媒体", amount_claimed="120.00",
                 score_harm="1", note_harm="lost parcel")
    text = page.get_data(as_text=True)
    complaint = db_session.scalar(select(Complaint))
    assert complaint.reference in text and complaint.state == "acknowledged" and complaint.interaction_id == call.id
    assert complaint.level == "P3"  # harm 1 + money 2 (120) + exposure 2 = 5
    assert "harm 1/3" in text and "P3: total 5" in text

    url = f"/complaints/{complaint.id}"
    _post(client, url + "/step", action="investigating", note="asked the courier")
    _post(client, url + "/propose", response_note="parcel lost by courier; refund and goodwill",
          proven_loss="120.00", method="refund")
    proposal = db_session.scalar(select(CompensationProposal))
    assert proposal.status == "awaiting_approval" and proposal.total_cents == 12000 + 4375

    client.post("/logout")
    login(client, lead)
    page = _post(client, f"/complaints/proposals/{proposal.id}/approve", note="ok")
    db_session.expire_all()
    assert db_session.get(Complaint, complaint.id).state == "compensation_issued"  # the inline job issued it
    page = _post(client, url + "/step", action="resolved", note="refund sent, apologised")
    page = _post(client, url + "/step", action="closed", note="")
    text = page.get_data(as_text=True)
    db_session.expire_all()
    assert db_session.get(Complaint, complaint.id).state == "closed"
    trail = re.findall(r"State changed: [^<→]+ → ([^<]+)</td>", text)
    assert trail == ["Acknowledged", "Investigating", "Response proposed", "Awaiting approval", "Approved",
                     "Compensation issued", "Resolved", "Closed"]
    assert "Alice" in text and "Tara" in text

    chinese = client.get(url + "?lang=zh").get_data(as_text=True)  # codes named in the reader's language
    assert "(普通客户) · 渠道: 电话" in chinese and "类别: 丢失或损坏" in chinese
    assert "状态变更: 已接收 → 已确认受理" in chinese and "提出补偿方案" in chinese
    assert re.search(r"退款 · 已发放</p>", chinese)
    assert re.search(r"确认受理\s*· 电子邮箱</td>", chinese) and re.search(r"状态更新: 调查中\s*· 电子邮箱</td>", chinese)
    listed = client.get("/complaints/?lang=zh").get_data(as_text=True)
    assert "<td>丢失或损坏</td>" in listed and "<td>电话</td>" in listed


def test_refusals_are_shown_and_change_nothing(client, db_session):
    agent = make_staff(db_session, role="agent")
    customer = make_customer(db_session)
    db_session.commit()
    login(client, agent)
    page = _post(client, "/complaints/new", customer_id=customer.id, channel="voice", category="billing",
                 description="charged twice", amount_claimed="-5")
    assert "Refused" in page.get_data(as_text=True) and db_session.scalar(select(Complaint)) is None
    _post(client, "/complaints/new", customer_id=customer.id, channel="voice", category="billing",
          description="charged twice", score_harm="1")
    complaint = db_session.scalar(select(Complaint))
    page = _post(client, f"/complaints/{complaint.id}/step", action="closed", note="")
    assert "Refused" in page.get_data(as_text=True)
    page = _post(client, f"/complaints/{complaint.id}/grade", score_harm="3", reason="")
    assert "Refused" in page.get_data(as_text=True)
    page = _post(client, f"/complaints/{complaint.id}/grade", score_harm="3", reason="burn injury reported")
    db_session.expire_all()
    assert db_session.get(Complaint, complaint.id).level == "P1"
    assert client.post(f"/complaints/{complaint.id}/step", data={"action": "explode"}).status_code == 400
    assert client.get("/complaints/999999").status_code == 404


def test_lists_reports_and_roles(client, db_session):
    agent = make_staff(db_session, role="agent")
    lead = make_staff(db_session, role="supervisor")
    db_session.commit()
    assert client.get("/complaints/").status_code == 302  # sign in first
    login(client, agent)
    assert client.get("/complaints/").status_code == 200
    assert client.get("/complaints/?state=closed&level=P1&mine=1").status_code == 200
    assert client.get("/complaints/reports").status_code == 403
    client.post("/logout")
    login(client, lead)
    page = client.get("/complaints/reports?days=7")
    assert page.status_code == 200 and "Complaints per thousand contacts" in page.get_data(as_text=True)
    zh = client.get("/complaints/?lang=zh").get_data(as_text=True)
    assert "投诉" in zh
