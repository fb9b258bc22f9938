"""Admin pages for outbound webhooks: subscriptions, the delivery log, redeliver and resume."""
from __future__ import annotations

from flask import Blueprint, Flask, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from app.auth.models import Role
from app.auth.roles import role_required
from app.extensions import db
from app.webhooks import service
from app.webhooks.models import WebhookDelivery, WebhookEndpoint

bp = Blueprint("webhooks", __name__, url_prefix="/admin/webhooks")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


@bp.get("/")
@role_required(Role.ADMIN)
def index():
    endpoints = list(db.session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))
    return render_template("webhooks/index.html", endpoints=endpoints, event_types=service.EVENT_TYPES,
                           new_secret=None, error=None)


@bp.post("/")
@role_required(Role.ADMIN)
def create():
    try:
        endpoint = service.create_endpoint(db.session, name=request.form.get("name", ""),
                                           url=request.form.get("url", "").strip(),
                                           event_types=request.form.getlist("event_types"),
                                           actor=current_user.get_id())
    except service.WebhookError as exc:
        db.session.rollback()
        endpoints = list(db.session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))
        return render_template("webhooks/index.html", endpoints=endpoints, event_types=service.EVENT_TYPES,
                               new_secret=None, error=str(exc)), 422
    db.session.commit()
    endpoints = list(db.session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))
    return render_template("webhooks/index.html", endpoints=endpoints, event_types=service.EVENT_TYPES,
                           new_secret=(endpoint.id, endpoint.secret), error=None), 201


@bp.get("/<int:endpoint_id>")
@role_required(Role.ADMIN)
def deliveries(endpoint_id: int):
    endpoint = db.session.get(WebhookEndpoint, endpoint_id) or abort(404)
    rows = list(db.session.scalars(select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
                                   .order_by(WebhookDelivery.id.desc()).limit(200)))
    return render_template("webhooks/deliveries.html", endpoint=endpoint, deliveries=rows)


@bp.post("/deliveries/<int:delivery_id>/redeliver")
@role_required(Role.ADMIN)
def redeliver(delivery_id: int):
    delivery = db.session.get(WebhookDelivery, delivery_id) or abort(404)
    service.redeliver(db.session, delivery, actor=current_user.get_id())
    flash(_("Delivery queued again."))
    return redirect(url_for("webhooks.deliveries", endpoint_id=delivery.endpoint_id))


@bp.post("/<int:endpoint_id>/resume")
@role_required(Role.ADMIN)
def resume(endpoint_id: int):
    endpoint = db.session.get(WebhookEndpoint, endpoint_id) or abort(404)
    count = service.resume(db.session, endpoint, actor=current_user.get_id())
    flash(_("Endpoint resumed; %(n)s deliveries queued.", n=count))
    return redirect(url_for("webhooks.deliveries", endpoint_id=endpoint.id))
