"""The agent console page (``/console/``) and its small JSON API; the live part is the ``/agent`` namespace."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, current_app, jsonify, render_template, send_from_directory, url_for
from flask_babel import get_locale
from flask_wtf.csrf import generate_csrf

from agent_console import payloads, reply_templates
from agent_console.i18n import client_strings
from app.auth.models import Role
from app.auth.roles import current_staff, role_required
from app.extensions import db

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates", static_folder="static",
               static_url_path="/static")
VENDOR = Path(__file__).resolve().parent.parent / "node_modules"
# Front-end files served from node_modules (never from the internet): public name -> path inside node_modules.
VENDOR_FILES = {"socket.io.min.js": "socket.io-client/dist/socket.io.min.js",
                "twilio.min.js": "@twilio/voice-sdk/dist/twilio.min.js"}
SOFTPHONE_REGISTER_TIMEOUT_S = 20  # how long the softphone may take to register with Twilio before the agent is told
# Reasons an agent can give for a break (the routing service also uses "missed_offers" on its own).
def _label(item, lang: str) -> str:
    return getattr(item, "label_zh" if lang == "zh" else "label_en") or getattr(item, "code", None) or item.name


@bp.route("/")
@role_required(Role.AGENT)
def console():
    agent = current_staff()
    config = current_app.extensions["desk.config"]
    lang = str(get_locale())
    page = {
        "agent": {"id": agent.id, "name": agent.name, "timezone": agent.timezone},
        "lang": lang,
        "namespace": "/agent",
        "dispositions": [{"code": d.code, "label": _label(d, lang)} for d in config.dispositions],
        "queues": [{"name": q.name, "label": _label(q, lang)} for q in config.routing.queues],
        "break_reasons": [{"code": r.code, "label": _label(r, lang)} for r in config.break_reasons],
        "complaint_url": _complaint_url(),
        "call_controls": _call_controls(),
        "softphone": _softphone(agent),
        "reply_templates": reply_templates.choices(db.session, lang),
        "csrf": generate_csrf(),
        "strings": client_strings(),
    }
    return render_template("console/console.html", page=page,
                           socketio_src=url_for("console.vendor", name="socket.io.min.js"))


def _call_controls() -> dict[str, str]:
    """URLs of the voice channel's call-control endpoints (``{id}`` stands for the interaction), when
    the voice channel is installed: hold/resume, mute/unmute and hang up."""
    rules = {rule.endpoint: rule.rule for rule in current_app.url_map.iter_rules()}
    wanted = {"hold": "voice_api.api_hold", "hangup": "voice_api.api_hangup", "mute": "voice_api.api_mute"}
    return {action: rules[endpoint].replace("<int:interaction_id>", "{id}")
            for action, endpoint in wanted.items() if endpoint in rules}


def _softphone(agent) -> dict | None:
    """The browser softphone's settings, for an agent whose call leg is the browser, when the voice
    channel is installed and a Twilio API key is configured (without one the desk cannot mint a token
    Twilio accepts: the demo's calls go through the phone simulator). None: the SDK is not loaded."""
    endpoints = {rule.endpoint for rule in current_app.url_map.iter_rules()}
    if "voice_api.api_token" not in endpoints or not current_app.config.get("TWILIO_API_KEY_SID"):
        return None
    from ivr.agent_leg import agent_device

    if agent_device(db.session, agent) != "browser":
        return None
    return {"token_url": url_for("voice_api.api_token"), "sdk_src": url_for("console.vendor", name="twilio.min.js"),
            "register_timeout_s": current_app.config.get("SOFTPHONE_REGISTER_TIMEOUT_S",
                                                         SOFTPHONE_REGISTER_TIMEOUT_S)}


def _complaint_url() -> str | None:
    """Where "raise a complaint" goes (the complaints domain's new-complaint page), when it exists."""
    rules = {rule.rule for rule in current_app.url_map.iter_rules()}
    for candidate in ("/complaints/new", "/complaints/new/"):
        if candidate in rules:
            return candidate
    return None


@bp.route("/api/snapshot")
@role_required(Role.AGENT)
def snapshot():
    """The same state the socket sends on connect, for a page that cannot hold a socket open."""
    agent = current_staff()
    state = payloads.snapshot(db.session, agent, current_app.extensions["desk.config"])
    return jsonify(state.model_dump(mode="json"))


@bp.route("/vendor/<name>")
def vendor(name: str):
    path = VENDOR_FILES.get(name)
    if path is None:
        abort(404)
    response = send_from_directory(VENDOR, path, max_age=3600)
    response.headers["Content-Type"] = "text/javascript; charset=utf-8"
    return response
