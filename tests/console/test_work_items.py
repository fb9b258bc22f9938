"""Work items the fan-out builds from a contact's move: one read, and the same item the full build gives."""
from __future__ import annotations

from agent_console import payloads
from agent_console.namespace import fan_out
from app.interactions.service import transition
from tests.factories import make_customer, make_interaction, make_staff
from tests.statements import sent_statements


def _connected(session, agent, customer):
    interaction = make_interaction(session, channel="voice", customer=customer)
    interaction.agent_id = agent.id
    transition(session, interaction, "queued", actor="t")
    transition(session, interaction, "offered", actor="t")
    moved = transition(session, interaction, "connected", actor="t", reason="offer accepted")
    session.commit()
    return interaction, {"id": interaction.id, "to": "connected", "at": moved.occurred_at.isoformat()}


def test_a_connected_contact_is_read_in_one_statement_and_matches_the_full_build(db_session, desk_config):
    agent = make_staff(db_session, agent_group="default")
    interaction, moved = _connected(db_session, agent, make_customer(db_session, name="Mei Lin"))
    interaction_id, agent_id = interaction.id, agent.id
    db_session.expire_all()

    sent = sent_statements(db_session, lambda: payloads.moved_work_item(
        db_session, interaction_id, agent_id, moved, desk_config, with_screenpop=False))
    assert len(sent) == 1
    item = payloads.moved_work_item(db_session, interaction_id, agent_id, moved, desk_config, with_screenpop=False)
    full = payloads.work_item(db_session, db_session.get(type(interaction), interaction_id), desk_config,
                              with_screenpop=False)
    assert item == full and item.customer_name == "Mei Lin" and item.connected_at is not None


def test_a_contact_that_moved_on_is_read_in_full_and_someone_elses_is_none(db_session, desk_config):
    agent, other = make_staff(db_session), make_staff(db_session)
    interaction, moved = _connected(db_session, agent, make_customer(db_session))
    transition(db_session, interaction, "wrap_up", actor="t")
    db_session.commit()

    item = payloads.moved_work_item(db_session, interaction.id, agent.id, moved, desk_config)
    assert item.state == "wrap_up" and item.wrap_up_started_at and item.connected_at
    assert payloads.moved_work_item(db_session, interaction.id, other.id, moved, desk_config) is None
    assert payloads.moved_work_item(db_session, 10**9, agent.id, moved, desk_config) is None


def test_a_contact_moved_in_and_out_of_open_work_by_one_commit_gets_no_work_item(monkeypatch):
    queued = []
    monkeypatch.setattr("agent_console.namespace._fan_out_one", lambda name, payload: queued.append((name, payload)))
    fan_out([("interaction.state", {"id": 7, "from": "connected", "to": "wrap_up", "agent_id": 3}),
             ("agent.presence", {"agent_id": 3, "presence": "available"}),
             ("interaction.state", {"id": 7, "from": "wrap_up", "to": "closed", "agent_id": 3}),
             ("interaction.state", {"id": 8, "from": "offered", "to": "connected", "agent_id": 3})])
    assert [(name, payload.get("to")) for name, payload in queued] == [
        ("agent.presence", None), ("interaction.state", "closed"), ("interaction.state", "connected")]
