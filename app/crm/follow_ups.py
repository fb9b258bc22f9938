"""Follow-up rules (config.yaml ``crm.follow_ups``): reminders to keep in touch with valued customers.

Each due follow-up becomes a ``task`` Interaction (outbound call or email) routed to agents like any other
contact through ``queues.service.enqueue_contact``. Runs are idempotent: every task carries an
``external_ref`` naming its rule and occasion, and (channel, external_ref) is unique, so a re-run the same
day, or a second node, creates nothing twice.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from app.crm import bridges
from app.crm.config import FollowUpRule
from app.crm.models import Customer, CustomerValueSnapshot
from app.db import utcnow
from app.interactions.models import Interaction
from app.interactions.service import create_interaction
from queues.service import enqueue_contact

log = logging.getLogger(__name__)
ACTOR = "crm.follow_ups"


def due_follow_ups(session: Session, rule: FollowUpRule, *, now: datetime) -> list[tuple[int, str, dict]]:
    """(customer id, external_ref, facts for the agent) of every follow-up ``rule`` asks for now."""
    if rule.kind == "not_contacted":
        since = now - timedelta(days=rule.days)
        recent = exists(select(Interaction.id).where(Interaction.customer_id == Customer.id,
                                                     Interaction.created_at > since))
        rows = session.execute(select(Customer.id).where(Customer.tier.in_(rule.tiers), Customer.created_at <= since,
                                                         ~recent).order_by(Customer.id))
        return [(cid, f"followup:{rule.name}:{cid}:{now:%Y%m%d}", {"days_without_contact": rule.days})
                for (cid,) in rows]
    if rule.kind == "after_complaint_closed":
        closed_to = now - timedelta(days=rule.days)
        pairs = bridges.recently_closed_complaints(session, closed_to - timedelta(days=rule.days), closed_to)
        return [(cid, f"followup:{rule.name}:complaint:{complaint_id}", {"complaint_id": complaint_id})
                for complaint_id, cid in pairs]
    rows = session.execute(select(CustomerValueSnapshot.customer_id, CustomerValueSnapshot.peak_tier,
                                  CustomerValueSnapshot.last_order_at)
                           .where(CustomerValueSnapshot.stage == "lapsed",
                                  CustomerValueSnapshot.peak_tier.in_(rule.tiers))
                           .order_by(CustomerValueSnapshot.customer_id))
    # One follow-up per lapse: the occasion is the last order's day, unchanged until they buy again.
    return [(cid, f"followup:{rule.name}:{cid}:{last:%Y%m%d%H%M%S}" if last else f"followup:{rule.name}:{cid}",
             {"was_tier": peak}) for cid, peak, last in rows]


def run_follow_ups(session: Session, desk_config: Any, *, now: datetime | None = None) -> list[Interaction]:
    """Create (and route) the task Interactions every rule asks for. Does not commit."""
    now = now or utcnow()
    created: list[Interaction] = []
    for rule in desk_config.crm.follow_ups:
        for customer_id, ref, facts in due_follow_ups(session, rule, now=now):
            if session.scalar(select(Interaction.id).where(Interaction.channel == "task",
                                                           Interaction.external_ref == ref)):
                continue
            customer = session.get(Customer, customer_id)
            task = create_interaction(
                session, channel="task", direction="outbound", actor=ACTOR, external_ref=ref,
                customer_id=customer_id, language=customer.language, subject=rule.subject_en if customer.language
                != "zh" else rule.subject_zh, at=now,
                attributes={"follow_up": rule.name, "action": rule.action, "subject_en": rule.subject_en,
                            "subject_zh": rule.subject_zh, "tier": customer.tier, **facts})
            _route(session, task, rule, desk_config, now)
            created.append(task)
    return created


def _route(session: Session, task: Interaction, rule: FollowUpRule, desk_config: Any, now: datetime) -> None:
    queue = rule.queue or next((q.name for q in desk_config.routing.queues if "task" in q.channels), None)
    if queue is None:
        log.warning("follow-up %s: no queue takes tasks; task %s waits unrouted", rule.name, task.id)
        return
    enqueue_contact(session, task, queue, actor=ACTOR, now=now, config=desk_config.routing)
