"""``flask --app app mail ...``: ingest files, poll mailboxes now, send due mail."""
from __future__ import annotations

import json
import sys
from contextlib import closing
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from app.extensions import db

INGEST_BATCH = 50  # messages per transaction for ``mail ingest`` (like an IMAP poll's batch)
mail_cli = AppGroup("mail", help="Email channel: ingest .eml files, poll IMAP mailboxes, send due mail.")


def _config():
    return current_app.extensions["desk.config"]


@mail_cli.command("ingest")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--mailbox", default=None, help="Mailbox name from config.yaml (default: the first one).")
def ingest_command(files: tuple[Path, ...], mailbox: str | None) -> None:
    """Store and process raw MIME messages (.eml files), a batch per transaction; prints one JSON line of
    counts at the end."""
    from app.channels.email.batch import RawMessage, ingest_batches

    desk_config = _config()
    if not desk_config.email.mailboxes:
        raise click.UsageError("email.mailboxes is empty in config.yaml")
    name = mailbox or desk_config.email.mailboxes[0].name
    try:
        desk_config.email.mailbox(name)
    except KeyError as exc:
        raise click.UsageError(f"unknown mailbox {name!r}") from exc
    counts = {"stored": 0, "duplicates": 0, "quarantined": 0}
    unreadable = 0

    def batches():
        nonlocal unreadable
        for start in range(0, len(files), INGEST_BATCH):
            messages = []
            for path in files[start:start + INGEST_BATCH]:
                try:
                    messages.append(RawMessage(path.read_bytes()))
                except OSError as exc:
                    click.echo(f"error: {path}: {exc.strerror}", err=True)
                    unreadable += 1
            yield messages

    with closing(ingest_batches(db.session, desk_config, name, batches(), source="cli",
                                secret=current_app.config["SECRET_KEY"])) as done:
        for results in done:
            for result in results:
                counts["duplicates" if result.status == "duplicate" else result.status] += 1
    click.echo(json.dumps(counts))
    if unreadable:
        sys.exit(1)


@mail_cli.command("poll")
@click.option("--all", "force", is_flag=True, help="Poll every IMAP mailbox now, not only those due.")
def poll_command(force: bool) -> None:
    """Poll IMAP mailboxes now; prints one JSON line per mailbox."""
    from app.channels.email.jobs import poll_due_mailboxes

    reports = poll_due_mailboxes(db.session, _config(), secret=current_app.config["SECRET_KEY"],
                                 redis=current_app.extensions.get("desk.redis"), force=force)
    for report in reports:
        click.echo(json.dumps({"mailbox": report.mailbox, "fetched": report.fetched, "stored": report.stored,
                               "duplicates": report.duplicates, "quarantined": report.quarantined,
                               "error": report.error}))


@mail_cli.command("send-due")
def send_due_command() -> None:
    """Re-enqueue scheduled mail whose send job was lost (normally done by the periodic tick)."""
    from app.channels.email.outbound import requeue_stale_outbound

    click.echo(json.dumps({"requeued": requeue_stale_outbound(db.session)}))
