"""Staff pages for complaints: list and at-risk dashboard, intake form, detail with the score explanation
and audit trail, and the actions (grade, workflow steps, propose, approve, decline). Thin: parse the
form, call one flow, show the result or the refusal."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal, InvalidOperation

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.auth.models import Role, StaffUser
from app.auth.roles import current_staff, role_required
from app import realtime
from app.audit.service import record as audit
from app.complaints import access, evidence, flows, notices, reports, service
from app.complaints.approvals import ApprovalError
from app.complaints.compensation import CompensationError, FixedClaim, format_money
from app.complaints.config import FACTORS
from app.complaints.deadlines import DeadlineError
from app.complaints.grading import FACTOR_NAMES, GradingError, suggest
from app.complaints.models import CompensationProposal, Complaint
from app.complaints.states import (
    STATE_LABELS,
    TRANSITIONS,
    ComplaintState,
    InvalidComplaintTransition,
)
from app.crm.labels import LABELS as CRM_LABELS
from app.crm.models import Customer
from app.db import utcnow
from app.extensions import db

bp = Blueprint("complaints", __name__, url_prefix="/complaints", template_folder="templates")
# The notice sender listens for committed notices from the moment the complaints pages exist.
bp.record_once(lambda _state: realtime.subscribe(notices.on_event))
REFUSALS = (service.ComplaintError, CompensationError, ApprovalError, InvalidComplaintTransition, GradingError,
            DeadlineError)
CHANNEL_LABELS = CRM_LABELS["channel"]
METHOD_LABELS = {"voucher": _l("Voucher"), "account_credit": _l("Account credit"), "refund": _l("Refund")}
TIER_LABELS = CRM_LABELS["tier"]
PROPOSAL_LABELS = {"proposed": _l("proposed"), "awaiting_approval": _l("awaiting approval"),
                   "approved": _l("approved"), "declined": _l("sent back"), "superseded": _l("superseded"),
                   "issued": _l("issued")}
# What a message to the customer was (``ComplaintNotice.kind``; ``status_<state>`` names the state).
NOTICE_LABELS = {"acknowledgement": _l("acknowledgement"), "issuance": _l("compensation issued"),
                 "rejection": _l("rejection"), "resolution": _l("final response"), "survey": _l("survey"),
                 "status": _l("status update")}
# The audit trail's entries (``ComplaintEvent.kind``); a kind not named here shows as stored.
EVENT_LABELS = {"received": _l("Received"), "transition": _l("State changed"),
                "proposal": _l("Compensation proposed"), "approval": _l("Approval"), "decline": _l("Sent back"),
                "issuance": _l("Compensation issued"), "evidence": _l("Evidence added"), "regrade": _l("Regraded"),
                "root_cause": _l("Root cause recorded"), "notice_sent": _l("Message sent"),
                "sla_alert": _l("Deadline alert"), "customer_email": _l("Email from the customer"),
                "customer_message": _l("Message from the customer"), "intake_rule": _l("Raised by an email rule")}


class BadForm(ValueError):
    pass


def _category_labels() -> dict[str, str]:
    """Category code -> its name in the reader's language (config.yaml names each category in both)."""
    zh = _lang() == "zh"
    return {c.code: c.label_zh if zh else c.label_en for c in _config().complaints.categories}


def _config():
    return current_app.extensions["desk.config"]


def _lang() -> str:
    from flask_babel import get_locale

    return "zh" if str(get_locale()) == "zh" else "en"


def parse_money(text: str | None, what: str) -> int | None:
    """'12.50' -> 1250 minor units; blank -> None. Raises BadForm for anything else or a negative amount."""
    text = (text or "").strip().replace(",", "")
    if not text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise BadForm(_("%(what)s: not an amount", what=what)) from None
    if value < 0:
        raise BadForm(_("%(what)s: the amount cannot be negative", what=what))
    cents = value * 100
    if cents != cents.to_integral_value():
        raise BadForm(_("%(what)s: at most two decimals", what=what))
    return int(cents)


