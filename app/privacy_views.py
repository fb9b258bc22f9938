"""Privacy requests for a customer: export everything held (JSON), and erase personal data."""
from __future__ import annotations

import json

from flask import Blueprint, Response, abort, jsonify, request
from flask_login import current_user

from app import privacy
from app.auth.models import Role
from app.auth.roles import role_required
from app.crm.models import Customer
from app.extensions import db

bp = Blueprint("privacy", __name__, url_prefix="/admin/privacy")


@bp.get("/customers/<int:customer_id>/export.json")
@role_required(Role.SUPERVISOR)
def export(customer_id: int):
    db.session.get(Customer, customer_id) or abort(404)
    data = privacy.export_customer(db.session, customer_id, actor=current_user.get_id())
    db.session.commit()
    body = json.dumps({"customer_id": customer_id, "tables": data}, ensure_ascii=False, indent=1)
    return Response(body, mimetype="application/json",
                    headers={"Content-Disposition": f"attachment; filename=customer-{customer_id}.json"})


@bp.post("/customers/<int:customer_id>/erase")
@role_required(Role.ADMIN)
def erase(customer_id: int):
    """Irreversible: the form must repeat the customer's id in ``confirm`` and give a reason."""
    db.session.get(Customer, customer_id) or abort(404)
    if request.form.get("confirm") != str(customer_id):
        return jsonify(error="confirmation_required",
                       message="confirm: type the customer's id to confirm the erasure"), 422
    try:
        counts = privacy.erase_customer(db.session, customer_id, actor=current_user.get_id(),
                                        reason=request.form.get("reason", ""))
    except ValueError as exc:
        db.session.rollback()
        return jsonify(error="refused", message=str(exc)), 422
    db.session.commit()
    return jsonify(ok=True, rows=counts)
