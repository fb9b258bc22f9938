"""Reports over the database: load a period's events into ``kpis`` and shape the result for pages and CSV.

Services take a session, the desk config and plain values; they never read Flask's request. The figures
are all computed by ``app.reports.kpis`` from ``interaction_events`` timestamps; CSAT comes from the
survey answers (``customer_feedback``) and complaints from ``complaints``, both attributed to the
queue, agent and channel of the interaction they belong to.
"""
from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask_babel import force_locale
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app.auth.models import StaffUser
from app.complaints.models import Complaint
from app.crm.labels import LABELS
from app.crm.models import CustomerFeedback
from app.db import utcnow
from app.interactions.models import Interaction, InteractionEvent
from app.reports import kpis
from app.reports.models import AgentPresenceLog

__all__ = ["Report", "ReportError", "build_report", "report_csv", "local_day_period", "presence_spans",
           "record_presence", "parse_period", "load_input"]

MAX_PERIOD_DAYS = 92


class ReportError(ValueError):
    """A report request that cannot be answered; ``code`` is one of bad_date, reversed, too_long,
    unknown_grouping (pages translate it)."""

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(message)


@dataclass(frozen=True)
class Report:
    dimension: kpis.Dimension
    period: kpis.Period
    timezone: str
    rows: list[kpis.KpiRow]
    total: kpis.KpiRow
    labels: dict[str, str]  # row key -> display label (agent names, queue labels)


def local_day_period(day: date, tz: ZoneInfo, days: int = 1) -> kpis.Period:
    """The half-open period covering ``days`` local days from ``day`` in ``tz``, in UTC."""
    start = datetime.combine(day, time.min, tz)
    end = datetime.combine(day + timedelta(days=days), time.min, tz)
    return kpis.Period(start.astimezone(ZoneInfo("UTC")), end.astimezone(ZoneInfo("UTC")))


def parse_period(start: str, end: str, tz: ZoneInfo) -> kpis.Period:
    """Local dates ``start``..``end`` inclusive (YYYY-MM-DD). Raises ReportError when unreadable,
    reversed or longer than MAX_PERIOD_DAYS."""
    try:
        first, last = date.fromisoformat(start), date.fromisoformat(end)
    except ValueError as exc:
        raise ReportError("bad_date", "dates must look like 2026-03-02") from exc
    days = (last - first).days + 1
    if days < 1:
        raise ReportError("reversed", "the period ends before it starts")
    if days > MAX_PERIOD_DAYS:
        raise ReportError("too_long", f"a report covers at most {MAX_PERIOD_DAYS} days")
    return local_day_period(first, tz, days)


def record_presence(session: Session, agent_id: int, presence: str, *, reason: str | None = None,
                    at: datetime | None = None) -> AgentPresenceLog:
    """Append one presence change to the history (does not commit). Repeating the current presence
    adds nothing and returns the existing row, so a re-sent announcement is harmless."""
    last = session.scalars(select(AgentPresenceLog).where(AgentPresenceLog.agent_id == agent_id)
                           .order_by(AgentPresenceLog.occurred_at.desc(), AgentPresenceLog.id.desc())
                           .limit(1)).first()
    if last is not None and last.presence == presence and last.reason == reason:
        return last
    row = AgentPresenceLog(agent_id=agent_id, presence=presence, reason=reason, occurred_at=at or utcnow())
    session.add(row)
    return row


def presence_spans(session: Session, start: datetime, end: datetime) -> list[kpis.PresenceSpan]:
    """Every agent's presence spans overlapping [start, end), from the presence history."""
    rows = session.execute(select(AgentPresenceLog.agent_id, AgentPresenceLog.presence, AgentPresenceLog.occurred_at)
                           .where(AgentPresenceLog.occurred_at < end)
                           .order_by(AgentPresenceLog.agent_id, AgentPresenceLog.occurred_at, AgentPresenceLog.id))
    by_agent: dict[int, list[tuple[str, datetime]]] = defaultdict(list)
    for agent_id, presence, at in rows:
        by_agent[agent_id].append((presence, at))
    spans = []
    for agent_id, changes in by_agent.items():
        for (presence, at), nxt in zip(changes, changes[1:] + [None], strict=True):
            until = nxt[1] if nxt else None
            if until is None or until > start:
                spans.append(kpis.PresenceSpan(agent_id, presence, at, until))
    return spans


