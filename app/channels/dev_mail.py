"""The mail simulator at /dev/mail: plays the customer's mail client for demos without a mail server.

What it sends goes through the same ingest as the HTTP door for mail servers (``ingest_raw``: stored
raw first, parsed, threaded, acknowledged, routed), so a newcomer sees the email channel work end to
end: write to the desk, watch the case reach an agent's console, read the acknowledgement and the
agent's reply here (the recording transport keeps what the desk sends), answer it and see the answer
land in the same case. Only served while dev tools are enabled, to signed-in staff.
"""
from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage as MimeMessage
from email.utils import format_datetime, formataddr, getaddresses, make_msgid

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from app.auth.models import Role
from app.auth.roles import role_required
from app.channels.email.config import EmailConfig, Mailbox
from app.channels.email.ingest import ingest_raw
from app.channels.email.mailer import RecordingMailer
from app.channels.email.outbound import recording_outbox
from app.channels.email.threads import case_reference
from app.db import utcnow
from app.extensions import db

bp = Blueprint("dev_mail", __name__, url_prefix="/dev/mail")

SHOWN = 30  # the newest mails the desk sent, listed on the page
MAX_BODY_CHARS = 20_000


@bp.before_request
def _dev_tools_only():
    if not current_app.extensions["desk.settings"].dev_tools_enabled:
        abort(404)


@dataclass(frozen=True)
class SentMail:
    """A mail the desk sent, as the customer's mail client shows it."""

    index: int
    sender: str
    to: str
    reply_to: str
    subject: str
    date: str
    message_id: str
    references: str
    automatic: bool
    body: str


def _config() -> EmailConfig:
    return current_app.extensions["desk.config"].email


def _outbox() -> RecordingMailer | None:
    """What the desk sent, when it sends through the recording transport (None: a real SMTP server)."""
    return recording_outbox() if _config().smtp.transport == "recording" else None


def _sent(outbox: RecordingMailer | None) -> list[SentMail]:
    if outbox is None:
        return []
    shown = []
    for index, recorded in reversed(list(enumerate(outbox.sent))[-SHOWN:]):
        mime = recorded.message
        body = mime.get_body(preferencelist=("plain", "html"))
        shown.append(SentMail(
            index=index, sender=str(mime.get("From", "")), to=str(mime.get("To", "")),
            reply_to=str(mime.get("Reply-To", "") or mime.get("From", "")), subject=str(mime.get("Subject", "")),
            date=str(mime.get("Date", "")), message_id=str(mime.get("Message-ID", "")),
            references=str(mime.get("References", "")), automatic="Auto-Submitted" in mime,
            body=body.get_content() if body is not None else ""))
    return shown


def compose(*, sender: str, sender_name: str, to: str, subject: str, body: str, in_reply_to: str = "",
            references: str = "") -> bytes:
    """The raw message a mail client would send: a fresh Message-ID, and the threading headers of the
    mail it answers."""
    mime = MimeMessage()
    mime["From"] = formataddr((sender_name, sender)) if sender_name else sender
    mime["To"] = to
    mime["Subject"] = subject
    mime["Date"] = format_datetime(utcnow())
    mime["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1])
    if in_reply_to:
        mime["In-Reply-To"] = in_reply_to
        mime["References"] = f"{references} {in_reply_to}".strip()
    mime.set_content(body, charset="utf-8")
    return mime.as_bytes()


def _mailbox_for(address: str) -> Mailbox:
    """The mailbox a recipient address reaches: its own address or an alias, else (a ``reply+`` address
    or anything else) the mailbox on that domain, else the first."""
    mailboxes = _config().mailboxes
    address = address.lower()
    for mailbox in mailboxes:
        if address == mailbox.address or address in (alias.lower() for alias in mailbox.aliases):
            return mailbox
    domain = address.rpartition("@")[2]
    return next((m for m in mailboxes if m.address.endswith("@" + domain)), mailboxes[0])


@bp.get("")
@role_required(Role.AGENT)
def page():
    outbox = _outbox()
    sent = _sent(outbox)
    answering = None
    reply = request.args.get("reply", "")
    if reply.isdigit():
        answering = next((mail for mail in sent if mail.index == int(reply)), None)
    draft = {"sender": request.args.get("sender", "customer@example.com"), "name": request.args.get("name", ""),
             "to": _config().mailboxes[0].address if _config().mailboxes else "", "subject": "", "body": "",
             "in_reply_to": "", "references": ""}
    if answering is not None:
        recipients = [address for _, address in getaddresses([answering.to]) if address]
        quoted = "\n".join(f"> {line}" for line in answering.body.splitlines())
        draft.update(sender=recipients[0] if recipients else draft["sender"], to=answering.reply_to,
                     subject=answering.subject if answering.subject.lower().startswith("re:")
                     else f"Re: {answering.subject}", body=f"\n\n{quoted}\n", in_reply_to=answering.message_id,
                     references=answering.references)
    return render_template("dev_mail/mail.html", sent=sent, draft=draft, recording=outbox is not None,
                           mailboxes=_config().mailboxes)


@bp.post("/send")
@role_required(Role.AGENT)
def send():
    form = request.form
    sender = form.get("sender", "").strip()
    to = form.get("to", "").strip()
    subject, body = form.get("subject", "").strip(), form.get("body", "")
    if not _config().mailboxes:
        flash(_("No mailbox is configured (email.mailboxes)."))
        return redirect(url_for("dev_mail.page"))
    if "@" not in sender or "@" not in to or not subject or len(body) > MAX_BODY_CHARS:
        flash(_("Give a sender and recipient address, a subject, and a body of at most %(n)d characters.",
                n=MAX_BODY_CHARS))
        return redirect(url_for("dev_mail.page", sender=sender))
    raw = compose(sender=sender, sender_name=form.get("name", "").strip(), to=to, subject=subject, body=body,
                  in_reply_to=form.get("in_reply_to", "").strip(), references=form.get("references", "").strip())
    result = ingest_raw(db.session, current_app.extensions["desk.config"], _mailbox_for(to).name, raw,
                        source="http", secret=current_app.config["SECRET_KEY"])
    if result.status == "duplicate":
        flash(_("The desk already had this message."))
    elif result.status == "quarantined":
        flash(_("The desk quarantined this message: %(reason)s.", reason=result.reason))
    else:  # stored: on a case (a bounce matched to its case included; one that matches none is quarantined)
        case = case_reference(result.interaction_id or 0)
        flash(_("Delivered: a new case, %(case)s.", case=case) if result.new_case
              else _("Delivered to case %(case)s.", case=case))
    return redirect(url_for("dev_mail.page", sender=sender))
