"""The screen-pop: everything an agent sees about a contact before deciding to accept it.

One dict, JSON-ready, built from four sources: the CRM's 360 view of the customer (``customer_360``), what
the IVR collected (the interaction's attributes and its ``ivr.*`` event-log facts), why the contact has its
priority (the routing offer's reasons), and the interaction itself. The pure helpers (``summarise_ivr``,
``explain_priority``, ``identification``) hold the rules and are tested table-driven; ``build_screenpop``
only reads the database (a fixed handful of queries) and never writes.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.crm.errors import CustomerNotFound
from app.crm.view360 import customer_360
from app.db import utcnow
from app.interactions.models import Interaction, InteractionEvent

IVR_FACT_PREFIX = "ivr."
# Attribute keys the IVR or a channel adapter may store that are shown in their own place, not as "collected".
_HANDLED_ATTRIBUTES = frozenset({"ivr_state", "ivr", "menu_path"})
_INTERACTION_LIMIT = 10
_ORDER_LIMIT = 5


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def summarise_ivr(attributes: Mapping[str, Any], facts: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """What the caller did in the IVR, for the agent: the menu path (nodes in order, with the key or word
    that chose each option), the language and how it was chosen, the self-service lookups already tried
    (and whether they found anything), complaints the caller made by phone, retries, and any other values
    the IVR stored on the interaction.

    ``facts`` are (kind, data) pairs of the interaction's event log in order; kinds other than ``ivr.*``
    are ignored. Consecutive repeats of a node (re-prompts) appear once in the path."""
    path: list[dict[str, Any]] = []
    self_service: list[dict[str, Any]] = []
    language: dict[str, Any] | None = None
    retries = 0
    complaints: list[dict[str, Any]] = []
    for kind, data in facts:
        if not kind.startswith(IVR_FACT_PREFIX):
            continue
        step = kind[len(IVR_FACT_PREFIX):]
        if step == "node" and (not path or path[-1]["node"] != data.get("node")):
            path.append({"node": data.get("node"), "type": data.get("type")})
        elif step == "menu" and path:
            path[-1]["choice"] = data.get("key")
            path[-1]["via"] = data.get("via")
        elif step == "language":
            language = {"language": data.get("language"), "source": data.get("source")}
        elif step == "lookup":
            self_service.append({"lookup": data.get("lookup"), "reference": data.get("reference"),
                                 "found": bool(data.get("found"))})
        elif step == "retry":
            retries += 1
        elif step == "complaint_registered":
            complaints.append({"reference": data.get("reference"), "level": data.get("level"),
                               "category": data.get("category")})
    collected = {k: v for k, v in sorted(attributes.items()) if k not in _HANDLED_ATTRIBUTES
                 and isinstance(v, (str, int, float, bool))}
    if not path and isinstance(attributes.get("menu_path"), list):
        path = [{"node": str(n), "type": None} for n in attributes["menu_path"]]
    return {"path": path, "language": language, "self_service": self_service, "retries": retries,
            "complaints": complaints, "collected": collected, "used_ivr": bool(path or self_service or complaints)}


def explain_priority(priority: int, reasons: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The priority and its reasons, largest contribution first; ``unexplained`` is the part of the
    priority no reason accounts for (0 when the reasons add up, as routing promises)."""
    listed = [dict(r) for r in reasons]
    listed.sort(key=lambda r: (-int(r.get("points", 0) or 0), str(r.get("code", ""))))
    explained = sum(int(r.get("points", 0) or 0) for r in listed)
    return {"value": priority, "reasons": listed, "unexplained": priority - explained}


def identification(customer: Mapping[str, Any] | None, caller: str | None) -> dict[str, Any]:
    """How sure the desk is about who this is: ``known`` (a customer record), ``prospect`` (recorded
    from this contact, offer the "link to existing customer" search) or ``unknown`` (no usable caller id)."""
    if customer is None:
        return {"status": "unknown", "caller": caller, "can_link": True}
    if customer.get("is_prospect"):
        return {"status": "prospect", "caller": caller, "can_link": True}
    return {"status": "known", "caller": caller, "can_link": False}


def _ivr_facts(session: Session, interaction_id: int) -> list[tuple[str, dict[str, Any]]]:
    rows = session.execute(select(InteractionEvent.kind, InteractionEvent.data)
                           .where(InteractionEvent.interaction_id == interaction_id,
                                  InteractionEvent.kind.like(IVR_FACT_PREFIX + "%"))
                           .order_by(InteractionEvent.id))
    return [(kind, data or {}) for kind, data in rows]


def _caller(interaction: Interaction) -> str | None:
    attributes = interaction.attributes or {}
    for key in ("from", "caller", "from_e164", "email", "from_email"):
        if isinstance(attributes.get(key), str):
            return attributes[key]
    return None


def _queue_label(desk_config: Any, name: str | None) -> dict[str, str] | None:
    if name is None:
        return None
    for queue in desk_config.routing.queues:
        if queue.name == name:
            return {"en": queue.label_en or name, "zh": queue.label_zh or name}
    return {"en": name, "zh": name}


def build_screenpop(session: Session, interaction: Interaction, desk_config: Any, *,
                    priority: int | None = None, priority_reasons: list[dict] | None = None,
                    now: datetime | None = None, viewer: str | None = None) -> dict[str, Any]:
    """The screen-pop of ``interaction`` (see the module docstring). ``priority``/``priority_reasons``
    come from the offer when there is one, else from the interaction. Reads only; never raises for a
    customer deleted since (the pop shows the contact as unknown)."""
    now = now or utcnow()
    customer = None
    if interaction.customer_id is not None:
        try:
            customer = customer_360(session, interaction.customer_id,
                                    attribute_defs=list(desk_config.crm.custom_attributes),
                                    interactions_limit=_INTERACTION_LIMIT, orders_limit=_ORDER_LIMIT,
                                    actor=viewer, via="screenpop")
        except CustomerNotFound:
            customer = None
    if customer is not None:  # the contact itself is in the 360's history; the agent wants the others
        customer["interactions"] = [i for i in customer["interactions"] if i["id"] != interaction.id]
    waited_from = interaction.routing_age_origin or interaction.created_at
    return {
        "interaction": {
            "id": interaction.id, "channel": interaction.channel, "direction": interaction.direction,
            "state": interaction.state, "queue": interaction.queue,
            "queue_label": _queue_label(desk_config, interaction.queue), "language": interaction.language,
            "subject": interaction.subject, "created_at": _iso(interaction.created_at),
            "waited_s": max(0, int((now - waited_from).total_seconds())),
        },
        "identification": identification(customer and customer["customer"], _caller(interaction)),
        "customer": customer,
        "ivr": summarise_ivr(interaction.attributes or {}, _ivr_facts(session, interaction.id)),
        "priority": explain_priority(interaction.priority if priority is None else priority,
                                     interaction.priority_reasons if priority_reasons is None else priority_reasons),
    }
