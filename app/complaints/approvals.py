"""Approval rules for compensation (pure): who may approve how much, and when it is fully approved.

Defaults (config ``complaints.approvals``): agent 50, team lead 250, complaints manager 1,000, head of
service 5,000; above the highest limit two distinct approvers of the top role. Four-eyes: once an amount
is beyond what an agent may grant alone, nobody who handled the case may approve it. The same person
approving twice counts once (DuplicateApproval, which the service treats as "already done").
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from app.complaints.compensation import check_amount, format_money
from app.complaints.config import APPROVAL_ROLES, ApprovalsConfig
from app.complaints.grading import Bilingual

ROLE_NAMES = {
    "agent": ("agent", "坐席"), "team_lead": ("team lead", "组长"),
    "complaints_manager": ("complaints manager", "投诉经理"), "head_of_service": ("head of service", "服务负责人"),
}


class ApprovalError(ValueError):
    """An approval the rules refuse; nothing was recorded."""


class NotAuthorised(ApprovalError):
    pass


class FourEyesViolation(ApprovalError):
    pass


class DuplicateApproval(ApprovalError):
    pass


@dataclass(frozen=True)
class Approver:
    staff_id: int
    role: str  # an approval role: agent | team_lead | complaints_manager | head_of_service


@dataclass(frozen=True)
class Requirement:
    approvals_needed: int
    min_role: str
    four_eyes: bool
    explanation: Bilingual


def role_rank(role: str) -> int:
    if role not in APPROVAL_ROLES:
        raise ApprovalError(f"unknown approval role {role!r}")
    return APPROVAL_ROLES.index(role)


def approval_role_for(staff_role: str, config: ApprovalsConfig, granted: str | None = None) -> str:
    """The approval role of a staff member: an explicit grant, else the mapping of their desk role."""
    if granted is not None:
        role_rank(granted)
        return granted
    try:
        return config.staff_role_map[staff_role]
    except KeyError:
        raise ApprovalError(f"staff role {staff_role!r} has no approval role") from None


def requirement(amount_cents: int, config: ApprovalsConfig, currency: str = "") -> Requirement:
    """How many approvals of which least role ``amount_cents`` needs. Raises NegativeAmount."""
    check_amount(amount_cents, "approval")
    money = format_money(amount_cents, currency).strip()
    limits = config.limits_cents
    four_eyes = amount_cents > limits["agent"]
    for role in APPROVAL_ROLES:
        if amount_cents <= limits[role]:
            name_en, name_zh = ROLE_NAMES[role]
            limit = format_money(limits[role], currency).strip()
            extra_en = "; not by anyone who handled the case" if four_eyes else ""
            extra_zh = "；经办人不得审批" if four_eyes else ""
            return Requirement(1, role, four_eyes, Bilingual(
                f"{money} needs one approval by a {name_en} or above (limit {limit}){extra_en}",
                f"{money} 需要一名{name_zh}或以上审批（限额 {limit}）{extra_zh}"))
    top = APPROVAL_ROLES[-1]
    name_en, name_zh = ROLE_NAMES[top]
    limit = format_money(limits[top], currency).strip()
    return Requirement(2, top, True, Bilingual(
        f"{money} is above the {name_en} limit {limit}: two different {name_en} approvals, "
        "not by anyone who handled the case",
        f"{money} 超过{name_zh}限额 {limit}：需要两名不同的{name_zh}审批，经办人不得审批"))


def check_approval(amount_cents: int, approver: Approver, *, handler_ids: Iterable[int],
                   existing: Iterable[Approver], config: ApprovalsConfig, currency: str = "") -> Requirement:
    """Raise unless ``approver`` may add an approval for ``amount_cents`` now; return the requirement.

    Raises DuplicateApproval (this person already approved), NotAuthorised (role below the needed one),
    FourEyesViolation (the approver handled the case and the amount needs four eyes) or NegativeAmount."""
    needed = requirement(amount_cents, config, currency)
    if any(a.staff_id == approver.staff_id for a in existing):
        raise DuplicateApproval("you have already approved this compensation")
    if needed.four_eyes and approver.staff_id in set(handler_ids):
        raise FourEyesViolation("you handled this case, so someone else must approve it (four-eyes rule)")
    if role_rank(approver.role) < role_rank(needed.min_role):
        have_en = ROLE_NAMES[approver.role][0]
        raise NotAuthorised(f"a {have_en} cannot approve this: {needed.explanation.en}")
    return needed


def is_fully_approved(amount_cents: int, approvals: Iterable[Approver], *, handler_ids: Iterable[int],
                      config: ApprovalsConfig) -> bool:
    """True when the distinct, valid approvals reach what the amount needs (invalid ones do not count)."""
    needed = requirement(amount_cents, config)
    handlers = set(handler_ids)
    valid = {a.staff_id for a in approvals
             if role_rank(a.role) >= role_rank(needed.min_role)
             and not (needed.four_eyes and a.staff_id in handlers)}
    return len(valid) >= needed.approvals_needed
