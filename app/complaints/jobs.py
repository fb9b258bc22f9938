"""Background jobs for complaints. Each takes ids, runs inside the worker's app context with its own
session, and is idempotent: running it twice has the effect of running it once."""
from __future__ import annotations

import logging

import click
from flask.cli import AppGroup

from app.complaints import flows, notices
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
    """Periodic: raise every SLA alert now due on any open complaint, then re-enqueue notices whose
    delivery job was lost (the sweep that makes the outbox survive a Redis restart)."""
    raised = flows.sweep_sla(db.session)
    notices.requeue_stale(db.session)
    return raised


@complaints_cli.command("sweep")
def sweep_command() -> None:
    """Raise SLA alerts now due (run from cron or after a Redis outage)."""
    click.echo(f"alerts raised: {sweep_sla_job()}")
