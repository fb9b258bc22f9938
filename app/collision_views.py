"""HTTP face of collision control: heartbeat and leave (the console also sends these over its socket)."""
from __future__ import annotations

import re

from flask import Blueprint, abort, current_app, jsonify, request

from app import collision
from app.auth.models import Role
from app.auth.roles import current_staff, role_required
from app.extensions import csrf

bp = Blueprint("collision", __name__, url_prefix="/api/collision")
CASE_KEY = re.compile(r"^[a-z]+:[0-9]{1,18}$")  # "interaction:42", "complaint:7"


def _case_key(raw: str) -> str:
    if not CASE_KEY.match(raw):
        abort(404)
    return raw


@bp.post("/<case_key>/heartbeat")
@csrf.exempt  # JSON API used by the console's fetch(), protected by the session's SameSite cookie + role check
@role_required(Role.AGENT)
def heartbeat(case_key: str):
    staff = current_staff()
    mode = (request.get_json(silent=True) or {}).get("mode", "viewing")
    if mode not in ("viewing", "replying"):
        return jsonify(error="invalid_mode", message="mode must be 'viewing' or 'replying'"), 422
    others = collision.heartbeat(current_app.extensions["desk.redis"], _case_key(case_key), staff_id=staff.id,
                                 name=staff.name, mode=mode)
    return jsonify(others=collision.as_dicts(others), ttl_s=collision.TTL_S)


@bp.post("/<case_key>/leave")
@csrf.exempt
@role_required(Role.AGENT)
def leave(case_key: str):
    collision.leave(current_app.extensions["desk.redis"], _case_key(case_key), staff_id=current_staff().id)
    return jsonify(ok=True)
