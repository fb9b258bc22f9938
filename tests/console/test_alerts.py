"""Complaint SLA alerts in the agent's console: raised by the complaints domain's own SLA check, delivered
through its notice outbox as "alert.complaint_sla", shown to the agent they are addressed to."""
from __future__ import annotations

import queue
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from agent_console import payloads
from app import realtime
from app.complaints import flows
from tests.console.test_browser import sign_in
from tests.factories import make_customer, make_staff


def overdue_complaint(session, owner):
    """A complaint owned by ``owner`` whose SLA check runs after every alert point (50%, 80%, breach)."""
    customer = make_customer(session, email="late@example.com")
    complaint = flows.raise_complaint(session, channel="voice", customer_id=customer.id, category="delivery_delay",
                                      description="Parcel is a week late", actor_id=owner.id)
    return complaint


def raise_alerts(session, complaint) -> int:
    return flows.check_sla(session, complaint.id, now=complaint.resolve_due_at + timedelta(days=1))


def test_alerts_reach_the_owners_console_and_nobody_elses(db_session, agent_client):
    owner, other = make_staff(db_session), make_staff(db_session)
    db_session.commit()
    mine, theirs = agent_client(owner), agent_client(other)
    mine.next("snapshot"), theirs.next("snapshot")
    complaint = overdue_complaint(db_session, owner)

    assert raise_alerts(db_session, complaint) >= 3
    got = [mine.next("alert") for _ in range(3)]
    resolve = [a for a in got if a["clock"] == "resolve"] or got
    assert {a["complaint_id"] for a in got} == {complaint.id}
    assert all(a["reference"] == complaint.reference and a["owner_id"] == owner.id for a in got)
    assert all(a["level"] == complaint.level and a["url"] == f"/complaints/{complaint.id}" for a in got)
    assert {a["point"] for a in resolve} <= {"50%", "80%", "breach"}
    assert all(a["notice_id"] and a["due"] for a in got)
    with pytest.raises(queue.Empty):
        theirs.next("alert", timeout=0.5)

    restored = mine.call("sync")["snapshot"]["alerts"]  # a reconnecting console shows them again
    assert {a["notice_id"] for a in got} <= {a["notice_id"] for a in restored}
    assert theirs.call("sync")["snapshot"]["alerts"] == []


def test_an_alert_without_a_notice_or_reference_still_shows(app):
    with app.test_request_context():
        alert = payloads.complaint_alert({"complaint_id": 7, "agent_id": 1, "clock": "acknowledge",
                                          "point": "breach", "due": None, "level": "P1"})
    assert (alert.notice_id, alert.reference, alert.url, alert.owner_id) == (None, "7", "/complaints/7", None)


@pytest.mark.browser
def test_the_console_shows_an_alert_that_can_be_dismissed(db_session, live_server, browser):
    agent = make_staff(db_session, name="Agent Amy")
    db_session.commit()
    page = browser.new_page()
    sign_in(page, live_server.url, agent.email)
    expect(page.locator("#alerts")).to_be_hidden()

    realtime.publish("alert.complaint_sla", {
        "notice_id": 9001, "complaint_id": 42, "agent_id": agent.id, "reference": "CMP-100042", "owner_id": agent.id,
        "level": "P2", "clock": "resolve", "point": "breach", "due": "2026-11-20T08:00:00+00:00",
        "subject": "[P2] Complaint CMP-100042: resolution is overdue"})
    item = page.locator("#alert-list li[role=alert]")
    expect(item).to_have_count(1)
    expect(item).to_contain_text("Complaint CMP-100042 (P2): the resolution deadline has passed.")
    expect(item.locator("a.open-complaint")).to_have_attribute("href", "/complaints/42")

    realtime.publish("alert.complaint_sla", {
        "notice_id": 9002, "complaint_id": 43, "agent_id": agent.id, "reference": "CMP-100043", "owner_id": agent.id,
        "level": "P3", "clock": "acknowledge", "point": "80%", "due": "2026-11-30T08:00:00+00:00", "subject": "x"})
    expect(page.locator("#alert-list li").first).to_contain_text("80% of the acknowledgement time is used")

    page.get_by_role("button", name="Dismiss the alert for CMP-100042").click()
    expect(page.locator("#alert-list li")).to_have_count(1)
    page.get_by_role("button", name="Dismiss the alert for CMP-100043").click()
    expect(page.locator("#alerts")).to_be_hidden()
