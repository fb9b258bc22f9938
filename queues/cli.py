"""``flask --app app routing ...``: the routing dry run.

``routing replay --config NEW.yaml`` replays recorded traffic (the contacts queued in the last
``--days`` days, with their handle times and abandons, against today's agents and skills) — or, with
``--simulate`` or when nothing was recorded, Poisson traffic — through the current routing
configuration and through NEW.yaml's, and prints service level, ASA and offers per queue side by side.
Nothing is written: both runs drive the in-memory engine on a virtual clock (``queues.simulation``).
"""
from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click
import yaml
from flask import current_app
from flask.cli import AppGroup
from flask_babel import force_locale, gettext as _
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import utcnow
from app.extensions import db
from app.interactions.models import Interaction, InteractionEvent
from queues.config import RoutingConfig

if TYPE_CHECKING:
    from queues.simulation import Arrival, SimAgent, SimReport

routing_cli = AppGroup("routing", help="Routing: dry-run a changed queue configuration.")
DEFAULT_HANDLE_S = 240.0


def load_routing_config(path: Path) -> RoutingConfig:
    """The ``routing:`` section of a config file (a whole config.yaml, or the section alone).
    Raises click.BadParameter naming what is wrong."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise click.BadParameter(str(exc), param_hint="--config") from exc
    section = raw.get("routing", raw) if isinstance(raw, dict) else None
    if not isinstance(section, dict):
        raise click.BadParameter("no routing section", param_hint="--config")
    try:
        return RoutingConfig.model_validate(section)
    except ValidationError as exc:
        problems = "; ".join(f"routing.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise click.BadParameter(problems, param_hint="--config") from exc


def desk_agents(session: Session) -> list[SimAgent]:
    """Today's active agents with their skills and capacity group."""
    from app.auth.models import StaffUser
    from queues.simulation import SimAgent

    staff = session.scalars(select(StaffUser).where(StaffUser.role == "agent", StaffUser.active.is_(True))
                            .order_by(StaffUser.id))
    return [SimAgent(s.id, s.skill_levels(), s.agent_group) for s in staff]


def recorded_traffic(session: Session, since: datetime, until: datetime) -> list[Arrival]:
    """Contacts first queued in [since, until): arrival time, queue, channel, handle time (connected to
    wrap-up, or the default when never answered) and patience (when they abandoned while waiting)."""
    rows = session.execute(select(InteractionEvent.interaction_id, InteractionEvent.to_state,
                                  InteractionEvent.occurred_at, InteractionEvent.data)
                           .join(Interaction, Interaction.id == InteractionEvent.interaction_id)
                           .where(Interaction.routing_age_origin >= since, Interaction.routing_age_origin < until,
                                  InteractionEvent.kind == "transition")
                           .order_by(InteractionEvent.interaction_id, InteractionEvent.id))
    timeline: dict[int, list[tuple[str, datetime, dict]]] = {}
    for interaction_id, to_state, at, data in rows:
        timeline.setdefault(interaction_id, []).append((to_state, at, data or {}))
    contacts = {i.id: i for i in session.scalars(select(Interaction).where(Interaction.id.in_(list(timeline))))}
    arrivals = []
    for interaction_id, steps in timeline.items():
        arrival = _arrival(contacts[interaction_id], steps, since)
        if arrival is not None:
            arrivals.append(arrival)
    return sorted(arrivals, key=lambda a: a.at_s)


def _arrival(interaction: Interaction, steps: list[tuple[str, datetime, dict]], since: datetime) -> Arrival | None:
    from queues.simulation import Arrival

    queued = next(((at, data) for state, at, data in steps if state == "queued"), None)
    if queued is None:
        return None
    first_at = {}
    for state, at, _data in steps:
        first_at.setdefault(state, at)
    queue = queued[1].get("queue") or interaction.queue
    if not queue:
        return None
    handle_s = DEFAULT_HANDLE_S
    if "connected" in first_at and "wrap_up" in first_at:
        handle_s = max(1.0, (first_at["wrap_up"] - first_at["connected"]).total_seconds())
    patience = None
    if "abandoned" in first_at and "connected" not in first_at:
        patience = max(0.0, (first_at["abandoned"] - queued[0]).total_seconds())
    skills = tuple((str(s["skill"]), int(s.get("min_level", 1))) for s in interaction.required_skills or []
                   if isinstance(s, dict) and s.get("skill"))
    return Arrival((queued[0] - since).total_seconds(), queue, interaction.channel, handle_s,
                   priority=interaction.priority or 0, required_skills=skills, patience_s=patience)


