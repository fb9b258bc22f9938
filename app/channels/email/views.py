"""HTTP glue for the email channel: the raw-MIME endpoint for mail servers, the staff case view
(sanitised mail, attachments, reply with undo), and the admin pages (quarantine, templates, mailboxes).
Thin: check access, call one service function, render or return JSON."""
from __future__ import annotations

import hmac

from flask import (
    Blueprint, Response, abort, current_app, flash, jsonify, redirect, render_template, request, url_for,
)
from flask_babel import format_datetime, get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from app.audit.service import record
from app.auth.models import Role
from app.auth.roles import current_staff, role_required
from app.channels.email import canned, outbound, quarantine, templates
from app.channels.email.access import can_access_case
from app.channels.email.attachments import AttachmentUnavailable, attachment_content
from app.channels.email.ingest import ingest_raw
from app.channels.email.models import (
    EmailAttachment, EmailMessage, EmailThread, InboundEmail, MailboxPollState, UndeliverableAddress,
)
from app.channels.email.sanitize import sanitise_html
from app.channels.email.threads import case_reference
from app.crm.labels import LABELS
from app.i18n import reader_language
from app.extensions import csrf, db
from app.interactions.models import Interaction

bp = Blueprint("email", __name__)
SAFE_INLINE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}
MAX_REPLY_CHARS = 100_000


def _desk():
    return current_app.extensions["desk.config"]


def _secret() -> str:
    return current_app.config["SECRET_KEY"]


# --- the door for mail servers -----------------------------------------------------------------------

def _presented_secret() -> str:
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("X-Desk-Email-Secret", "")


@bp.post("/api/email/inbound/<mailbox>")
@csrf.exempt
def inbound(mailbox: str):
    """Raw MIME in the body (message/rfc822), shared secret as a bearer token. 202 stored or
    quarantined (both kept), 200 duplicate."""
    expected = _desk().email.inbound_secret.resolve()
    if not expected:
        return jsonify(error="not_configured", message="email.inbound_secret is not set"), 503
    if not hmac.compare_digest(_presented_secret().encode(), expected.encode()):
        return jsonify(error="unauthorized", message="bad or missing shared secret"), 401
    try:
        _desk().email.mailbox(mailbox)
    except KeyError:
        return jsonify(error="unknown_mailbox", message=f"no mailbox {mailbox!r}"), 404
    raw = request.get_data(cache=False)
    if not raw.strip():
        return jsonify(error="empty", message="the request body must be the raw message"), 400
    result = ingest_raw(db.session, _desk(), mailbox, raw, source="http", secret=_secret())
    body = {"status": result.status, "id": result.inbound_id, "interaction_id": result.interaction_id,
            "reason": result.reason}
    return jsonify(body), 200 if result.status == "duplicate" else 202


# --- staff: the case -------------------------------------------------------------------------------

# An outbound message's ``status`` as the case page names it.
MESSAGE_STATUS_LABELS = {"scheduled": _l("scheduled"), "sending": _l("sending"), "sent": _l("sent"),
                         "cancelled": _l("cancelled"), "failed": _l("failed"), "bounced": _l("bounced")}


def _queue_name(queue: str | None) -> str:
    """The queue's label in the reader's language, else its name (a queue no longer configured)."""
    return next((q.label(reader_language()) for q in _desk().routing.queues if q.name == queue), queue or "-")


def _require_case(interaction_id: int) -> EmailThread:
    staff = current_staff()
    thread = db.session.scalar(select(EmailThread).where(EmailThread.interaction_id == interaction_id))
    if thread is None:
        abort(404)
    if not can_access_case(db.session, staff, interaction_id):
        abort(403)
    return thread


