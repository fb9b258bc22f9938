"""Write the fixed scenario (tests/reports/scenario.py) into the database through the real services."""
from __future__ import annotations

from app.complaints.models import Complaint
from app.crm.models import CustomerFeedback
from app.interactions.service import record_fact, transition
from app.reports.service import record_presence
from tests.factories import make_customer, make_interaction, make_staff
from tests.reports import scenario as sc


def build_scenario(session) -> dict:
    """Returns {"agents": {name: StaffUser}, "customers": {...}, "interactions": {ref: Interaction}}."""
    agents = {name: make_staff(session, name=name.title(), email=f"{name}@test.desk") for name in ("ann", "bob")}
    customers = {name: make_customer(session, name=f"Customer {name}") for name in ("A", "B", "C")}
    interactions = {}
    for c in sc.CONTACTS:
        customer = customers.get(c.customer) if c.customer else None
        it = make_interaction(session, channel=c.channel, customer=customer, at=sc.at(c.created_s))
        it.queue = c.queue
        for step in c.steps:
            if step.kind in ("hold", "unhold"):
                record_fact(session, it, step.kind, actor="agent:x", at=sc.at(step.at_s))
                continue
            data = {"queue": step.queue} if step.queue else {}
            actor = "router"
            if step.agent:
                it.agent_id = agents[step.agent].id
                data["agent_id"] = it.agent_id
                actor = f"agent:{it.agent_id}"
            transition(session, it, step.kind, actor=actor, data=data, at=sc.at(step.at_s))
        interactions[c.ref] = it
    for ref, score, offset in sc.SURVEYS:
        it = interactions[ref]
        session.add(CustomerFeedback(customer_id=it.customer_id, kind="csat", score=score, interaction_id=it.id,
                                     recorded_at=sc.at(offset)))
    session.add(CustomerFeedback(customer_id=customers["A"].id, kind="nps", score=2, recorded_at=sc.at(1000)))
    for n, (ref, offset) in enumerate(sc.COMPLAINTS):
        it = interactions[ref]
        when = sc.at(offset)
        session.add(Complaint(reference=f"CMP-{n}", channel=it.channel, interaction_id=it.id,
                              customer_id=it.customer_id, category="billing", description="test", currency="CNY",
                              level="P3", received_at=when, resolve_clock_started_at=when,
                              regulatory_profile="default", acknowledge_due_at=when, resolve_due_at=when))
    for name, presence, start, _end in sc.PRESENCE:
        record_presence(session, agents[name].id, presence, at=sc.at(start))
        session.flush()
    # both agents sign off at the end of their last span
    record_presence(session, agents["ann"].id, "offline", at=sc.at(1990))
    record_presence(session, agents["bob"].id, "offline", at=sc.at(2140))
    session.commit()
    return {"agents": agents, "customers": customers, "interactions": interactions}
