"""``flask routing replay``: the dry run of a changed routing configuration."""
from __future__ import annotations

import json
from datetime import timedelta

import click
import pytest

from app.db import utcnow
from app.interactions.service import transition
from queues import cli, service
from queues.config import QueueConfig, RoutingConfig, SkillRequirement
from queues.simulation import SimAgent
from tests.factories import make_interaction, make_staff

NEW = """
routing:
  queues:
    - name: general
      channels: [voice, chat, email, task]
      skills: [{skill: general, min_level: 1}]
    - name: billing
      channels: [voice]
      skills: [{skill: billing, min_level: 1}]
"""


def test_replay_of_recorded_traffic_prints_both_configurations(app, db_session, tmp_path):
    staff = make_staff(db_session, skills={"general": 5})
    start = utcnow() - timedelta(hours=1)
    for n in range(3):
        at = start + timedelta(minutes=3 * n)
        interaction = make_interaction(db_session, at=at)
        interaction.queue = "general"
        transition(db_session, interaction, "queued", actor="t", data={"queue": "general"}, at=at)
        interaction.agent_id = staff.id
        transition(db_session, interaction, "offered", actor="router", at=at + timedelta(seconds=5))
        transition(db_session, interaction, "connected", actor="agent", at=at + timedelta(seconds=10))
        transition(db_session, interaction, "wrap_up", actor="agent", at=at + timedelta(seconds=70))
    db_session.commit()
    path = tmp_path / "new.yaml"
    path.write_text(NEW)
    result = app.test_cli_runner().invoke(args=["routing", "replay", "--config", str(path), "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines() if line.startswith('{"source"')]
    general = next(r for r in rows if r["queue"] == "general")
    assert general["source"] == "recorded"
    assert general["current"]["contacts"] == 3 and general["new"]["contacts"] == 3
    assert general["new"]["service_level"] == 1.0
    assert next(r for r in rows if r["queue"] == "vip")["new"] is None


def test_replay_simulates_when_nothing_was_recorded_and_speaks_chinese(app, tmp_path):
    path = tmp_path / "new.yaml"
    path.write_text(NEW)
    result = app.test_cli_runner().invoke(args=["routing", "replay", "--config", str(path), "--hours", "1",
                                                "--lang", "zh"])
    assert result.exit_code == 0, result.output
    assert "模拟" in result.output and "general" in result.output


@pytest.mark.parametrize("text, problem", [
    ("routing: [1, 2]", "no routing section"),
    ("routing:\n  offer_lease_s: -1\n", "routing.offer_lease_s"),
    ("routing: {queues: [{name: a}, {name: a}]}", "unique"),
])
def test_a_bad_config_is_refused_with_the_key(tmp_path, text, problem):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(click.BadParameter, match=problem):
        cli.load_routing_config(path)


def test_compare_counts_offers_per_queue():
    config = RoutingConfig(queues=[QueueConfig(name="general", skills=[SkillRequirement(skill="general")])])
    arrivals = cli.simulated_traffic(config, hours=1, per_hour=20, seed=3)
    rows = cli.compare(config, config, [SimAgent(1, {"general": 5}), SimAgent(2, {"general": 5})], arrivals)
    assert rows[0]["current"] == rows[0]["new"] and rows[0]["current"]["offers"] > 0
    assert service.BACKOFF_CAUSES == ("reject", "no_answer", "disconnect")