def _message_view(message: EmailMessage) -> dict:
    cid_urls = {a.content_id: url_for("email.attachment", attachment_id=a.id)
                for a in message.attachments if a.content_id and a.withheld is None}
    safe = sanitise_html(message.html_body, allow_remote_images=message.images_allowed, cid_urls=cid_urls) \
        if message.html_body else None
    return {
        "id": message.id, "direction": message.direction, "kind": message.kind, "status": message.status,
        "from": message.from_address, "from_name": message.from_name, "to": message.to, "cc": message.cc,
        "subject": message.subject, "text": message.text_body, "html": safe.html if safe else None,
        "blocked_images": safe.blocked_images if safe else 0, "images_allowed": message.images_allowed,
        "automatic": message.is_automatic, "details": message.details or {},
        "at": (message.sent_at or message.created_at).isoformat(),
        "send_after": message.send_after.isoformat() if message.send_after else None,
        "last_error": message.last_error,
        "attachments": [{"id": a.id, "filename": a.filename, "content_type": a.content_type,
                         "size_bytes": a.size_bytes, "withheld": a.withheld, "inline": a.inline,
                         "url": url_for("email.attachment", attachment_id=a.id) if a.withheld is None else None}
                        for a in message.attachments],
    }


@bp.get("/email/cases/<int:interaction_id>")
@role_required(Role.AGENT)
def case_page(interaction_id: int):
    thread = _require_case(interaction_id)
    interaction = db.session.get(Interaction, interaction_id)
    messages = [dict(_message_view(m), when=format_datetime(m.sent_at or m.created_at, "yyyy-MM-dd HH:mm"))
                for m in thread.messages]  # in the reader's time zone
    undeliverable = db.session.scalar(select(UndeliverableAddress).where(
        UndeliverableAddress.address == thread.customer_address))
    strings = {"sending_in": _("Sending in %(seconds)s s", seconds="{s}"), "undo": _("Undo"),
               "cancelled": _("Reply cancelled."), "sent": _("Reply sent."), "failed": _("Could not send: "),
               "too_late": _("Too late to cancel: the reply has gone.")}
    response = Response(render_template(
        "email/case.html", thread=thread, interaction=interaction, messages=messages,
        reference=case_reference(interaction_id), undeliverable=undeliverable, strings=strings,
        undo_window_s=_desk().email.outbound.undo_window_s, state_names=LABELS["state"],
        queue_name=_queue_name(interaction.queue), status_names=MESSAGE_STATUS_LABELS))
    # Defence in depth behind nh3: remote images load only for messages the agent allowed.
    if not any(m["images_allowed"] for m in messages):
        response.headers["Content-Security-Policy"] = "img-src 'self' data:; object-src 'none'; base-uri 'none'"
    return response


@bp.get("/api/email/interactions/<int:interaction_id>/messages")
@role_required(Role.AGENT)
def case_messages(interaction_id: int):
    thread = _require_case(interaction_id)
    return jsonify(reference=case_reference(interaction_id), subject=thread.subject,
                   customer_address=thread.customer_address, cc=thread.cc,
                   messages=[_message_view(m) for m in thread.messages])


@bp.post("/email/messages/<int:message_id>/allow-images")
@role_required(Role.AGENT)
def allow_images(message_id: int):
    message = db.session.get(EmailMessage, message_id) or abort(404)
    _require_case(message.interaction_id)
    message.images_allowed = True
    db.session.commit()
    return redirect(url_for("email.case_page", interaction_id=message.interaction_id) + f"#m{message.id}")


@bp.get("/email/attachments/<int:attachment_id>")
@role_required(Role.AGENT)
def attachment(attachment_id: int):
    row = db.session.get(EmailAttachment, attachment_id) or abort(404)
    message = db.session.get(EmailMessage, row.message_id)
    _require_case(message.interaction_id)
    try:
        content = attachment_content(db.session, row)
    except AttachmentUnavailable as exc:
        abort(410, description=_("This attachment was not stored (%(reason)s).", reason=exc.reason))
    inline = row.content_type in SAFE_INLINE_TYPES
    response = Response(content, mimetype=row.content_type if inline else "application/octet-stream")
    disposition = "inline" if inline else "attachment"
    response.headers["Content-Disposition"] = _disposition(disposition, row.filename)
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _disposition(kind: str, filename: str) -> str:
    from urllib.parse import quote

    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "").replace("?", "_")
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"


