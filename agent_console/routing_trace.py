"""The routing decision trace of one contact, for supervisors: why it has its priority, which step of
its queue was active, which agents were passed over and why, for every offer it received."""
from __future__ import annotations

from flask import Blueprint, abort, render_template
from sqlalchemy import select

from app.auth.models import Role, StaffUser
from app.auth.roles import role_required
from app.extensions import db
from app.interactions.models import Interaction
from queues.models import Offer

bp = Blueprint("routing_trace", __name__, url_prefix="/supervisor/contacts")


@bp.get("/<int:interaction_id>/routing")
@role_required(Role.SUPERVISOR)
def routing_trace(interaction_id: int):
    interaction = db.session.get(Interaction, interaction_id) or abort(404)
    offers = list(db.session.scalars(select(Offer).where(Offer.interaction_id == interaction.id)
                                     .order_by(Offer.id)))
    names = dict(db.session.execute(select(StaffUser.id, StaffUser.name).where(
        StaffUser.id.in_({o.agent_id for o in offers}))).all()) if offers else {}
    return render_template("supervisor/routing_trace.html", interaction=interaction, offers=offers, names=names)
