"""Realtime after-commit delivery, jobs, logging masks, demo data and business calendars."""
from __future__ import annotations

import logging
from datetime import date, datetime, timedelta, UTC

import pytest

from app import realtime
from app.calendars import CalendarConfig, add_business_days, add_business_time, is_open, next_open
from app.logging_setup import JsonFormatter, mask_personal_data
from tests.factories import make_interaction


@pytest.fixture()
def received():
    seen: list[tuple[str, dict]] = []
    listener = lambda name, payload: seen.append((name, payload))  # noqa: E731
    realtime.subscribe(listener)
    yield seen
    realtime.unsubscribe(listener)


def test_events_are_delivered_only_after_commit(db_session, received):
    make_interaction(db_session)
    assert received == []
    db_session.commit()
    assert [name for name, _ in received] == ["interaction.created"]


def test_listeners_run_once_the_committed_transaction_has_given_its_connection_back(db_session):
    checked_out: list[int] = []
    pool = db_session.get_bind().pool
    listener = lambda name, payload: checked_out.append(pool.checkedout())  # noqa: E731
    before = pool.checkedout()
    realtime.subscribe(listener)
    try:
        make_interaction(db_session)
        db_session.commit()
    finally:
        realtime.unsubscribe(listener)
    assert checked_out and all(count == before for count in checked_out)


def test_rolled_back_events_are_never_delivered(db_session, received):
    make_interaction(db_session)
    db_session.rollback()
    db_session.commit()
    assert received == []


def test_a_failing_listener_does_not_stop_others(received):
    def broken(name, payload):
        raise RuntimeError("boom")

    realtime.subscribe(broken)
    try:
        realtime.publish("x", {})
    finally:
        realtime.unsubscribe(broken)
    assert received == [("x", {})]


def _note(path, value):
    path.write_text(value)


def test_inline_and_thread_jobs_run_with_an_app_context(app, tmp_path):
    from app.jobs import InProcessJobs, enqueue

    target = tmp_path / "ran.txt"
    enqueue(_note, target, "inline")
    assert target.read_text() == "inline"
    threaded = InProcessJobs(app)
    import threading

    done = threading.Event()
    threaded.enqueue(lambda: done.set())
    assert done.wait(10)
    delayed = threading.Event()
    threaded.enqueue(lambda: delayed.set(), delay=timedelta(milliseconds=50))
    assert delayed.wait(10)


def test_rq_jobs_round_trip_through_redis(app, tmp_path):
    """With a real Redis (CI) the RQ queue is used exactly as in production."""
    settings = app.extensions["desk.settings"]
    if not settings.redis_url:
        import fakeredis

        connection = fakeredis.FakeRedis()
    else:
        import redis

        connection = redis.Redis.from_url(settings.redis_url)
    from rq import SimpleWorker

    from app.jobs import RQJobs

    jobs = RQJobs(connection)
    target = tmp_path / "rq.txt"
    job_id = jobs.enqueue(_note, target, "from rq", queue="default")
    assert job_id
    SimpleWorker([jobs.queues["default"]], connection=connection).work(burst=True)
    assert target.read_text() == "from rq"


def test_personal_data_is_masked_in_logs():
    assert mask_personal_data("caller +8613800138000 wrote li.na@example.cn") == \
        "caller ******00 wrote l***@example.cn"
    record = logging.LogRecord("desk", logging.INFO, __file__, 1, "call from %s", ("+14155550100",), None)
    assert "+1415" not in JsonFormatter().format(record)


def test_demo_seed_is_idempotent(app, db_session):
    from app.auth.models import StaffUser
    from app.crm.models import Customer
    from app.demo import seed

    first = seed(db_session)
    assert any("agent1@demo.desk" in line for line in first)
    second = seed(db_session)
    assert any("exist already" in line for line in second)
    tiers = {c.tier for c in db_session.query(Customer)}
    assert tiers == {"vip", "major", "ordinary", "small"}
    assert {u.role for u in db_session.query(StaffUser)} == {"agent", "supervisor", "admin"}


SHANGHAI = CalendarConfig(timezone="Asia/Shanghai",
                          weekly={"mon": ["09:00-12:00", "13:00-18:00"], "tue": ["09:00-18:00"],
                                  "wed": ["09:00-18:00"], "thu": ["09:00-18:00"], "fri": ["09:00-18:00"]},
                          holidays=[date(2026, 10, 1)])


def _sh(y, m, d, hh, mm=0):
    from zoneinfo import ZoneInfo

    return datetime(y, m, d, hh, mm, tzinfo=ZoneInfo("Asia/Shanghai"))


@pytest.mark.parametrize("moment, expected", [
    (_sh(2026, 11, 23, 9, 0), True),    # Monday opening
    (_sh(2026, 11, 23, 12, 30), False),  # lunch gap
    (_sh(2026, 11, 23, 18, 0), False),   # closing is exclusive
    (_sh(2026, 11, 22, 10, 0), False),   # Sunday
    (_sh(2026, 10, 1, 10, 0), False),    # holiday (a Thursday)
])
def test_is_open(moment, expected):
    assert is_open(SHANGHAI, moment) is expected
    assert is_open(SHANGHAI, moment.astimezone(UTC)) is expected


def test_business_time_skips_nights_weekends_and_holidays():
    friday_5pm = _sh(2026, 11, 27, 17, 0)
    assert add_business_time(SHANGHAI, friday_5pm, timedelta(hours=2)) == _sh(2026, 11, 30, 10, 0)
    assert add_business_time(SHANGHAI, _sh(2026, 9, 30, 17), timedelta(hours=2)) == _sh(2026, 10, 2, 10)
    assert add_business_days(SHANGHAI, friday_5pm, 2) == _sh(2026, 12, 1, 18, 0)
    assert next_open(SHANGHAI, _sh(2026, 11, 28, 8)) == _sh(2026, 11, 30, 9)
    never = CalendarConfig(weekly={})
    with pytest.raises(ValueError):
        add_business_time(never, friday_5pm, timedelta(hours=1))
    assert next_open(never, friday_5pm) is None


def test_every_message_has_a_chinese_translation():
    """Everything a user sees speaks English and Simplified Chinese (tools/i18n.py fills the gaps)."""
    from babel.messages.pofile import read_po

    from app.i18n import TRANSLATIONS

    with (TRANSLATIONS / "zh/LC_MESSAGES/messages.po").open("rb") as handle:
        catalogue = read_po(handle)
    untranslated = [m.id for m in catalogue if m.id and not (m.string if isinstance(m.string, str) else all(m.string))]
    assert untranslated == []