@bp.post("/api/email/interactions/<int:interaction_id>/replies")
@role_required(Role.AGENT)
def send_reply(interaction_id: int):
    _require_case(interaction_id)
    data = request.get_json(silent=True) or request.form
    body = str(data.get("body", "")).strip()
    cc_raw = data.get("cc") or []
    cc = [c.strip().lower() for c in (cc_raw.split(",") if isinstance(cc_raw, str) else cc_raw) if str(c).strip()]
    if not body:
        return jsonify(error="empty", message=_("Write a reply first.")), 400
    if len(body) > MAX_REPLY_CHARS or any("@" not in c or len(c) > 254 for c in cc):
        return jsonify(error="invalid", message=_("The reply is too long or a CC address is not valid.")), 400
    staff = current_staff()
    try:
        message = outbound.schedule_reply(db.session, _desk(), interaction_id, body=body, staff_id=staff.id,
                                          agent_name=staff.name, secret=_secret(), cc=cc)
    except outbound.AddressUndeliverable as exc:
        db.session.rollback()
        return jsonify(error="undeliverable",
                       message=_("%(address)s bounced permanently; change the address first.",
                                 address=exc.address)), 409
    except outbound.NoRecipient:
        db.session.rollback()
        return jsonify(error="no_recipient", message=_("This case has no address to reply to.")), 409
    db.session.commit()
    return jsonify(id=message.id, status=message.status, send_after=message.send_after.isoformat(),
                   undo_window_s=_desk().email.outbound.undo_window_s), 201


@bp.post("/api/email/outbound/<int:message_id>/cancel")
@role_required(Role.AGENT)
def cancel_reply(message_id: int):
    message = db.session.get(EmailMessage, message_id) or abort(404)
    _require_case(message.interaction_id)
    try:
        outbound.cancel_outbound(db.session, message_id, staff_id=current_staff().id)
    except outbound.TooLateToCancel:
        db.session.rollback()
        return jsonify(error="too_late", message=_("Too late to cancel: the reply has gone.")), 409
    db.session.commit()
    return jsonify(id=message_id, status="cancelled")


@bp.get("/api/email/outbound/<int:message_id>")
@role_required(Role.AGENT)
def outbound_status(message_id: int):
    message = db.session.get(EmailMessage, message_id) or abort(404)
    _require_case(message.interaction_id)
    return jsonify(id=message.id, status=message.status, last_error=message.last_error)


# --- admin: quarantine ---------------------------------------------------------------------------------

@bp.get("/admin/email/quarantine")
@role_required(Role.ADMIN)
def quarantine_list():
    rows = quarantine.list_quarantined(db.session, limit=200)
    return render_template("email/quarantine_list.html", rows=rows, reasons=quarantine.reason_labels())


@bp.get("/admin/email/quarantine/<int:inbound_id>")
@role_required(Role.ADMIN)
def quarantine_detail(inbound_id: int):
    row = db.session.get(InboundEmail, inbound_id) or abort(404)
    return render_template("email/quarantine_detail.html", row=row, headers=quarantine.header_preview(row),
                           reasons=quarantine.reason_labels())


@bp.get("/admin/email/quarantine/<int:inbound_id>/raw")
@role_required(Role.ADMIN)
def quarantine_raw(inbound_id: int):
    row = db.session.get(InboundEmail, inbound_id) or abort(404)
    response = Response(row.raw, mimetype="application/octet-stream")
    response.headers["Content-Disposition"] = f'attachment; filename="message-{row.id}.eml"'
    return response


@bp.post("/admin/email/quarantine/<int:inbound_id>/<any(retry, release):action>")
@role_required(Role.ADMIN)
def quarantine_action(inbound_id: int, action: str):
    row = db.session.get(InboundEmail, inbound_id) or abort(404)
    if row.status != "quarantined":
        flash(_("This message is no longer in the quarantine."))
        return redirect(url_for("email.quarantine_list"))
    result = quarantine.retry(db.session, _desk(), row.id, secret=_secret(),
                              staff_id=current_staff().id, release=action == "release")
    if result.status == "stored":
        flash(_("The message is now on case %(reference)s.", reference=case_reference(result.interaction_id)))
        return redirect(url_for("email.quarantine_list"))
    flash(_("Still quarantined: %(reason)s", reason=quarantine.reason_labels().get(result.reason, result.reason)))
    return redirect(url_for("email.quarantine_detail", inbound_id=inbound_id))


# --- admin: templates ----------------------------------------------------------------------------------

