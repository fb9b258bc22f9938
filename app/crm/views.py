"""Staff pages for customers: search, the 360 view, and the supervisors' actions (recompute value, merge a
duplicate, CSV import and export). Thin: parse the request, call one service, render.

Every opening of a customer's page is audited (``crm.customer_viewed``); so are merges, imports, exports
and recomputation requests.
"""
from __future__ import annotations

import io
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, \
    stream_with_context, url_for
from flask_babel import format_datetime, get_locale, gettext as _

from app.audit.service import record
from app.auth.models import Role
from app.auth.roles import current_staff, role_required
from app.complaints.states import STATE_LABELS
from app.crm import csv_io, service
from app.crm.errors import CrmError, CustomerNotFound
from app.crm.models import Tier
from app.crm.scoring import format_money
from app.crm.labels import LABELS
from app.crm.search import possible_duplicates, search_customers
from app.crm.timeline import build_timeline
from app.db import utcnow
from app.extensions import db

bp = Blueprint("crm", __name__, url_prefix="/customers")

IMPORT_KINDS = ("customers", "orders")
REPORT_ROWS_SHOWN = 1000  # a page lists at most this many row results; the totals count every row
COMPLAINT_STATES = {str(state): labels for state, labels in STATE_LABELS.items()}


def _config():
    return current_app.extensions["desk.config"]


def _actor() -> str:
    return f"staff:{current_staff().id}"


def _lang() -> str:
    return "zh" if str(get_locale()) == "zh" else "en"


def _when(value: str | None, style: str = "short") -> str:
    """An ISO timestamp from the 360 view in the reader's time zone and language."""
    if not value:
        return ""
    return format_datetime(datetime.fromisoformat(value), style)


def _is_past(value: str | None) -> bool:
    return bool(value) and datetime.fromisoformat(value) < utcnow()


def _can_manage() -> bool:
    staff = current_staff()
    return staff is not None and staff.has_role(Role.SUPERVISOR)


@bp.context_processor
def _helpers() -> dict[str, Any]:
    return {"crm_when": _when, "crm_money": format_money, "crm_labels": LABELS}


# --- search and the 360 view ------------------------------------------------------------------------------

@bp.get("/")
@role_required(Role.AGENT)
def index():
    tier = request.args.get("tier") or None
    if tier not in {None, *Tier}:
        tier = None
    results = search_customers(db.session, request.args.get("q", ""), region=_config().crm.default_country,
                               tier=tier, page=request.args.get("page", 1, type=int),
                               per_page=request.args.get("per_page", 25, type=int))
    return render_template("crm/search.html", results=results, tier=tier, tiers=list(Tier),
                           can_manage=_can_manage(), lang=_lang())


@bp.get("/<int:customer_id>")
@role_required(Role.AGENT)
def detail(customer_id: int):
    try:
        view = service.customer_360(db.session, customer_id, attribute_defs=_config().crm.custom_attributes,
                                    actor=_actor(), via="page")
    except CustomerNotFound:
        abort(404)
    db.session.commit()  # the audit entry of this opening
    from app.crm.jobs import latest_run

    return render_template("crm/detail.html", view=view, c=view["customer"], value=view["value"],
                           timeline=build_timeline(view), lang=_lang(), can_manage=_can_manage(),
                           currency=_config().desk.currency, complaint_states=COMPLAINT_STATES,
                           is_past=_is_past, run=latest_run(db.session) if _can_manage() else None,
                           duplicates=possible_duplicates(db.session, customer_id) if _can_manage() else [])


# --- supervisors' actions -----------------------------------------------------------------------------

@bp.post("/<int:customer_id>/recompute")
@role_required(Role.SUPERVISOR)
def recompute(customer_id: int):
    """Value is relative (ranks, quintiles), so one customer's recomputation is everyone's: queue a run."""
    from app.crm.jobs import request_recompute

    if not _exists(customer_id):
        abort(404)
    record(db.session, actor=_actor(), action="crm.value_recompute_requested", target_type="customer",
           target_id=customer_id, ip=request.remote_addr)
    run = request_recompute(db.session)  # commits (with the audit entry), then enqueues
    flash(_("Customer value recomputation %(run)s queued; it covers every customer.", run=run.id))
    return redirect(url_for("crm.detail", customer_id=customer_id))


def _exists(customer_id: int) -> bool:
    try:
        service.get_customer(db.session, customer_id)
    except CustomerNotFound:
        return False
    return True