def load_input(session: Session, period: kpis.Period, *, short_abandon_s: float,
               fcr_window: timedelta, now: datetime | None = None) -> kpis.ReportInput:
    """Read the period's events (and each touched interaction's whole log), surveys, complaints,
    presence and the customers' later contacts into plain ``kpis`` records."""
    now = now or utcnow()
    surveys = session.execute(select(CustomerFeedback.interaction_id, CustomerFeedback.score,
                                     CustomerFeedback.recorded_at)
                              .where(CustomerFeedback.kind == "csat", CustomerFeedback.recorded_at >= period.start,
                                     CustomerFeedback.recorded_at < period.end)).all()
    complaints = session.execute(select(Complaint.interaction_id, Complaint.received_at, Complaint.channel)
                                 .where(Complaint.received_at >= period.start,
                                        Complaint.received_at < period.end)).all()
    touched = select(InteractionEvent.interaction_id).where(
        InteractionEvent.occurred_at >= period.start, InteractionEvent.occurred_at < period.end).distinct()
    extra_ids = {r[0] for r in surveys if r[0]} | {r[0] for r in complaints if r[0]}
    interactions = session.scalars(select(Interaction).where(
        or_(Interaction.id.in_(touched), Interaction.id.in_(extra_ids)))).all()
    contacts = {i.id: kpis.ContactInfo(i.id, i.channel, i.queue, i.agent_id, i.customer_id, i.direction,
                                       i.created_at) for i in interactions}
    events_by_id: dict[int, list[kpis.EventRecord]] = defaultdict(list)
    if contacts:
        for ev in session.scalars(select(InteractionEvent).where(InteractionEvent.interaction_id.in_(list(contacts)))
                                  .order_by(InteractionEvent.interaction_id, InteractionEvent.id)):
            events_by_id[ev.interaction_id].append(kpis.EventRecord(
                ev.kind, ev.from_state, ev.to_state, ev.occurred_at, ev.actor, ev.data or {}))
    visits, handlings = [], []
    for interaction_id, info in contacts.items():
        v, h = kpis.derive_contact(info, events_by_id[interaction_id], short_abandon_s=short_abandon_s)
        visits += v
        handlings += h
    customers = {c.customer_id for c in contacts.values() if c.customer_id is not None}
    later = session.execute(select(Interaction.customer_id, Interaction.created_at).where(
        Interaction.customer_id.in_(customers), Interaction.direction == "inbound",
        Interaction.created_at >= period.start, Interaction.created_at < period.end + fcr_window)).all() \
        if customers else []
    return kpis.ReportInput(
        contacts=contacts, visits=visits, handlings=handlings,
        surveys=[kpis.SurveyAnswer(i, s, at) for i, s, at in surveys],
        complaints=[kpis.ComplaintRecord(i, at, ch) for i, at, ch in complaints],
        presence=[_clip_open(span, min(now, period.end)) for span in presence_spans(session, period.start, period.end)],
        customer_contacts=[(c, at) for c, at in later])


def _clip_open(span: kpis.PresenceSpan, until: datetime) -> kpis.PresenceSpan:
    """An open span (the agent's current presence) counts up to now, not to the end of the period."""
    if span.end is None:
        return kpis.PresenceSpan(span.agent_id, span.presence, span.start, max(span.start, until))
    return span


def build_report(session: Session, config, period: kpis.Period, dimension: str,
                 *, now: datetime | None = None, language: str = "en") -> Report:
    """The KPIs of ``period`` grouped by ``dimension`` (queue | agent | channel | day), its rows labelled
    in ``language`` (queues and channels by name). Raises ReportError for an unknown dimension."""
    try:
        dim = kpis.Dimension(dimension)
    except ValueError as exc:
        raise ReportError("unknown_grouping", f"unknown grouping {dimension!r}") from exc
    settings = config.reports
    tz = ZoneInfo(config.desk.timezone)
    fcr_window = timedelta(days=settings.fcr_window_days)
    data = load_input(session, period, short_abandon_s=settings.short_abandon_s, fcr_window=fcr_window, now=now)
    thresholds = {q.name: q.service_level.within_s for q in config.routing.queues}
    rows, total = kpis.aggregate(data, period, dim, sl_threshold_s=thresholds,
                                 default_sl_threshold_s=settings.default_sl_within_s, fcr_window=fcr_window, tz=tz)
    return Report(dim, period, config.desk.timezone, rows, total, _labels(session, config, dim, rows, language))


def _labels(session: Session, config, dim: kpis.Dimension, rows: list[kpis.KpiRow],
            language: str) -> dict[str, str]:
    if dim == kpis.Dimension.AGENT:
        ids = [int(r.key) for r in rows if r.key.isdigit()]
        names = dict(session.execute(select(StaffUser.id, StaffUser.name).where(StaffUser.id.in_(ids))).all())
        return {str(i): n for i, n in names.items()}
    if dim == kpis.Dimension.QUEUE:
        return {q.name: q.label(language) for q in config.routing.queues}
    if dim == kpis.Dimension.CHANNEL:
        with force_locale(language):
            return {code: str(name) for code, name in LABELS["channel"].items()}
    return {}


CSV_COLUMNS = ["key", "label", "offered", "answered", "answered_in_sl", "abandoned", "short_abandoned", "overflowed",
               "waiting", "service_level", "abandon_rate", "asa_s", "handled", "aht_s", "talk_s", "hold_s", "wrap_s",
               "staffed_s", "occupancy", "fcr", "csat", "csat_avg", "csat_responses", "complaints"]


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))
    return str(value)


def report_csv(report: Report) -> str:
    """The report as CSV: one line per group and a final ``total`` line; ratios as fractions (0.8 = 80%),
    times in seconds, empty where a figure has no denominator. Leading =,+,-,@ in labels are quoted
    with an apostrophe so a spreadsheet never runs them as formulas."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["period_start", "period_end", "grouped_by", *CSV_COLUMNS])
    head = [report.period.start.isoformat(), report.period.end.isoformat(), str(report.dimension)]
    for row in [*report.rows, report.total]:
        values = row.as_dict()
        label = report.labels.get(row.key, row.key)
        if label[:1] in ("=", "+", "-", "@") and label != kpis.NO_KEY:
            label = "'" + label
        writer.writerow(head + [_cell(label if col == "label" else values[col]) for col in CSV_COLUMNS])
    return out.getvalue()
