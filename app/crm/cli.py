"""``flask --app app crm ...``: value recomputation, follow-ups, CSV import/export, API tokens."""
from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import AppGroup

from app.extensions import db

crm_cli = AppGroup("crm", help="Customers: value, follow-ups, CSV import/export, API tokens.")


def _config():
    return current_app.extensions["desk.config"]


@crm_cli.command("recompute")
def recompute_command() -> None:
    """Recompute every customer's value now (in this process) and print the pyramid."""
    from app.crm.jobs import recompute_values

    run = recompute_values(db.session, _config(), trigger="on_demand")
    click.echo(f"run {run.id}: {run.customers} customers")
    for row in run.pyramid["rows"]:
        click.echo(f"  {row['tier']:<9} {row['customers']:>7} customers  {row['revenue_share'] * 100:5.1f}% of revenue")
    click.echo("  " + run.pyramid["reasons"][0]["en"])


@crm_cli.command("follow-ups")
def follow_ups_command() -> None:
    """Create the follow-up tasks the rules in config.yaml ask for today."""
    from app.crm.follow_ups import run_follow_ups

    tasks = run_follow_ups(db.session, _config())
    db.session.commit()
    click.echo(f"{len(tasks)} follow-up task(s) created")


def _print_report(report) -> None:
    click.echo(f"{report.rows} rows: {report.imported} imported, {report.rejected} rejected "
               f"({report.batches} batch(es))")
    for line in report.error_lines():
        click.echo("  " + line)


@crm_cli.command("import-customers")
@click.argument("path", type=click.File("r", encoding="utf-8-sig"))
def import_customers_command(path) -> None:
    """Import customers from a CSV file; prints a report line for every rejected row."""
    from app.crm.csv_io import import_customers

    report = import_customers(db.session, path, _config().crm)
    _print_report(report)
    sys.exit(1 if report.problems else 0)


@crm_cli.command("import-orders")
@click.argument("path", type=click.File("r", encoding="utf-8-sig"))
def import_orders_command(path) -> None:
    """Import orders from a CSV file; dates without an offset are in the desk's time zone."""
    from app.crm.csv_io import import_orders

    config = _config()
    report = import_orders(db.session, path, config.crm, zone=config.desk.timezone, currency=config.desk.currency)
    _print_report(report)
    sys.exit(1 if report.problems else 0)


@crm_cli.command("export-customers")
def export_customers_command() -> None:
    """Write every customer as CSV to standard output."""
    from app.crm.csv_io import export_customers

    for chunk in export_customers(db.session, _config().crm):
        click.echo(chunk, nl=False)


@crm_cli.command("export-orders")
def export_orders_command() -> None:
    """Write every order as CSV to standard output."""
    from app.crm.csv_io import export_orders

    for chunk in export_orders(db.session):
        click.echo(chunk, nl=False)


@crm_cli.command("token-create")
@click.argument("name")
@click.option("--scope", "scopes", multiple=True, required=True, help="repeat: customers:read, orders:write, ...")
def token_create_command(name: str, scopes: tuple[str, ...]) -> None:
    """Create an API token for an integration; the secret is printed once."""
    from app.auth.tokens import issue_token

    try:
        token, secret = issue_token(db.session, name=name, scopes=list(scopes))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    db.session.commit()
    click.echo(f"token {token.id} ({', '.join(token.scopes)}): {secret}")
    click.echo("Store it now: it is not shown again.")


@crm_cli.command("token-revoke")
@click.argument("token_id", type=int)
def token_revoke_command(token_id: int) -> None:
    """Revoke an API token by id."""
    from app.auth.tokens import revoke_token

    if not revoke_token(db.session, token_id):
        raise click.UsageError(f"no live token {token_id}")
    db.session.commit()
    click.echo(f"token {token_id} revoked")
