"""Reports read from the database give the same hand-worked figures as the pure KPI tests."""
from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.reports import service
from app.reports.service import ReportError, build_report, parse_period, report_csv
from tests.reports import scenario as sc
from tests.reports.builders import build_scenario

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture()
def world(db_session):
    return build_scenario(db_session)


def test_report_by_queue_matches_the_hand_worked_figures(db_session, desk_config, world):
    period = parse_period("2026-03-02", "2026-03-02", SHANGHAI)
    report = build_report(db_session, desk_config, period, "queue", now=sc.at(86400))
    rows = {r.key: r for r in report.rows}
    general, billing, total = rows["general"], rows["billing"], report.total
    assert (general.offered, general.answered, general.abandoned, general.short_abandoned) == (5, 3, 1, 1)
    assert general.service_level == pytest.approx(0.5)
    assert general.asa_s == pytest.approx(62 / 3)
    assert general.aht_s == pytest.approx(628 / 3)
    assert general.fcr == pytest.approx(0.5) and general.csat == pytest.approx(0.5) and general.complaints == 1
    assert (billing.offered, billing.overflowed, billing.waiting) == (4, 1, 1)
    assert billing.service_level == pytest.approx(2 / 3)
    assert total.service_level == pytest.approx(4 / 7) and total.abandon_rate == pytest.approx(1 / 8)
    assert total.aht_s == pytest.approx(1358 / 5) and total.fcr == pytest.approx(0.75)
    assert total.csat == pytest.approx(2 / 3)  # the NPS answer is not a CSAT answer
    assert total.occupancy == pytest.approx(1358 / 3640)
    assert report.labels["general"] == "General enquiries"


def test_report_by_agent_has_names_and_occupancy(db_session, desk_config, world):
    period = parse_period("2026-03-02", "2026-03-02", SHANGHAI)
    report = build_report(db_session, desk_config, period, "agent", now=sc.at(86400))
    ann, bob = (str(world["agents"][n].id) for n in ("ann", "bob"))
    rows = {r.key: r for r in report.rows}
    assert rows[ann].occupancy == pytest.approx(948 / 2000)
    assert rows[bob].occupancy == pytest.approx(410 / 1640)
    assert report.labels[ann] == "Ann"


def test_an_agent_still_signed_in_is_staffed_until_now(db_session, desk_config, world):
    ann = world["agents"]["ann"]
    service.record_presence(db_session, ann.id, "available", at=sc.at(3000))
    service.record_presence(db_session, ann.id, "available", at=sc.at(3001))  # repeated: ignored
    db_session.commit()
    period = parse_period("2026-03-02", "2026-03-02", SHANGHAI)
    report = build_report(db_session, desk_config, period, "agent", now=sc.at(3600))
    row = {r.key: r for r in report.rows}[str(ann.id)]
    assert row.staffed_s == pytest.approx(2000 + 600)


def test_a_period_without_activity_is_empty(db_session, desk_config, world):
    period = parse_period("2026-03-20", "2026-03-20", SHANGHAI)
    report = build_report(db_session, desk_config, period, "channel")
    assert report.rows == [] and report.total.offered == 0 and report.total.service_level is None


def test_csv_has_one_line_per_group_and_a_total(db_session, desk_config, world):
    period = parse_period("2026-03-02", "2026-03-02", SHANGHAI)
    text = report_csv(build_report(db_session, desk_config, period, "queue", now=sc.at(86400)))
    lines = list(csv.DictReader(io.StringIO(text)))
    assert [line["key"] for line in lines] == ["billing", "general", "total"]
    general = lines[1]
    assert (general["offered"], general["service_level"], general["abandon_rate"]) == ("5", "0.5", "0.25")
    assert general["label"] == "General enquiries" and general["grouped_by"] == "queue"
    assert lines[2]["asa_s"] == "21.4"


def test_queues_and_channels_are_labelled_in_the_readers_language(db_session, desk_config, world):
    period = parse_period("2026-03-02", "2026-03-02", SHANGHAI)
    chinese = build_report(db_session, desk_config, period, "queue", now=sc.at(86400), language="zh")
    assert (chinese.labels["general"], chinese.labels["billing"]) == ("一般咨询", "账单")
    assert build_report(db_session, desk_config, period, "channel", now=sc.at(86400),
                        language="zh").labels["voice"] == "电话"
    english = build_report(db_session, desk_config, period, "channel", now=sc.at(86400))
    assert (english.labels["voice"], english.labels["email"]) == ("Phone", "Email")
    assert "一般咨询" in report_csv(chinese)


def test_csv_defuses_spreadsheet_formulas_in_labels(db_session, desk_config):
    from app.reports.kpis import KpiRow, Period

    report = service.Report(service.kpis.Dimension.AGENT, Period(sc.at(0), sc.at(1)), "UTC",
                            [KpiRow("7")], KpiRow("total"), {"7": "=HYPERLINK(1)"})
    assert "'=HYPERLINK(1)" in report_csv(report)


@pytest.mark.parametrize("start, end, message", [
    ("2026-03-02", "2026-03-01", "ends before"),
    ("yesterday", "2026-03-01", "look like"),
    ("2026-01-01", "2026-12-31", "at most"),
])
def test_bad_periods_are_refused(start, end, message):
    with pytest.raises(ReportError, match=message):
        parse_period(start, end, SHANGHAI)


def test_unknown_grouping_is_refused(db_session, desk_config):
    with pytest.raises(ReportError, match="grouping"):
        build_report(db_session, desk_config, service.local_day_period(date(2026, 3, 2), SHANGHAI), "weather")


def test_local_day_period_follows_the_desk_time_zone():
    period = service.local_day_period(date(2026, 3, 2), SHANGHAI)
    assert period.start == sc.at(-9 * 3600) and period.end - period.start == timedelta(days=1)
