"""Approval limits by role, two approvers above the top limit, four-eyes, repeated approvals."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.complaints.approvals import (
    ApprovalError,
    Approver,
    DuplicateApproval,
    FourEyesViolation,
    NotAuthorised,
    approval_role_for,
    check_approval,
    is_fully_approved,
    requirement,
)
from app.complaints.compensation import NegativeAmount
from app.complaints.config import ApprovalsConfig

CONFIG = ApprovalsConfig()
HANDLER, OTHER, THIRD = 1, 2, 3


@pytest.mark.parametrize("amount, needed, role, four_eyes", [
    (0, 1, "agent", False), (5000, 1, "agent", False),
    (5001, 1, "team_lead", True), (25000, 1, "team_lead", True),
    (25001, 1, "complaints_manager", True), (100000, 1, "complaints_manager", True),
    (100001, 1, "head_of_service", True), (500000, 1, "head_of_service", True),
    (500001, 2, "head_of_service", True), (10**9, 2, "head_of_service", True),
])
def test_requirement_by_amount(amount, needed, role, four_eyes):
    result = requirement(amount, CONFIG, "CNY")
    assert (result.approvals_needed, result.min_role, result.four_eyes) == (needed, role, four_eyes)
    assert "CNY" in result.explanation.en and result.explanation.zh


@pytest.mark.parametrize("amount, role, staff_id, outcome", [
    (5000, "agent", HANDLER, None),                  # an agent grants up to 50 on their own case
    (5001, "agent", OTHER, NotAuthorised),
    (5001, "team_lead", HANDLER, FourEyesViolation),  # handled the case
    (5001, "team_lead", OTHER, None),
    (25001, "team_lead", OTHER, NotAuthorised),
    (25001, "complaints_manager", OTHER, None),
    (100001, "complaints_manager", OTHER, NotAuthorised),
    (100001, "head_of_service", OTHER, None),
    (500001, "head_of_service", HANDLER, FourEyesViolation),
    (500001, "complaints_manager", OTHER, NotAuthorised),
    (-1, "head_of_service", OTHER, NegativeAmount),
])
def test_check_approval_table(amount, role, staff_id, outcome):
    approver = Approver(staff_id, role)
    if outcome is None:
        check_approval(amount, approver, handler_ids={HANDLER}, existing=[], config=CONFIG)
        assert is_fully_approved(amount, [approver], handler_ids={HANDLER}, config=CONFIG) == (amount <= 500000)
    else:
        with pytest.raises(outcome):
            check_approval(amount, approver, handler_ids={HANDLER}, existing=[], config=CONFIG)


def test_two_approvers_above_top_limit_and_repeats_count_once():
    first, second = Approver(OTHER, "head_of_service"), Approver(THIRD, "head_of_service")
    check_approval(600000, first, handler_ids=[HANDLER], existing=[], config=CONFIG)
    assert not is_fully_approved(600000, [first], handler_ids=[HANDLER], config=CONFIG)
    with pytest.raises(DuplicateApproval):
        check_approval(600000, first, handler_ids=[HANDLER], existing=[first], config=CONFIG)
    assert not is_fully_approved(600000, [first, first], handler_ids=[HANDLER], config=CONFIG)
    check_approval(600000, second, handler_ids=[HANDLER], existing=[first], config=CONFIG)
    assert is_fully_approved(600000, [first, second], handler_ids=[HANDLER], config=CONFIG)


def test_invalid_approvals_do_not_count():
    assert not is_fully_approved(30000, [Approver(OTHER, "team_lead")], handler_ids=[], config=CONFIG)
    assert not is_fully_approved(30000, [Approver(HANDLER, "head_of_service")], handler_ids=[HANDLER],
                                 config=CONFIG)
    assert is_fully_approved(30000, [Approver(HANDLER, "head_of_service"), Approver(OTHER, "complaints_manager")],
                             handler_ids=[HANDLER], config=CONFIG)


@given(st.integers(0, 10**7), st.sampled_from(["agent", "team_lead", "complaints_manager", "head_of_service"]))
def test_a_single_allowed_approval_completes_unless_two_needed(amount, role):
    approver = Approver(OTHER, role)
    try:
        check_approval(amount, approver, handler_ids=[HANDLER], existing=[], config=CONFIG)
    except NotAuthorised:
        assert CONFIG.limits_cents[role] < amount
        return
    assert is_fully_approved(amount, [approver], handler_ids=[HANDLER], config=CONFIG) == (amount <= 500000)


def test_configured_limits():
    config = ApprovalsConfig(limits_cents={"agent": 0, "team_lead": 100, "complaints_manager": 200,
                                           "head_of_service": 300})
    assert requirement(1, config).min_role == "team_lead" and requirement(1, config).four_eyes
    assert requirement(301, config).approvals_needed == 2


@pytest.mark.parametrize("staff_role, granted, expected", [
    ("agent", None, "agent"), ("supervisor", None, "team_lead"), ("admin", None, "head_of_service"),
    ("supervisor", "complaints_manager", "complaints_manager")])
def test_approval_role_for(staff_role, granted, expected):
    assert approval_role_for(staff_role, CONFIG, granted) == expected


def test_unknown_roles_refused():
    with pytest.raises(ApprovalError):
        approval_role_for("janitor", CONFIG)
    with pytest.raises(ApprovalError):
        approval_role_for("agent", CONFIG, "emperor")
    with pytest.raises(ApprovalError):
        check_approval(100, Approver(OTHER, "emperor"), handler_ids=[], existing=[], config=CONFIG)
