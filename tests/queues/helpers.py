"""Helpers shared by the router tests: agents, queued contacts, pending offers."""
from __future__ import annotations

from sqlalchemy import select

from queues import service
from queues.models import Offer
from tests.factories import make_interaction, make_staff


def agent(session, skills=None, presence="available", **extra):
    staff = make_staff(session, skills=skills or {"general": 5}, **extra)
    service.set_presence(session, staff.id, presence)
    session.commit()
    return staff


def queued(session, queue="general", channel="voice", now=None, **extra):
    interaction = make_interaction(session, channel=channel, **extra)
    service.enqueue_contact(session, interaction, queue, actor="test", now=now)
    session.commit()
    return interaction


def pending(session, **where):
    session.expire_all()
    query = select(Offer).where(Offer.status == "pending")
    for key, value in where.items():
        query = query.where(getattr(Offer, key) == value)
    return list(session.scalars(query.order_by(Offer.id)))
