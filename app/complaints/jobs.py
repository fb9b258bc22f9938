"""Background jobs for complaints. Each takes ids, runs inside the worker's app context with its own
session, and is idempotent: running it twice has the effect of running it once."""
from __future__ import annotations

import logging

import click
from flask.cli import AppGroup

from app.complaints import flows
from app.extensions import db

log = logging.getLogger(__name__)
complaints_cli = AppGroup("complaints", help="Complaint housekeeping.")


def issue_compensation_job(proposal_id: int) -> int | None:
    """Issue an approved proposal once; returns the issuance id."""
    issuance = flows.issue(db.session, proposal_id)
    return issuance.id if issuance else None


def check_sla_job(complaint_id: int) -> int:
    """Raise the SLA alerts now due on one complaint and schedule the next check."""
    return flows.check_sla(db.session, complaint_id)


def sweep_sla_job() -> int:
    """Raise every SLA alert now due on any open complaint."""
    return flows.sweep_sla(db.session)


@complaints_cli.command("sweep")
def sweep_command() -> None:
    """Raise SLA alerts now due (run from cron or after a Redis outage)."""
    click.echo(f"alerts raised: {sweep_sla_job()}")
