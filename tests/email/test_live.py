"""A customer's email on a case an agent holds is announced (``email.message``) only after the ingest
commits, only to that agent, and only for mail that landed on the case."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app import realtime
from app.channels.email import live
from app.channels.email.models import EmailMessage
from app.interactions.models import Interaction
from tests.chat.conftest import connect_agent
from tests.email.conftest import build_mail
from tests.factories import make_staff


@pytest.fixture()
def announced():
    seen: list[dict] = []

    def listener(name, payload):
        if name == live.EVENT:
            seen.append(payload)

    realtime.subscribe(listener)
    yield seen
    realtime.unsubscribe(listener)


def _ack(db_session, interaction_id: int) -> EmailMessage:
    return db_session.scalar(select(EmailMessage).where(EmailMessage.interaction_id == interaction_id,
                                                        EmailMessage.kind == "ack"))


def test_a_reply_on_a_held_case_is_announced_to_its_agent(ingest, db_session, outbox, announced):
    agent = make_staff(db_session)
    db_session.commit()
    first = ingest(build_mail(body="My order has not arrived."))
    assert announced == []  # a new case is offered, not announced
    connect_agent(db_session, db_session.get(Interaction, first.interaction_id), agent)

    result = ingest(build_mail(subject="Re: Help please", in_reply_to=_ack(db_session, first.interaction_id)
                               .message_id, body="Any news?"))
    assert result.interaction_id == first.interaction_id
    [event] = announced
    stored = db_session.scalar(select(EmailMessage).where(EmailMessage.inbound_id == result.inbound_id))
    assert (event["interaction_id"], event["agent_id"]) == (first.interaction_id, agent.id)
    assert event["message"]["id"] == stored.id and event["message"]["text"].strip() == "Any news?"
    assert event["message"]["direction"] == "in" and event["message"]["kind"] == "customer"


def test_nothing_is_announced_for_a_case_nobody_holds_or_a_rolled_back_ingest(ingest, db_session, outbox,
                                                                               announced):
    agent = make_staff(db_session)
    db_session.commit()
    first = ingest(build_mail(body="My order has not arrived."))
    reply = build_mail(subject="Re: Help please", in_reply_to=_ack(db_session, first.interaction_id).message_id,
                       body="Hello?")
    ingest(reply)  # queued, no agent yet
    assert announced == []

    interaction = db_session.get(Interaction, first.interaction_id)
    connect_agent(db_session, interaction, agent)
    message = db_session.scalars(select(EmailMessage).where(EmailMessage.interaction_id == interaction.id,
                                                            EmailMessage.direction == "in")).first()
    live.announce_inbound(db_session, interaction, message)
    db_session.rollback()
    assert announced == []  # the event dies with the transaction
    live.announce_inbound(db_session, db_session.get(Interaction, first.interaction_id), message)
    db_session.commit()
    assert [e["message"]["id"] for e in announced] == [message.id]


def test_a_batch_announces_each_reply_once_and_nothing_for_a_quarantined_one(ingest, desk, db_session, outbox,
                                                                             announced):
    from app.channels.email.batch import RawMessage, ingest_many
    from tests.email.conftest import SECRET

    agent = make_staff(db_session)
    db_session.commit()
    first = ingest(build_mail(body="My order has not arrived."))
    connect_agent(db_session, db_session.get(Interaction, first.interaction_id), agent)
    parent = _ack(db_session, first.interaction_id).message_id
    batch = [RawMessage(build_mail(subject="Re: Help please", in_reply_to=parent, body=f"Note {n}")) for n in (1, 2)]
    batch.insert(1, RawMessage(b"\x00" * 10 + b"not a mail at all"))
    results = ingest_many(db_session, desk, "support", batch, source="imap", secret=SECRET)
    assert [r.status for r in results] == ["stored", "quarantined", "stored"]
    assert [e["message"]["text"].strip() for e in announced] == ["Note 1", "Note 2"]
    assert {e["agent_id"] for e in announced} == {agent.id}
