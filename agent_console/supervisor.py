"""Supervisor pages at /supervisor/: the live wallboard, reports (with CSV export) and staffing.

Views are thin: parse the query or form, call one ``app.reports`` service, render. Every page needs the
supervisor role (admins too).
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _, lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select

from app.audit.service import record
from app.auth.models import Role, StaffUser
from app.auth.roles import role_required
from app.db import utcnow
from app.extensions import db
from app.i18n import reader_language
from app.reports import staffing
from app.reports.service import ReportError, build_report, parse_period, report_csv

bp = Blueprint("supervisor", __name__, url_prefix="/supervisor", template_folder="templates",
               static_folder="static/supervisor", static_url_path="/static")

NODE_MODULES = Path(__file__).resolve().parent.parent / "node_modules"
VENDOR = {"socket.io.min.js": NODE_MODULES / "socket.io-client" / "dist" / "socket.io.min.js"}

DIMENSION_LABELS = {"queue": _l("Queue"), "agent": _l("Agent"), "channel": _l("Channel"), "day": _l("Day")}
FORMULA_TEXT = {
    "offered": _l("Offered = queue visits that started in the period."),
    "answered": _l("Answered = visits that reached an agent."),
    "abandoned": _l("Abandoned = visits the customer left after waiting at least the short-abandon threshold."),
    "short_abandoned": _l("Short abandoned = visits left before the short-abandon threshold (counted apart)."),
    "overflowed": _l("Overflowed = visits sent to voicemail or closed by the queue's overflow action."),
    "service_level": _l("Service level = answered within the queue's target ÷ (answered + abandoned + overflowed)."),
    "abandon_rate": _l("Abandonment = abandoned ÷ (offered − short abandoned)."),
    "asa_s": _l("ASA = total wait of answered visits ÷ answered."),
    "aht_s": _l("AHT = total (talk + hold + wrap-up) ÷ handled contacts."),
    "occupancy": _l("Occupancy = total handle time ÷ staffed time (available, busy or wrap-up)."),
    "fcr": _l("First-contact resolution = handled contacts with no further contact from the same customer "
              "within the window ÷ handled contacts of known customers."),
    "csat": _l("CSAT = answers scoring 4 or 5 ÷ all CSAT answers (1-5)."),
    "complaints": _l("Complaints = complaints received from the group's contacts in the period."),
}
REPORT_ERRORS = {
    "bad_date": _l("Dates must look like 2026-03-02."),
    "reversed": _l("The period ends before it starts."),
    "too_long": _l("A report covers at most 92 days."),
    "unknown_grouping": _l("Unknown grouping."),
}
STAFFING_ERRORS = {
    "bad_forecast": _l("Contacts must be 0 or more and AHT more than 0."),
    "bad_shrinkage": _l("Shrinkage must be at least 0 and below 1."),
    "bad_shift": _l("A shift must end after it starts."),
    "unreachable": _l("No staffing within the limit meets this target."),
    "bad_counts": _l("Give between one interval and a whole day of counts."),
    "unknown_agent": _l("That agent no longer exists."),
}
STAFFING_FORMULAS = [
    _l("Traffic (Erlangs) = contacts × AHT ÷ interval length."),
    _l("Agents needed = fewest agents whose Erlang C service level reaches the queue's target."),
    _l("Agents to schedule = agents needed ÷ (1 − shrinkage), rounded up."),
    _l("Gap = agents scheduled − agents to schedule."),
]


def _config():
    return current_app.extensions["desk.config"]


def _tz() -> ZoneInfo:
    return ZoneInfo(_config().desk.timezone)


def _today() -> date:
    return utcnow().astimezone(_tz()).date()


def _page_strings() -> dict[str, str]:
    """Every string the wallboard's JavaScript shows, translated here so the script holds no English."""
    return {
        "queue": _("Queue"), "waiting": _("Waiting"), "longest_wait": _("Longest wait"),
        "service_level": _("Service level today"), "target": _("Target"), "asa": _("ASA"), "aht": _("AHT"),
        "abandonment": _("Abandonment"), "offered": _("Offered"), "answered": _("Answered"),
        "agent": _("Agent"), "state": _("State"), "time_in_state": _("Time in state"),
        "open_contacts": _("Open contacts"), "actions": _("Actions"), "apply": _("Apply"), "move": _("Move"),
        "reason": _("Reason"), "no_alerts": _("All queues are within their service-level targets."),
        "alert_sl": _("Queue %(queue)s is below its service-level target: %(value)s against %(target)s."),
        "connected": _("Live"), "disconnected": _("Reconnecting…"), "done": _("Done."),
        "contact": _("Contact"), "channel": _("Channel"), "wait": _("Wait"), "priority": _("Priority"),
        "move_to": _("Move to"), "choose": _("Choose…"), "to_queue": _("Queue"), "to_agent": _("Agent"),
        "no_waiting": _("Nobody is waiting."), "updated": _("Updated"),
        "available": _("Available"), "break": _("Break"), "offline": _("Offline"), "wrap_up": _("Wrap-up"),
        "busy": _("Busy"),
        "voice": _("Voice"), "chat": _("Chat"), "email": _("Email"), "task": _("Task"),
        "error_bad_presence": _("That state cannot be set."),
        "error_reason_required": _("Give a reason for the break."),
        "error_unknown_agent": _("That agent no longer exists."),
        "error_unknown_contact": _("That contact no longer exists."),
        "error_not_waiting": _("That contact is no longer waiting."), "error_unknown_queue": _("Unknown queue."),
        "error_same_queue": _("The contact is already in that queue."),
        "error_target_required": _("Choose a queue or an agent."),
        "error_routing_unavailable": _("Routing is not running; try again shortly."),
        "error_bad_payload": _("The request was not understood."), "error_forbidden": _("You may not do that."),
        "error_refused": _("Routing refused the change."),
    }


