"""The supervisor's pages: who may see them, reports with formulas and CSV, staffing forms."""
from __future__ import annotations

import csv
import io

import pytest

from app.reports.models import ScheduledShift, StaffingForecast
from tests.factories import login, make_staff
from tests.reports.builders import build_scenario


@pytest.mark.parametrize("path", ["/supervisor/", "/supervisor/reports", "/supervisor/reports.csv",
                                  "/supervisor/staffing", "/supervisor/vendor/socket.io.min.js"])
def test_agents_are_refused_and_anonymous_users_sent_to_sign_in(app, client, db_session, path):
    assert client.get(path).status_code == 302
    agent = make_staff(db_session)
    db_session.commit()
    login(client, agent)
    assert client.get(path).status_code == 403


def test_the_wallboard_page_carries_its_strings_and_the_local_socket_client(supervisor_client):
    page = supervisor_client.get("/supervisor/?lang=zh")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'id="sv-strings"' in html and "/supervisor/vendor/socket.io.min.js" in html
    assert "监控大屏" in html  # the page is translated
    js = supervisor_client.get("/supervisor/vendor/socket.io.min.js")
    assert js.status_code == 200 and js.mimetype == "text/javascript"
    assert supervisor_client.get("/supervisor/vendor/jquery.js").status_code == 404


def test_report_page_shows_hand_worked_figures_chart_and_formulas(supervisor_client, db_session):
    build_scenario(db_session)
    page = supervisor_client.get("/supervisor/reports?start=2026-03-02&end=2026-03-02&by=queue")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "General enquiries" in html and "50.0%" in html and "57.1%" in html  # SL general, SL total 4/7
    assert "<svg" in html and 'id="formula-service_level"' in html
    assert "answered within the queue" in html


def test_report_errors_are_shown(supervisor_client):
    page = supervisor_client.get("/supervisor/reports?start=2026-03-05&end=2026-03-01")
    assert page.status_code == 400 and "ends before" in page.get_data(as_text=True)
    assert supervisor_client.get("/supervisor/reports?by=weather").status_code == 400
    assert supervisor_client.get("/supervisor/reports.csv?start=bad").status_code == 400


def test_csv_export(supervisor_client, db_session):
    build_scenario(db_session)
    response = supervisor_client.get("/supervisor/reports.csv?start=2026-03-02&by=channel")
    assert response.mimetype == "text/csv"
    assert 'filename="report-channel-2026-03-02-2026-03-02.csv"' in response.headers["Content-Disposition"]
    rows = {r["key"]: r for r in csv.DictReader(io.StringIO(response.get_data(as_text=True)))}
    assert (rows["voice"]["offered"], rows["chat"]["offered"], rows["total"]["offered"]) == ("8", "1", "9")
    from app.audit.models import AuditEntry

    exported = db_session.query(AuditEntry).filter_by(action="reports.exported").one()
    assert exported.data == {"by": "channel", "start": "2026-03-02", "end": "2026-03-02"}


def test_an_empty_day_has_no_chart(supervisor_client):
    html = supervisor_client.get("/supervisor/reports?start=2020-01-01").get_data(as_text=True)
    assert "<svg" not in html and "How each figure is computed" in html


def test_staffing_forecast_and_shift_make_a_plan(supervisor_client, db_session):
    agent = make_staff(db_session, name="Ann")
    db_session.commit()
    base = "/supervisor/staffing?queue=general&day=2026-03-02"
    saved = supervisor_client.post(base, data={"action": "forecast", "first": "09:00", "interval_min": "30",
                                               "aht_s": "180", "contacts": "100, 50"})
    assert saved.status_code == 302
    supervisor_client.post(base, data={"action": "shift", "agent_id": str(agent.id), "starts": "09:00",
                                       "ends": "10:00", "shift_queue": ""})
    assert db_session.query(StaffingForecast).count() == 2 and db_session.query(ScheduledShift).count() == 1
    html = supervisor_client.get(base).get_data(as_text=True)
    assert "09:00" in html and "09:30" in html and "10.00" in html  # 100 calls x 180 s / 1800 s = 10 Erlangs
    assert "<td>14</td>" in html and "<td>20</td>" in html  # needed, to schedule with 30% shrinkage


@pytest.mark.parametrize("form, message", [
    ({"action": "forecast", "aht_s": "180", "contacts": "x"}, "not a number"),
    ({"action": "forecast", "aht_s": "180", "contacts": "-1"}, "Contacts must be 0 or more"),
    ({"action": "forecast", "aht_s": "180", "contacts": " ", "interval_min": "30"}, "whole day"),
    ({"action": "shift", "agent_id": "999", "starts": "09:00", "ends": "10:00"}, "no longer exists"),
    ({"action": "shift", "starts": "09:00", "ends": "10:00"}, "missing"),
])
def test_bad_staffing_forms_are_refused_with_a_message(supervisor_client, form, message):
    response = supervisor_client.post("/supervisor/staffing?queue=general&day=2026-03-02", data=form,
                                      follow_redirects=True)
    assert message in response.get_data(as_text=True)


def test_staffing_refuses_unknown_queues_and_dates(supervisor_client):
    assert supervisor_client.get("/supervisor/staffing?queue=nope").status_code == 400
    assert supervisor_client.get("/supervisor/staffing?day=someday").status_code == 400
    assert "No forecast" in supervisor_client.get("/supervisor/staffing").get_data(as_text=True)
