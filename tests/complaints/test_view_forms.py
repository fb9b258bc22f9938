"""The staff forms: bad input is refused with the reason and changes nothing; each proposal path says
what happened; a supervisor can send a proposal back."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.complaints.models import CompensationProposal, Complaint
from tests.complaints.test_flows import new_complaint, walk_to_investigating
from tests.factories import login


def _text(response) -> str:
    return response.get_data(as_text=True)


@pytest.fixture()
def investigating(db_session, people, jobs):
    complaint = new_complaint(db_session, people, tier="small", scores={"harm": 1})
    walk_to_investigating(db_session, people, complaint)
    return complaint


@pytest.mark.parametrize("form, why", [
    ({"proven_loss": "abc"}, "not an amount"),
    ({"proven_loss": "-1"}, "cannot be negative"),
    ({"proven_loss": "1.234"}, "at most two decimals"),
    ({"delay_days": "two"}, "a whole number is needed"),
    ({"goodwill": "999999", "adjustment_reason": "very upset"}, "Refused"),
    ({"method": "gold"}, "unknown compensation method"),
])
def test_bad_proposals_are_refused(client, db_session, people, investigating, form, why):
    login(client, people["agent"])
    page = client.post(f"/complaints/{investigating.id}/propose", data=form, follow_redirects=True)
    assert "Refused" in _text(page) and why in _text(page)
    assert db_session.scalar(select(CompensationProposal)) is None


def test_grade_form_refuses_scores_outside_0_to_3(client, db_session, people, investigating):
    login(client, people["agent"])
    page = client.post(f"/complaints/{investigating.id}/grade", data={"score_harm": "9", "reason": "x"},
                       follow_redirects=True)
    assert "Scores are whole numbers from 0 to 3." in _text(page)


@pytest.mark.parametrize("form, message, status", [
    ({"delay_days": "3", "no_goodwill": "1"}, "Within your authority", "approved"),
    ({"fraud_price": "10.00", "fraud_rule": "fraud_triple_price"}, "Sent for approval.", "awaiting_approval"),
    ({"no_goodwill": "1", "response_note": "explained the bill"}, "Response recorded without compensation.",
     "proposed"),
])
def test_each_proposal_path_says_what_happened(client, db_session, people, investigating, form, message, status):
    login(client, people["agent"])
    page = client.post(f"/complaints/{investigating.id}/propose", data=form, follow_redirects=True)
    assert message in _text(page)
    db_session.expire_all()
    assert db_session.scalar(select(CompensationProposal)).status == status


def test_supervisor_sends_a_proposal_back_and_refusals_show(client, db_session, people, investigating):
    login(client, people["agent"])
    client.post(f"/complaints/{investigating.id}/propose", data={"proven_loss": "100.00"})
    proposal = db_session.scalar(select(CompensationProposal))
    assert proposal.status == "awaiting_approval"
    page = client.post(f"/complaints/proposals/{proposal.id}/approve", data={}, follow_redirects=True)
    assert "Refused" in _text(page)  # the agent handled the case (four eyes) and is over their limit
    client.post("/logout")
    login(client, people["lead"])
    page = client.post(f"/complaints/proposals/{proposal.id}/decline", data={"note": ""}, follow_redirects=True)
    assert "Refused" in _text(page)
    page = client.post(f"/complaints/proposals/{proposal.id}/decline", data={"note": "attach the receipt"},
                       follow_redirects=True)
    assert "Sent back to the agent." in _text(page)
    db_session.expire_all()
    assert db_session.get(Complaint, investigating.id).state == "response_proposed"
    assert client.post("/complaints/proposals/99999/decline", data={"note": "x"}).status_code == 404
    assert client.post("/complaints/proposals/99999/approve").status_code == 404


def test_intake_form_refusals_and_unknown_interaction(client, db_session, people, jobs):
    login(client, people["agent"])
    assert client.get("/complaints/new?interaction_id=99999").status_code == 404
    page = client.post("/complaints/new", data={"customer_id": "x1", "category": "billing", "description": "d"},
                       follow_redirects=True)
    assert "a whole number is needed" in _text(page)