@bp.get("/")
@role_required(Role.SUPERVISOR)
def wallboard():
    return render_template("supervisor/wallboard.html", strings=_page_strings(), queues=_config().routing.queues)


@bp.get("/vendor/<name>")
@role_required(Role.SUPERVISOR)
def vendor(name: str):
    path = VENDOR.get(name)
    if path is None or not path.exists():
        abort(404)
    return send_file(path, mimetype="text/javascript", max_age=3600)


def _report_args() -> tuple[str, str, str]:
    today = _today().isoformat()
    start = request.args.get("start") or today
    end = request.args.get("end") or start
    by = request.args.get("by") or "queue"
    return start, end, by


def _report_or_400():
    start, end, by = _report_args()
    try:
        period = parse_period(start, end, _tz())
        return build_report(db.session, _config(), period, by, language=reader_language()), (start, end, by), None
    except ReportError as exc:
        return None, (start, end, by), str(REPORT_ERRORS[exc.code])


@bp.get("/reports")
@role_required(Role.SUPERVISOR)
def reports():
    report, (start, end, by), error = _report_or_400()
    status = 400 if error else 200
    return render_template("supervisor/reports.html", report=report, start=start, end=end, by=by, error=error,
                           dimensions=DIMENSION_LABELS, formulas=FORMULA_TEXT,
                           short_abandon_s=_config().reports.short_abandon_s,
                           fcr_window_days=_config().reports.fcr_window_days, chart=_chart(report)), status


def _chart(report) -> dict | None:
    """Bar geometry for the page's SVG chart: offered and answered per group, service level as a dot."""
    if report is None or not report.rows:
        return None
    rows = report.rows[:31]
    peak = max(max(r.offered, r.answered) for r in rows) or 1
    bars = []
    for i, r in enumerate(rows):
        label = report.labels.get(r.key, r.key)
        bars.append({"x": 40 + i * 56, "label": label[:10], "offered_h": 160 * r.offered / peak,
                     "answered_h": 160 * r.answered / peak, "offered": r.offered, "answered": r.answered,
                     "sl": r.service_level, "sl_y": None if r.service_level is None else 180 - 160 * r.service_level})
    return {"bars": bars, "width": 60 + 56 * len(rows), "peak": peak}


@bp.get("/reports.csv")
@role_required(Role.SUPERVISOR)
def reports_csv():
    report, (start, end, by), error = _report_or_400()
    if error:
        abort(400, description=error)
    filename = f"report-{by}-{start}-{end}.csv"
    record(db.session, actor=current_user.get_id(), action="reports.exported", target_type="report",
           ip=request.remote_addr, data={"by": by, "start": str(start), "end": str(end)})
    db.session.commit()
    return Response(report_csv(report), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _local_start(day: date, hhmm: str) -> datetime:
    return datetime.combine(day, time.fromisoformat(hhmm), _tz()).astimezone(ZoneInfo("UTC"))


@bp.route("/staffing", methods=["GET", "POST"])
@role_required(Role.SUPERVISOR)
def staffing_page():
    config = _config()
    queue = request.values.get("queue") or config.routing.queues[0].name
    if queue not in {q.name for q in config.routing.queues}:
        abort(400, description=_("Unknown queue."))
    try:
        day = date.fromisoformat(request.values.get("day") or _today().isoformat())
    except ValueError:
        abort(400, description=_("Dates must look like 2026-03-02."))
    if request.method == "POST":
        _staffing_post(queue, day)
        return redirect(url_for("supervisor.staffing_page", queue=queue, day=day.isoformat()))
    start = datetime.combine(day, time.min, _tz())
    plans, error = [], None
    try:
        plans = staffing.staffing_plan(db.session, config, queue, start, start + timedelta(days=1))
    except staffing.StaffingError as exc:
        error = str(STAFFING_ERRORS[exc.code])
    agents = db.session.scalars(select(StaffUser).where(StaffUser.role == Role.AGENT, StaffUser.active.is_(True))
                                .order_by(StaffUser.name)).all()
    return render_template("supervisor/staffing.html", queue=queue, day=day, plans=plans, error=error,
                           queues=config.routing.queues, agents=agents, formulas=STAFFING_FORMULAS,
                           defaults=config.reports.staffing, tz=_tz())


def _staffing_post(queue: str, day: date) -> None:
    form = request.form
    try:
        if form.get("action") == "forecast":
            interval_min = int(form.get("interval_min") or _config().reports.staffing.interval_min)
            aht_s = int(form["aht_s"])
            counts = [int(x) for x in form["contacts"].replace(",", " ").split()]
            if not counts or interval_min <= 0 or len(counts) * interval_min > 24 * 60:
                raise staffing.StaffingError("bad_counts", "counts do not fit one day")
            staffing.save_forecast(db.session, queue, _local_start(day, form.get("first") or "00:00"), interval_min,
                                   [(c, aht_s) for c in counts])
        else:
            agent = db.session.get(StaffUser, int(form["agent_id"]))
            if agent is None or agent.role != Role.AGENT:
                raise staffing.StaffingError("unknown_agent", "unknown agent")
            staffing.add_shift(db.session, agent.id, _local_start(day, form["starts"]), _local_start(day, form["ends"]),
                               queue=form.get("shift_queue") or None)
        db.session.commit()
        flash(_("Saved."))
    except (KeyError, ValueError) as exc:  # StaffingError is a ValueError too
        db.session.rollback()
        problem = (STAFFING_ERRORS[exc.code] if isinstance(exc, staffing.StaffingError)
                   else _("a field is missing or not a number."))
        flash(_("Not saved: %(problem)s", problem=problem))