@bp.get("/<int:customer_id>/merge")
@role_required(Role.SUPERVISOR)
def merge_confirm(customer_id: int):
    """The confirmation page: both records side by side, and what moves."""
    duplicate_id = request.args.get("duplicate_id", type=int)
    if not _exists(customer_id):
        abort(404)
    if not duplicate_id or duplicate_id == customer_id or not _exists(duplicate_id):
        flash(_("Give the number of another existing customer to merge into this one."))
        return redirect(url_for("crm.detail", customer_id=customer_id))
    attribute_defs = _config().crm.custom_attributes
    views = {key: service.customer_360(db.session, cid, attribute_defs=attribute_defs, actor=_actor(),
                                       via="merge")
             for key, cid in (("survivor", customer_id), ("duplicate", duplicate_id))}
    db.session.commit()
    return render_template("crm/merge.html", survivor=views["survivor"], duplicate=views["duplicate"], lang=_lang())


@bp.post("/<int:customer_id>/merge")
@role_required(Role.SUPERVISOR)
def merge(customer_id: int):
    duplicate_id = request.form.get("duplicate_id", type=int)
    if request.form.get("confirm") != "yes" or not duplicate_id:
        flash(_("Tick the confirmation box to merge."))
        return redirect(url_for("crm.merge_confirm", customer_id=customer_id, duplicate_id=duplicate_id))
    try:
        merged = service.merge_customers(db.session, customer_id, duplicate_id, actor=_actor())
    except CustomerNotFound:
        db.session.rollback()
        abort(404)
    except CrmError as exc:
        db.session.rollback()
        flash(_("Not merged: %(why)s", why=exc.zh if _lang() == "zh" else exc.en))
        return redirect(url_for("crm.detail", customer_id=customer_id))
    record(db.session, actor=_actor(), action="crm.customers_merged", target_type="customer",
           target_id=customer_id, ip=request.remote_addr,
           data={"merged_customer_id": duplicate_id, "moved": merged.moved})
    db.session.commit()
    flash(_("Customer %(duplicate)s merged into this record; every interaction, order and complaint kept.",
            duplicate=duplicate_id))
    return redirect(url_for("crm.detail", customer_id=customer_id))


@bp.get("/import")
@role_required(Role.SUPERVISOR)
def import_form():
    return render_template("crm/import.html", report=None, kind="customers", kinds=IMPORT_KINDS,
                           columns={"customers": csv_io.CUSTOMER_COLUMNS, "orders": csv_io.ORDER_COLUMNS},
                           attributes=[a.name for a in _config().crm.custom_attributes], shown=REPORT_ROWS_SHOWN)


@bp.post("/import")
@role_required(Role.SUPERVISOR)
def import_upload():
    kind = request.form.get("kind", "customers")
    upload = request.files.get("file")
    columns = {"customers": csv_io.CUSTOMER_COLUMNS, "orders": csv_io.ORDER_COLUMNS}
    attributes = [a.name for a in _config().crm.custom_attributes]
    if kind not in IMPORT_KINDS or upload is None or not upload.filename:
        flash(_("Choose what to import and a CSV file."))
        return redirect(url_for("crm.import_form"))
    try:
        text = upload.stream.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        flash(_("The file is not UTF-8 text; save it as CSV UTF-8 and try again."))
        return redirect(url_for("crm.import_form"))
    config = _config()
    if kind == "customers":
        report = csv_io.import_customers(db.session, io.StringIO(text, newline=""), config.crm)
    else:
        report = csv_io.import_orders(db.session, io.StringIO(text, newline=""), config.crm,
                                      zone=config.desk.timezone, currency=config.desk.currency)
    record(db.session, actor=_actor(), action=f"crm.{kind}_imported", target_type=kind, ip=request.remote_addr,
           data={"file": upload.filename[:200], "rows": report.rows, "imported": report.imported,
                 "rejected": report.rejected, "problems": report.problems[:20]})
    db.session.commit()
    return render_template("crm/import.html", report=report, kind=kind, kinds=IMPORT_KINDS, columns=columns,
                           attributes=attributes, shown=REPORT_ROWS_SHOWN)


@bp.get("/export/<kind>.csv")
@role_required(Role.SUPERVISOR)
def export(kind: str):
    if kind not in IMPORT_KINDS:
        abort(404)
    record(db.session, actor=_actor(), action=f"crm.{kind}_exported", target_type=kind, ip=request.remote_addr)
    db.session.commit()  # audited before the first byte leaves
    chunks = (csv_io.export_customers(db.session, _config().crm) if kind == "customers"
              else csv_io.export_orders(db.session))
    stamp = utcnow().strftime("%Y%m%d-%H%M")
    return Response(stream_with_context(chunks), mimetype="text/csv",
                    headers={"Content-Disposition": f"attachment; filename={kind}-{stamp}.csv"})