def simulated_traffic(config: RoutingConfig, *, hours: float, per_hour: float, seed: int) -> list[Arrival]:
    """Poisson arrivals for every queue and channel of ``config``."""
    from queues.simulation import poisson_arrivals

    rng = random.Random(seed)
    arrivals: list[Arrival] = []
    for queue in config.queues:
        for channel in queue.channels:
            arrivals += poisson_arrivals(rng, rate_per_s=per_hour / 3600.0, duration_s=hours * 3600.0,
                                         queue=queue.name, channel=channel, mean_handle_s=DEFAULT_HANDLE_S)
    return sorted(arrivals, key=lambda a: a.at_s)


def replay(config: RoutingConfig, agents: list[SimAgent], arrivals: list[Arrival]) -> SimReport:
    """One dry run: arrivals for queues the configuration lacks are left out (and not counted)."""
    from queues.simulation import Simulation

    known = {q.name for q in config.queues}
    return Simulation(config, agents, [a for a in arrivals if a.queue in known]).run()


def compare(current: RoutingConfig, new: RoutingConfig, agents: list[SimAgent],
            arrivals: list[Arrival]) -> list[dict]:
    """Per queue (both configurations' queues), the figures of each run side by side."""
    before, after = replay(current, agents, arrivals), replay(new, agents, arrivals)
    names = list(dict.fromkeys([q.name for q in current.queues] + [q.name for q in new.queues]))
    rows = []
    for name in names:
        row = {"queue": name}
        for label, report in (("current", before), ("new", after)):
            figures = report.queues.get(name)
            row[label] = None if figures is None else {
                "contacts": figures.offered, "answered": figures.answered, "abandoned": figures.abandoned,
                "overflowed": figures.overflowed, "offers": figures.offers,
                "service_level": round(figures.service_level, 4), "asa_s": round(figures.asa_s, 1)}
        rows.append(row)
    return rows


def _cell(figures: dict | None) -> str:
    if figures is None:
        return f"{'-':>7} {'-':>8} {'-':>7}"
    return f"{figures['service_level'] * 100:6.1f}% {figures['asa_s']:7.1f}s {figures['offers']:>7}"


@routing_cli.command("replay")
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A config file with the changed routing section.")
@click.option("--days", default=7, show_default=True, help="Replay contacts queued in the last N days.")
@click.option("--simulate", is_flag=True, help="Use simulated Poisson traffic instead of recorded contacts.")
@click.option("--per-hour", default=30.0, show_default=True, help="Simulated arrivals per hour per queue and channel.")
@click.option("--hours", default=8.0, show_default=True, help="Simulated hours.")
@click.option("--seed", default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON line per queue.")
@click.option("--lang", type=click.Choice(["en", "zh"]), default="en", show_default=True)
def replay_command(config_path: Path, days: int, simulate: bool, per_hour: float, hours: float, seed: int,
                   as_json: bool, lang: str) -> None:
    """Replay traffic through NEW.yaml's routing beside the current one (nothing is written)."""
    current = current_app.extensions["desk.config"].routing
    new = load_routing_config(config_path)
    agents = desk_agents(db.session)
    now = utcnow()
    arrivals = [] if simulate else recorded_traffic(db.session, now - timedelta(days=days), now)
    source = "recorded"
    if not arrivals:
        arrivals, source = simulated_traffic(current, hours=hours, per_hour=per_hour, seed=seed), "simulated"
    if not agents:  # nobody on the desk yet: one agent per queue with every skill, so queues still drain
        from queues.simulation import SimAgent

        skills = {req.skill: 10 for cfg in (current, new) for q in cfg.queues for req in q.skills}
        agents = [SimAgent(n, dict(skills)) for n in range(1, len(new.queues) + 1)]
    rows = compare(current, new, agents, arrivals)
    if as_json:
        for row in rows:
            click.echo(json.dumps({"source": source, **row}))
        return
    with force_locale(lang):
        click.echo(_("%(count)d contacts (%(source)s), %(agents)d agents", count=len(arrivals),
                     source=_("recorded") if source == "recorded" else _("simulated"), agents=len(agents)))
        click.echo(f"{_('Queue'):<16} | {_('Current'):^25} | {_('New'):^25}")
        heading = f"{_('SL'):>7} {_('ASA'):>8} {_('Offers'):>7}"
        click.echo(f"{'':<16} | {heading} | {heading}")
        for row in rows:
            click.echo(f"{row['queue']:<16} | {_cell(row['current'])} | {_cell(row['new'])}")
