"""The complaint workflow table: the happy path, refusals, notes, reopen window."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from app.complaints.states import (
    NOTE_REQUIRED,
    TRANSITIONS,
    ComplaintState,
    InvalidComplaintTransition,
    check_transition,
    label,
)

S = ComplaintState
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
HAPPY = ["received", "acknowledged", "investigating", "response_proposed", "awaiting_approval", "approved",
         "compensation_issued", "resolved", "closed"]


def test_happy_path_is_legal_step_by_step():
    for source, target in pairwise(HAPPY):
        assert check_transition(source, target) == S(target)


@pytest.mark.parametrize("source, target", [
    ("received", "investigating"), ("received", "closed"), ("acknowledged", "approved"),
    ("awaiting_approval", "compensation_issued"), ("approved", "resolved"), ("closed", "investigating"),
    ("reopened", "closed"), ("received", "nonsense"), ("nonsense", "received"), ("closed", "closed")])
def test_out_of_order_refused(source, target):
    with pytest.raises(InvalidComplaintTransition):
        check_transition(source, target, note="x", final_response_at=NOW, now=NOW)


@pytest.mark.parametrize("source, target", sorted(NOTE_REQUIRED - {(s, S.REOPENED) for s in S}))
def test_note_required(source, target):
    with pytest.raises(InvalidComplaintTransition, match="note"):
        check_transition(source, target, note="  ")
    assert check_transition(source, target, note="customer's right to escalate explained") == target


@pytest.mark.parametrize("source", ["resolved", "closed", "rejected"])
@pytest.mark.parametrize("days_ago, allowed", [(0, True), (30, True), (31, False)])
def test_reopen_window(source, days_ago, allowed):
    kwargs = {"note": "not fixed", "final_response_at": NOW - timedelta(days=days_ago), "now": NOW,
              "reopen_within_days": 30}
    if allowed:
        assert check_transition(source, "reopened", **kwargs) == S.REOPENED
    else:
        with pytest.raises(InvalidComplaintTransition, match="30 days"):
            check_transition(source, "reopened", **kwargs)


def test_reopen_needs_time_and_note():
    with pytest.raises(InvalidComplaintTransition, match="final response"):
        check_transition("closed", "reopened", note="x")
    with pytest.raises(InvalidComplaintTransition, match="note"):
        check_transition("closed", "reopened", final_response_at=NOW, now=NOW)


def test_table_is_complete_and_every_state_reachable():
    assert set(TRANSITIONS) == set(S)
    reachable = {S.RECEIVED} | {t for targets in TRANSITIONS.values() for t in targets}
    assert reachable == set(S)


def test_labels_in_both_languages():
    assert label("awaiting_approval") == "Awaiting approval" and label("awaiting_approval", "zh") == "待审批"
    assert all(label(s, "zh") for s in S)
