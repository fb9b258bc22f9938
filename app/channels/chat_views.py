"""HTTP side of the chat widget: the one-script-tag loader, the chat frame (embeddable only by the desk
and the origins in ``chat.allowed_origins``), the Socket.IO client file, attachment upload/download."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, current_app, jsonify, render_template, request, send_file, send_from_directory
from flask_babel import get_locale, gettext as _
from flask_login import current_user

from app.auth import ratelimit
from app.auth.models import Role
from app.auth.roles import staff_allowed
from app.channels import chat
from app.extensions import db
from app.portal.attachments import AttachmentRejected, store_attachment
from app.portal.models import Attachment, CustomerAccount

bp = Blueprint("chat", __name__, url_prefix="/chat")
STATIC = Path(__file__).resolve().parent.parent / "static" / "chat"
NODE_MODULES = Path(__file__).resolve().parents[2] / "node_modules"


def _desk_origin() -> str:
    return current_app.config["PUBLIC_BASE_URL"]


def allowed_origins() -> list[str]:
    """Origins that may frame the chat: the desk itself and chat.allowed_origins."""
    return [_desk_origin(), *current_app.extensions["desk.config"].chat.allowed_origins]


@bp.get("/widget.js")
def widget_js():
    """The loader a site includes with one script tag; it opens the frame from this desk."""
    response = send_from_directory(STATIC, "widget.js", mimetype="text/javascript", max_age=300)
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


@bp.get("/static/<path:name>")
def chat_static(name: str):
    return send_from_directory(STATIC, name, max_age=300)


@bp.get("/vendor/socket.io.min.js")
def socketio_client():
    return send_from_directory(NODE_MODULES / "socket.io-client" / "dist", "socket.io.min.js",
                               mimetype="text/javascript", max_age=3600)


def frame_strings() -> dict[str, str]:
    """Every text the chat script shows, translated here so the script holds no English."""
    return {
        "open": _("Chat with us"), "close": _("Close chat"), "title": _("Chat"), "name": _("Your name"),
        "email": _("Your email"), "topic": _("Topic"), "start": _("Start chat"), "send": _("Send"),
        "placeholder": _("Type your message"), "attach": _("Attach a file"),
        "queued": _("You are number %(position)s in the queue."), "wait": _("Estimated wait: about %(minutes)s min."),
        "waiting": _("Waiting for an agent..."), "connected": _("You are chatting with %(name)s."),
        "agent_typing": _("The agent is typing..."), "read": _("Read"), "sent": _("Sent"),
        "sending": _("Sending..."), "offline": _("We are offline. Your messages will reach us by email."),
        "reconnecting": _("Connection lost. Reconnecting..."), "leave": _("End chat"),
        "transcript": _("Email me the transcript"), "transcript_sent": _("The transcript is on its way to %(email)s."),
        "ended": _("This chat has ended."), "case": _("Your messages were kept as request %(reference)s; we will "
                                                     "reply by email."),
        "survey": _("How did we do?"), "error": _("Something went wrong: %(error)s"),
        "rate_limited": _("Too many messages. Please wait a moment."), "too_long": _("That message is too long."),
        "bad_email": _("Please enter a valid email address."), "bad_name": _("Please enter your name."),
        "too_large": _("That file is too large."), "type_not_allowed": _("Only images and PDF files can be sent."),
        "you": _("You"), "agent": _("Agent"), "new_chat": _("Start a new chat"),
    }


@bp.get("/frame")
def frame():
    """The chat UI. Signed-in customers skip the pre-chat form."""
    origin = (request.args.get("origin") or _desk_origin()).rstrip("/")
    permitted = allowed_origins()
    if origin not in permitted and origin != request.host_url.rstrip("/"):
        abort(403, description=_("This site may not embed the chat."))
    config = current_app.extensions["desk.config"].chat
    lang = str(get_locale())
    account = current_user._get_current_object() if getattr(current_user, "is_authenticated", False) else None
    signed_in = account if isinstance(account, CustomerAccount) else None
    topics = [{"code": t.code, "label": t.label_zh if lang == "zh" else t.label_en} for t in config.topics]
    response = current_app.make_response(render_template(
        "portal/chat_frame.html", strings=frame_strings(), topics=topics, signed_in=signed_in, lang=lang,
        origin=origin, settings={"refresh_s": config.position_refresh_s, "max_chars": config.max_message_chars,
                                 "max_bytes": config.attachments.max_bytes, "types": config.attachments.types}))
    ancestors = " ".join(["'self'", *permitted, origin if origin in permitted else ""]).strip()
    response.headers["Content-Security-Policy"] = (
        f"frame-ancestors {ancestors}; default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "connect-src 'self' ws: wss:")
    return response


def _chat_from_token():
    token = request.headers.get("X-Chat-Token") or request.args.get("token") or ""
    try:
        return chat.resume_chat(db.session, token)
    except chat.ChatNotFound:
        return None


@bp.post("/upload")
def upload():
    """Attach a file to the caller's chat (identified by its resume token). JSON answer."""
    found = _chat_from_token()
    if found is None:
        return jsonify(ok=False, error="not_found"), 404
    if found.ended_at is not None:
        return jsonify(ok=False, error="ended"), 409
    redis = current_app.extensions["desk.redis"]
    if not ratelimit.hit(redis, f"chat-upload:{found.id}", limit=10, window_s=600):
        return jsonify(ok=False, error="rate_limited"), 429
    file = request.files.get("file")
    if file is None:
        return jsonify(ok=False, error="empty"), 400
    limits = current_app.extensions["desk.config"].chat.attachments
    try:
        row = store_attachment(db.session, data=file.read(limits.max_bytes + 1), filename=file.filename,
                               limits=limits, uploaded_by=f"chat:{found.id}", customer_id=found.customer_id,
                               interaction_id=found.interaction_id)
    except AttachmentRejected as exc:
        db.session.rollback()
        return jsonify(ok=False, error=exc.code), 400
    db.session.commit()
    return jsonify(ok=True, attachment={"id": row.id, "filename": row.filename, "content_type": row.content_type,
                                        "size": row.size_bytes})


def send_attachment(row: Attachment):
    """Serve stored bytes safely: never as HTML, sandboxed, PDFs downloaded."""
    import io

    inline = row.content_type.startswith("image/")
    response = send_file(io.BytesIO(row.data), mimetype=row.content_type, as_attachment=not inline,
                         download_name=row.filename, max_age=0)
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'; img-src 'self'"
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/attachments/<int:attachment_id>")
def attachment(attachment_id: int):
    """A chat file for the chat's customer (resume token), the owning signed-in customer, or staff."""
    row = db.session.get(Attachment, attachment_id)
    if row is None:
        abort(404)
    found = _chat_from_token()
    user = current_user._get_current_object() if getattr(current_user, "is_authenticated", False) else None
    allowed = (found is not None and row.interaction_id == found.interaction_id) or staff_allowed(Role.AGENT) or (
        isinstance(user, CustomerAccount) and row.customer_id is not None and row.customer_id == user.customer_id)
    if not allowed:
        abort(404)
    return send_attachment(row)