@bp.get("/admin/email/templates")
@role_required(Role.ADMIN)
def template_list():
    rows = [(key, lang, templates.source_of(db.session, key, lang, fresh=True)[2])
            for key in templates.KEYS for lang in templates.LANGUAGES]
    return render_template("email/templates_list.html", rows=rows, labels=_template_labels(),
                           added=canned.added(db.session))


def _template_labels() -> dict[str, str]:
    lang = "zh" if str(get_locale()) == "zh" else "en"
    return {"acknowledgement": _("Automatic acknowledgement"), "reply": _("Agent reply"),
            "en": _("English"), "zh": _("Chinese"), **{k: str(v) for k, v in templates.CANNED_LABELS.items()},
            **{r.key: _("Canned reply: %(label)s", label=canned.label(r, lang)) for r in canned.added(db.session)}}


def _audit_template(action: str, key: str, language: str) -> None:
    record(db.session, actor=f"staff:{current_staff().id}", action=f"email.template_{action}",
           target_type="email_template", target_id=f"{key}/{language}", ip=request.remote_addr)


@bp.route("/admin/email/templates/<key>/<language>", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def template_edit(key: str, language: str):
    if language not in templates.LANGUAGES or not templates.is_known(db.session, key):
        abort(404)
    built_in = (key, language) in templates.BUILT_IN
    subject, body, customised = templates.source_of(db.session, key, language, fresh=True)
    preview, problem = None, None
    if request.method == "POST":
        action = request.form.get("action", "preview")
        subject, body = request.form.get("subject", ""), request.form.get("body", "")
        if action == "reset":
            if not built_in:
                abort(409, description=_("An added canned reply has no built-in text to go back to."))
            templates.reset_template(db.session, key, language)
            _audit_template("reset", key, language)
            db.session.commit()
            flash(_("The built-in template is back in use."))
            return redirect(url_for("email.template_edit", key=key, language=language))
        try:
            preview = templates.render_strings(subject, body, templates.sample_context(language, _desk().desk.name))
            if action == "save":
                templates.save_template(db.session, key, language, subject, body, staff_id=current_staff().id,
                                        desk_name=_desk().desk.name)
                _audit_template("saved", key, language)
                db.session.commit()
                flash(_("Template saved."))
                return redirect(url_for("email.template_edit", key=key, language=language))
        except templates.TemplateProblem as exc:
            db.session.rollback()
            problem = exc
    else:
        try:
            preview = templates.render_strings(subject, body, templates.sample_context(language, _desk().desk.name))
        except templates.TemplateProblem as exc:  # stored past the check (or before a stricter one)
            problem = exc
    page = render_template("email/template_edit.html", key=key, language=language, subject=subject, body=body,
                           customised=customised and built_in, preview=preview, problem=problem,
                           labels=_template_labels(), added=not built_in,
                           variables=sorted(templates.sample_context(language)))
    return page, 422 if problem is not None and request.method == "POST" else 200


# --- admin: mailboxes and undeliverable addresses --------------------------------------------------------

@bp.get("/admin/email/mailboxes")
@role_required(Role.ADMIN)
def mailboxes():
    states = {s.mailbox: s for s in db.session.scalars(select(MailboxPollState))}
    waiting = dict(db.session.execute(select(InboundEmail.mailbox, func.count(InboundEmail.id)).where(
        InboundEmail.status == "quarantined").group_by(InboundEmail.mailbox)).all())
    blocked = db.session.scalars(select(UndeliverableAddress).order_by(UndeliverableAddress.marked_at.desc())
                                 .limit(200)).all()
    return render_template("email/mailboxes.html", mailboxes=_desk().email.mailboxes, states=states,
                           quarantined=waiting, blocked=blocked)


@bp.post("/admin/email/undeliverable/<int:row_id>/clear")
@role_required(Role.ADMIN)
def clear_undeliverable(row_id: int):
    row = db.session.get(UndeliverableAddress, row_id) or abort(404)
    outbound.clear_undeliverable(db.session, row.address)
    db.session.commit()
    flash(_("Mail to %(address)s is allowed again.", address=row.address))
    return redirect(url_for("email.mailboxes"))
