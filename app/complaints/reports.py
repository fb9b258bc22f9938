"""Complaint reports for a period [start, end), computed from the rows' timestamps (never from counters):

- volumes by category, root cause, level and channel (complaints received in the period);
- root causes: count, categories and compensation per cause, and answered complaints without one;
- time to acknowledge and to the final response, and the share within the deadline;
- compensation issued in the period by type (redress / fixed / goodwill) and by customer tier;
- repeat-complaint rate: share of the period's complaints whose customer had complained in the
  365 days before;
- complaints per thousand contacts: complaints received / inbound interactions created x 1000.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.complaints.models import CompensationIssuance, CompensationProposal, Complaint
from app.interactions.models import Interaction


def _in_period(column, start: datetime, end: datetime):
    return (column >= start) & (column < end)


def volumes(session: Session, start: datetime, end: datetime) -> dict[str, dict[str, int]]:
    result = {}
    for name, column in (("category", Complaint.category), ("root_cause", Complaint.root_cause),
                         ("level", Complaint.level), ("channel", Complaint.channel)):
        rows = session.execute(select(column, func.count(Complaint.id))
                               .where(_in_period(Complaint.received_at, start, end)).group_by(column))
        result[name] = {(key or "unknown"): count for key, count in sorted(rows, key=lambda r: str(r[0]))}
    return result


def _clock_stats(pairs: list[tuple[datetime, datetime, datetime]]) -> dict[str, Any]:
    """pairs of (start, done, due): how many, mean hours, how many on time and the share on time."""
    if not pairs:
        return {"count": 0, "mean_hours": None, "within_deadline": 0, "within_percent": None}
    hours = [(done - start) / timedelta(hours=1) for start, done, _ in pairs]
    on_time = sum(1 for _, done, due in pairs if done <= due)
    return {"count": len(pairs), "mean_hours": round(sum(hours) / len(hours), 2), "within_deadline": on_time,
            "within_percent": round(100 * on_time / len(pairs), 1)}


def timeliness(session: Session, start: datetime, end: datetime) -> dict[str, Any]:
    rows = session.execute(select(Complaint.received_at, Complaint.acknowledged_at, Complaint.acknowledge_due_at,
                                  Complaint.final_response_at, Complaint.resolve_due_at)
                           .where(_in_period(Complaint.received_at, start, end))).all()
    acknowledge = [(r[0], r[1], r[2]) for r in rows if r[1] is not None]
    resolve = [(r[0], r[3], r[4]) for r in rows if r[3] is not None]
    return {"acknowledge": _clock_stats(acknowledge), "resolve": _clock_stats(resolve),
            "open_overdue": sum(1 for r in rows if r[3] is None and r[4] < end)}


def compensation(session: Session, start: datetime, end: datetime) -> dict[str, Any]:
    rows = session.execute(
        select(CompensationProposal.redress_cents, CompensationProposal.fixed_cents,
               CompensationProposal.goodwill_cents, CompensationProposal.customer_tier,
               CompensationIssuance.amount_cents)
        .join(CompensationIssuance, CompensationIssuance.proposal_id == CompensationProposal.id)
        .where(_in_period(CompensationIssuance.issued_at, start, end))).all()
    by_type = {"redress": 0, "fixed": 0, "goodwill": 0}
    by_tier: dict[str, int] = {}
    for redress, fixed, goodwill, tier, amount in rows:
        by_type["redress"] += redress
        by_type["fixed"] += fixed
        by_type["goodwill"] += goodwill
        by_tier[tier] = by_tier.get(tier, 0) + amount
    return {"count": len(rows), "total_cents": sum(r[4] for r in rows), "by_type_cents": by_type,
            "by_tier_cents": dict(sorted(by_tier.items()))}


def repeat_rate(session: Session, start: datetime, end: datetime) -> dict[str, Any]:
    rows = session.execute(select(Complaint.id, Complaint.customer_id, Complaint.received_at)
                           .where(Complaint.received_at >= start - timedelta(days=365), Complaint.received_at < end)
                           .order_by(Complaint.received_at, Complaint.id)).all()
    seen: dict[int, list[datetime]] = {}
    in_period = repeats = 0
    for _id, customer_id, received in rows:
        earlier = seen.setdefault(customer_id, [])
        if received >= start:
            in_period += 1
            if any(received - at <= timedelta(days=365) for at in earlier):
                repeats += 1
        earlier.append(received)
    return {"complaints": in_period, "repeats": repeats,
            "percent": round(100 * repeats / in_period, 1) if in_period else None}


def per_thousand_contacts(session: Session, start: datetime, end: datetime) -> dict[str, Any]:
    complaints = session.scalar(select(func.count(Complaint.id))
                                .where(_in_period(Complaint.received_at, start, end))) or 0
    contacts = session.scalar(select(func.count(Interaction.id)).where(
        _in_period(Interaction.created_at, start, end), Interaction.direction == "inbound",
        Interaction.channel != "task")) or 0
    return {"complaints": complaints, "contacts": contacts,
            "per_thousand": round(1000 * complaints / contacts, 2) if contacts else None}


def root_causes(session: Session, start: datetime, end: datetime) -> dict[str, Any]:
    """What caused the period's complaints: per root cause the count, the categories it shows up in and
    the compensation issued on them; and how many answered complaints still lack a root cause (an
    investigation that did not record its finding)."""
    rows = session.execute(select(Complaint.id, Complaint.root_cause, Complaint.category,
                                  Complaint.final_response_at)
                           .where(_in_period(Complaint.received_at, start, end))).all()
    paid = dict(session.execute(
        select(CompensationIssuance.complaint_id, func.sum(CompensationIssuance.amount_cents))
        .join(Complaint, Complaint.id == CompensationIssuance.complaint_id)
        .where(_in_period(Complaint.received_at, start, end)).group_by(CompensationIssuance.complaint_id)).all())
    causes: dict[str, dict[str, Any]] = {}
    for complaint_id, cause, category, _answered in rows:
        entry = causes.setdefault(cause or "unknown", {"count": 0, "by_category": {}, "compensation_cents": 0})
        entry["count"] += 1
        entry["by_category"][category] = entry["by_category"].get(category, 0) + 1
        entry["compensation_cents"] += int(paid.get(complaint_id) or 0)
    answered = [r for r in rows if r[3] is not None]
    missing = sum(1 for r in answered if not r[1])
    ordered = dict(sorted(causes.items(), key=lambda item: (-item[1]["count"], item[0])))
    return {"causes": ordered, "answered": len(answered), "answered_without_cause": missing}


def summary(session: Session, config, *, start: datetime, end: datetime) -> dict[str, Any]:
    """Every complaint report for [start, end) in one dict (the reports page and exports)."""
    return {"start": start, "end": end, "volumes": volumes(session, start, end),
            "root_causes": root_causes(session, start, end),
            "timeliness": timeliness(session, start, end), "compensation": compensation(session, start, end),
            "repeat": repeat_rate(session, start, end), "contacts": per_thousand_contacts(session, start, end)}
