"""The customer's timeline across channels, built from a 360 view (pure: no I/O, no Flask).

One list, newest first, of what happened with the customer: contacts on every channel, orders and their
shipments, complaints, survey answers and compensation. Each entry keeps its source record so the page
can render it in the reader's language.
"""
from __future__ import annotations

from typing import Any


def _entry(at: str | None, kind: str, record: dict[str, Any], channel: str | None = None) -> dict[str, Any] | None:
    if not at:
        return None
    return {"at": at, "kind": kind, "channel": channel, "record": record}


def build_timeline(view: dict[str, Any], *, limit: int = 50) -> list[dict[str, Any]]:
    """Entries ``{at, kind, channel, record}`` newest first, at most ``limit``. Kinds: interaction,
    order, shipment (shipped or delivered), complaint (received), feedback, compensation. ISO strings
    with offsets compare correctly only when in the same zone; the 360 view gives UTC throughout."""
    entries: list[dict[str, Any] | None] = []
    for interaction in view.get("interactions", []):
        entries.append(_entry(interaction.get("created_at"), "interaction", interaction, interaction.get("channel")))
    for order in view.get("orders", []):
        entries.append(_entry(order.get("placed_at"), "order", order))
        for shipment in order.get("shipments", []):
            stamp = shipment.get("delivered_at") or shipment.get("shipped_at")
            entries.append(_entry(stamp, "shipment", {**shipment, "order_number": order.get("number")}))
    for complaint in view.get("complaints", []):
        entries.append(_entry(complaint.get("received_at"), "complaint", complaint, complaint.get("channel")))
    for answer in (view.get("satisfaction") or {}).get("latest", []):
        entries.append(_entry(answer.get("recorded_at"), "feedback", answer))
    for item in (view.get("compensation") or {}).get("items", []):
        entries.append(_entry(item.get("issued_at"), "compensation", item))
    kept = [e for e in entries if e is not None]
    kept.sort(key=lambda e: e["at"], reverse=True)
    return kept[:limit]