def _int(name: str, default: int = 0) -> int:
    raw = (request.form.get(name) or "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise BadForm(_("%(what)s: a whole number is needed", what=name))
    return int(raw)


def _scores_from_form() -> dict[str, int]:
    scores = {}
    for factor in FACTORS:
        raw = request.form.get(f"score_{factor}", "")
        if raw != "":
            if raw not in ("0", "1", "2", "3"):
                raise BadForm(_("Scores are whole numbers from 0 to 3."))
            scores[factor] = int(raw)
    return scores


def _refused(exc: Exception, complaint_id: int | None = None):
    db.session.rollback()
    flash(_("Refused: %(why)s", why=str(exc)))
    if complaint_id is None:
        return redirect(url_for("complaints.index"))
    return redirect(url_for("complaints.detail", complaint_id=complaint_id))


def _me() -> StaffUser:
    staff = current_staff()
    if staff is None:  # role_required already guarantees a staff user
        abort(403)
    return staff


def _guard(complaint_id: int) -> None:
    """404 unless the signed-in staff member may see this complaint (``access``): no reference leaks."""
    if not access.can_access(db.session, _me(), complaint_id):
        abort(404)


def _uploads(field: str = "evidence") -> list[evidence.EvidenceUpload]:
    """The files of a multipart form field; each read up to one byte over the limit (the size check
    refuses it without holding more)."""
    limit = _config().complaints.evidence_max_bytes + 1
    return [evidence.EvidenceUpload(f.filename or "", f.stream.read(limit))
            for f in request.files.getlist(field) if f and f.filename]


# -------------------------------------------------------------------------------------------- pages
@bp.get("/")
@role_required(Role.AGENT)
def index():
    query = select(Complaint).order_by(Complaint.id.desc()).limit(200)
    state, level = request.args.get("state"), request.args.get("level")
    if state in ComplaintState.__members__.values():
        query = query.where(Complaint.state == state)
    if level in ("P1", "P2", "P3", "P4"):
        query = query.where(Complaint.level == level)
    if request.args.get("mine"):
        query = query.where(Complaint.owner_id == _me().id)
    visible = access.visible_to(_me())
    if visible is not None:
        query = query.where(visible)
    complaints = db.session.scalars(query).all()
    risky = service.at_risk(db.session, _config())
    if visible is not None:
        mine = set(db.session.scalars(select(Complaint.id).where(visible)))
        risky = [row for row in risky if row["complaint"].id in mine]
    return render_template("complaints/list.html", complaints=complaints, at_risk=risky, now=utcnow(),
                           states=list(ComplaintState), labels=STATE_LABELS, lang=_lang(),
                           channels=CHANNEL_LABELS, categories=_category_labels())


@bp.get("/new")
@role_required(Role.AGENT)
def new():
    fields = {"channel": "voice", "description": "", "customer_id": request.args.get("customer_id", type=int)}
    interaction_id = request.args.get("interaction_id", type=int)
    if interaction_id:
        try:
            fields.update(service.prefill_from_interaction(db.session, interaction_id))
        except service.ComplaintNotFound:
            abort(404)
    customer = db.session.get(Customer, fields["customer_id"]) if fields.get("customer_id") else None
    suggestions = suggest(fields.get("description") or "", _config().complaints.grading)
    return render_template("complaints/new.html", fields=fields, customer=customer, config=_config().complaints,
                           factors=FACTORS, factor_names=FACTOR_NAMES, suggestions=suggestions,
                           channels=CHANNEL_LABELS, lang=_lang())


@bp.post("/new")
@role_required(Role.AGENT)
def create():
    form = request.form
    try:
        complaint = flows.raise_complaint(
            db.session, channel=form.get("channel", "voice"), customer_id=_int("customer_id") or None,
            interaction_id=_int("interaction_id") or None, order_id=_int("order_id") or None,
            category=form.get("category", ""), description=form.get("description", ""),
            remedy_sought=form.get("remedy_sought", ""),
            amount_claimed_cents=parse_money(form.get("amount_claimed"), _("Amount claimed")),
            vulnerable=bool(form.get("vulnerable")), scores=_scores_from_form() or None,
            score_notes={f: form.get(f"note_{f}", "") for f in FACTORS}, actor_id=_me().id, uploads=_uploads())
    except (BadForm, *REFUSALS) as exc:
        db.session.rollback()
        flash(_("Refused: %(why)s", why=str(exc)))
        return redirect(url_for("complaints.new", customer_id=form.get("customer_id") or None,
                                interaction_id=form.get("interaction_id") or None))
    flash(_("Complaint %(reference)s registered and acknowledged.", reference=complaint.reference))
    return redirect(url_for("complaints.detail", complaint_id=complaint.id))


@bp.get("/<int:complaint_id>")
@role_required(Role.AGENT)
def detail(complaint_id: int):
    _guard(complaint_id)
    complaint = db.session.get(Complaint, complaint_id) or abort(404)
    customer = db.session.get(Customer, complaint.customer_id)
    staff = {s.id: s.name for s in db.session.scalars(select(StaffUser))}
    next_states = sorted(TRANSITIONS[ComplaintState(complaint.state)], key=list(ComplaintState).index)
    return render_template(
        "complaints/detail.html", complaint=complaint, customer=customer, staff=staff, lang=_lang(),
        events=service.audit_trail(db.session, complaint.id), factors=FACTORS, factor_names=FACTOR_NAMES,
        labels=STATE_LABELS, next_states=next_states, config=_config().complaints, money=format_money,
        methods=METHOD_LABELS, can_approve=_me().has_role(Role.SUPERVISOR), channels=CHANNEL_LABELS,
        categories=_category_labels(), tiers=TIER_LABELS, proposal_labels=PROPOSAL_LABELS, event_labels=EVENT_LABELS,
        notice_labels=NOTICE_LABELS,
        files=evidence.files_of(db.session, complaint.id), notices=notices.notices_of(db.session, complaint.id),
        root_causes=_config().complaints.root_causes, evidence_accept=",".join(_config().complaints.evidence_types),
        reopen_until=(complaint.final_response_at + timedelta(days=_config().complaints.reopen_within_days)
                      if complaint.final_response_at else None))


# ------------------------------------------------------------------------------------------ actions
@bp.post("/<int:complaint_id>/grade")
@role_required(Role.AGENT)
def grade(complaint_id: int):
    _guard(complaint_id)
    try:
        flows.regrade(db.session, complaint_id, _scores_from_form(), reason=request.form.get("reason", ""),
                      actor_id=_me().id, notes={f: request.form.get(f"note_{f}", "") for f in FACTORS},
                      vulnerable=bool(request.form.get("vulnerable")))
    except (BadForm, *REFUSALS) as exc:
        return _refused(exc, complaint_id)
    flash(_("Grade saved."))
    return redirect(url_for("complaints.detail", complaint_id=complaint_id))


@bp.post("/<int:complaint_id>/step")
@role_required(Role.AGENT)
def step(complaint_id: int):
    """One workflow step chosen on the detail page: each maps to its flow."""
    _guard(complaint_id)
    action, note, me = request.form.get("action", ""), request.form.get("note", ""), _me().id
    actions = {
        "acknowledge": lambda: flows.acknowledge(db.session, complaint_id, actor_id=me, note=note),
        "investigating": lambda: flows.move(db.session, complaint_id, "investigating", actor_id=me, note=note),
        "resolved": lambda: flows.resolve(db.session, complaint_id, actor_id=me, note=note),
        "rejected": lambda: flows.reject(db.session, complaint_id, actor_id=me, reasons=note),
        "closed": lambda: flows.close(db.session, complaint_id, actor_id=me, note=note),
        "reopened": lambda: flows.reopen(db.session, complaint_id, actor_id=me, note=note),
    }
    if action not in actions:
        abort(400)
    try:
        actions[action]()
    except REFUSALS as exc:
        return _refused(exc, complaint_id)
    flash(_("Saved."))
    return redirect(url_for("complaints.detail", complaint_id=complaint_id))


@bp.post("/<int:complaint_id>/propose")
@role_required(Role.AGENT)
def propose(complaint_id: int):
    _guard(complaint_id)
    form = request.form
    try:
        fixed = []
        if form.get("delay_days"):
            rule = form.get("delay_rule") or "delivery_delay_per_day"
            fixed.append(FixedClaim(rule, days=_int("delay_days")))
        if form.get("fraud_price"):
            fixed.append(FixedClaim(form.get("fraud_rule") or "fraud_triple_price",
                                    price_cents=parse_money(form.get("fraud_price"), _("Price")) or 0))
        proposal = flows.propose(
            db.session, complaint_id, actor_id=_me().id,
            proven_loss_cents=parse_money(form.get("proven_loss"), _("Proven loss")) or 0, fixed=fixed,
            goodwill_cents=parse_money(form.get("goodwill"), _("Goodwill")),
            adjustment_reason=form.get("adjustment_reason", ""), method=form.get("method", "voucher"),
            response_note=form.get("response_note", ""), include_goodwill=not form.get("no_goodwill"))
    except (BadForm, *REFUSALS) as exc:
        return _refused(exc, complaint_id)
    if proposal.status == "approved":
        flash(_("Within your authority: approved, compensation is being issued."))
    elif proposal.status == "awaiting_approval":
        flash(_("Sent for approval."))
    else:
        flash(_("Response recorded without compensation."))
    return redirect(url_for("complaints.detail", complaint_id=complaint_id))


@bp.post("/proposals/<int:proposal_id>/approve")
@role_required(Role.AGENT)
def approve(proposal_id: int):
    proposal = db.session.get(CompensationProposal, proposal_id) or abort(404)
    complaint_id = proposal.complaint_id
    _guard(complaint_id)
    try:
        result = flows.approve(db.session, proposal_id, approver_id=_me().id, note=request.form.get("note", ""))
    except REFUSALS as exc:
        return _refused(exc, complaint_id)
    flash({"approved": _("Approved; compensation is being issued."),
           "recorded": _("Your approval is recorded; another approver is needed."),
           "already": _("Already approved.")}[result.outcome])
    return redirect(url_for("complaints.detail", complaint_id=complaint_id))


@bp.post("/proposals/<int:proposal_id>/decline")
@role_required(Role.SUPERVISOR)
def decline(proposal_id: int):
    proposal = db.session.get(CompensationProposal, proposal_id) or abort(404)
    complaint_id = proposal.complaint_id
    _guard(complaint_id)
    try:
        flows.decline(db.session, proposal_id, approver_id=_me().id, note=request.form.get("note", ""))
    except REFUSALS as exc:
        return _refused(exc, complaint_id)
    flash(_("Sent back to the agent."))
    return redirect(url_for("complaints.detail", complaint_id=complaint_id))


@bp.post("/<int:complaint_id>/evidence")
@role_required(Role.AGENT)
def add_evidence(complaint_id: int):
    _guard(complaint_id)
    try:
        rows = flows.add_evidence(db.session, complaint_id, _uploads(), actor_id=_me().id)
    except REFUSALS as exc:
        return _refused(exc, complaint_id)
    flash(_("%(count)s file(s) added.", count=len(rows)) if rows else _("No new file to add."))
    return redirect(url_for("complaints.detail", complaint_id=complaint_id))


@bp.get("/<int:complaint_id>/evidence/<int:evidence_id>")
@role_required(Role.AGENT)
def evidence_file(complaint_id: int, evidence_id: int):
    """The file, to staff who may see the complaint. Images show inline; anything else downloads. The
    page is sandboxed and never sniffed, so a file cannot run script in the desk's origin."""
    _guard(complaint_id)
    row = evidence.get_file(db.session, complaint_id, evidence_id) or abort(404)
    audit(db.session, actor=f"staff:{_me().id}", action="complaints.evidence_viewed", target_type="complaint",
          target_id=complaint_id, data={"evidence_id": row.id})
    db.session.commit()
    inline = row.content_type.startswith("image/")
    response = Response(row.data, mimetype=row.content_type)
    response.headers["Content-Disposition"] = _disposition("inline" if inline else "attachment", row.filename)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; img-src 'self'; sandbox"
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _disposition(kind: str, filename: str) -> str:
    from urllib.parse import quote

    ascii_name = filename.encode("ascii", "ignore").decode().replace('"', "") or "evidence"
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"


@bp.post("/<int:complaint_id>/root-cause")
@role_required(Role.AGENT)
def root_cause(complaint_id: int):
    _guard(complaint_id)
    try:
        flows.set_root_cause(db.session, complaint_id, request.form.get("root_cause", ""), actor_id=_me().id,
                             note=request.form.get("note", ""))
    except REFUSALS as exc:
        return _refused(exc, complaint_id)
    flash(_("Root cause saved."))
    return redirect(url_for("complaints.detail", complaint_id=complaint_id))


@bp.get("/reports")
@role_required(Role.SUPERVISOR)
def report_page():
    days = request.args.get("days", default=30, type=int)
    days = days if 0 < days <= 3660 else 30
    end = utcnow()
    figures = reports.summary(db.session, _config(), start=end - timedelta(days=days), end=end)
    settings, zh = _config().complaints, _lang() == "zh"
    return render_template("complaints/reports.html", figures=figures, days=days, money=format_money,
                           currency=_config().desk.currency, lang=_lang(),
                           cause_labels={c.code: c.label_zh if zh else c.label_en for c in settings.root_causes},
                           category_labels=_category_labels())
