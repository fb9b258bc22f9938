"""Routing priority, computed and explained (pure).

A contact's *base* priority adds points for the customer's value tier, their worst open complaint's
grade and a requested callback; each part comes with a reason the console shows beside the offer.
Waiting time adds ``per_minute_waiting`` points a minute on top (see ``with_waiting``); the engine
keeps that part out of its stored key because it grows at the same rate for everyone.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from queues.config import PriorityWeights

TIER_LABELS = {
    "vip": ("VIP customer", "贵宾客户"),
    "major": ("Major customer", "重要客户"),
    "ordinary": ("Ordinary customer", "普通客户"),
    "small": ("Small customer", "小客户"),
}


@dataclass(frozen=True, slots=True)
class PriorityInputs:
    """What priority depends on; every field optional so an unidentified caller still routes."""

    tier: str | None = None
    open_complaint_grades: tuple[str, ...] = ()
    callback: bool = False


def reason(code: str, points: int, en: str, zh: str, **detail) -> dict:
    """One explained contribution, in both languages, JSON-ready."""
    return {"code": code, "points": points, "en": en, "zh": zh, **detail}


def base_priority(inputs: PriorityInputs, weights: PriorityWeights) -> tuple[int, list[dict]]:
    """Return (points, reasons) for tier, worst open complaint and callback.

    Only the worst (highest-weighted) open complaint counts, so a customer with many small
    complaints does not outrank one with a single serious complaint.
    """
    points, reasons = 0, []
    if inputs.tier is not None and inputs.tier in weights.tier:
        tier_points = weights.tier[inputs.tier]
        en, zh = TIER_LABELS.get(inputs.tier, (inputs.tier, inputs.tier))
        points += tier_points
        reasons.append(reason("tier", tier_points, en, zh, tier=inputs.tier))
    grade = worst_grade(inputs.open_complaint_grades, weights)
    if grade is not None:
        grade_points = weights.open_complaint[grade]
        points += grade_points
        reasons.append(reason("open_complaint", grade_points, f"Open complaint, grade {grade}",
                              f"有未结投诉（等级 {grade}）", grade=grade))
    if inputs.callback and weights.callback:
        points += weights.callback
        reasons.append(reason("callback", weights.callback, "Callback requested", "客户请求回电"))
    return points, reasons


def worst_grade(grades: Iterable[str], weights: PriorityWeights) -> str | None:
    known = [g for g in grades if g in weights.open_complaint]
    if not known:
        return None
    return max(known, key=lambda g: weights.open_complaint[g])


def waiting_points(waited_s: float, weights: PriorityWeights) -> int:
    return int(weights.per_minute_waiting * max(0.0, waited_s) / 60.0)


def with_waiting(base: int, reasons: Iterable[dict], waited_s: float,
                 weights: PriorityWeights) -> tuple[int, list[dict]]:
    """Priority at offer time: base plus waiting time, with the waiting reason appended."""
    extra = waiting_points(waited_s, weights)
    out = list(reasons)
    if extra:
        minutes = int(max(0.0, waited_s) // 60)
        out.append(reason("waiting", extra, f"Waiting {minutes} min", f"已等待 {minutes} 分钟", waited_s=int(waited_s)))
    return base + extra, out
