"""Deadline computation across weekends, holidays, time zones and regulatory caps; alert points."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.calendars import CalendarConfig
from app.complaints.config import (
    DeadlinesConfig,
    Duration,
    LevelDeadlines,
    RegulatoryProfile,
    Text,
)
from app.complaints.deadlines import (
    DeadlineError,
    add_duration,
    business_time_between,
    compute_deadlines,
    elapsed_fraction,
)

CONFIG = DeadlinesConfig()
# Mon-Fri 09:00-18:00 UTC; Wed 2 Dec 2026 is a holiday in the second calendar.
PLAIN = CalendarConfig()
HOLIDAY = CalendarConfig(holidays=[date(2026, 12, 2)])
SHANGHAI = CalendarConfig(timezone="Asia/Shanghai", holidays=[date(2026, 10, 1), date(2026, 10, 2)])


def at(day, hour, minute=0):
    """A moment in late Nov / Dec 2026: 23 Nov is a Monday, 27 Nov a Friday, 28-29 Nov the weekend."""
    month = 11 if day >= 20 else 12
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize("level, received, calendar, ack_due, resolve_due", [
    # P1: acknowledge in 1 clock hour (by phone), resolve in 2 business days.
    ("P1", at(27, 17), PLAIN, at(27, 18), at(1, 18)),          # Friday -> Mon 30 Nov, Tue 1 Dec
    ("P1", at(28, 10), PLAIN, at(28, 11), at(1, 18)),          # Saturday: clock hour, business days from Mon
    # P2: 4 business hours / 5 business days.
    ("P2", at(23, 10), PLAIN, at(23, 14), at(30, 18)),         # Monday morning
    ("P2", at(27, 16), PLAIN, at(30, 11), at(4, 18)),          # Friday 16:00: 2h Fri + 2h Mon
    ("P2", at(28, 12), PLAIN, at(30, 13), at(4, 18)),          # Saturday: starts Monday 09:00
    ("P2", at(1, 16), HOLIDAY, at(3, 11), at(9, 18)),          # Tue 16:00, Wed holiday skipped
    ("P2", at(1, 16), PLAIN, at(2, 11), at(8, 18)),            # same without the holiday
    # P3: 1 business day / 10 business days.
    ("P3", at(27, 12), PLAIN, at(30, 18), at(11, 18)),
    ("P3", at(1, 12), HOLIDAY, at(3, 18), at(16, 18)),
    # P4: at first contact / 3 business days.
    ("P4", at(27, 20), PLAIN, at(27, 20), at(2, 18)),
    ("P4", at(27, 20), HOLIDAY, at(27, 20), at(3, 18)),
])
def test_level_deadlines(level, received, calendar, ack_due, resolve_due):
    result = compute_deadlines(level, received, CONFIG, calendar)
    assert (result.acknowledge.due, result.resolve.due) == (ack_due, resolve_due)
    assert result.resolve.capped_by is None


def test_level_extras_from_config():
    p1, p4 = (compute_deadlines(lv, at(23, 10), CONFIG, PLAIN) for lv in ("P1", "P4"))
    assert p1.acknowledge_by == "phone" and p4.acknowledge_by == "any"
    assert p4.resolution_note == "short" and p1.resolution_note == "full"
    assert p1.to_dict()["resolve"]["due"] == at(25, 18).isoformat()


def test_business_days_in_local_time_zone_and_national_holidays():
    # 30 Sep 2026 (Wed) 10:00 Shanghai = 02:00 UTC; 1-2 Oct holidays, 3-4 Oct weekend; 5 Oct Monday.
    received = datetime(2026, 9, 30, 2, 0, tzinfo=UTC)
    result = compute_deadlines("P2", received, CONFIG, SHANGHAI)
    assert result.acknowledge.due == datetime(2026, 9, 30, 6, 0, tzinfo=UTC)  # 14:00 Shanghai
    # 5 business days: 5, 6, 7, 8, 9 Oct -> 9 Oct 18:00 Shanghai = 10:00 UTC.
    assert result.resolve.due == datetime(2026, 10, 9, 10, 0, tzinfo=UTC)


def cn_profile_config(**level_overrides):
    profiles = dict(CONFIG.regulatory_profiles)
    profiles["tight"] = RegulatoryProfile(label=Text(en="t", zh="t"), final_response=Duration(amount=3, unit="days"),
                                          acknowledge=Duration(amount=30, unit="minutes"))
    return DeadlinesConfig(regulatory_profiles=profiles, **level_overrides)


@pytest.mark.parametrize("level, profile, received, expected_due, capped", [
    # 15 calendar days (China banking/insurance) caps P3's 10 business days once a holiday intervenes.
    ("P2", "cn_banking_insurance", at(23, 10), at(30, 18), None),         # 5 bd = Mon 30 Nov, inside 15 days
    ("P3", "cn_banking_insurance", at(23, 10), at(8, 10), "cn_banking_insurance"),  # 10 bd = Tue 8 Dec 18:00
    ("P3", "cn_banking_insurance", at(1, 12), at(16, 12), "cn_banking_insurance"),  # 10 bd = 16 Dec 18:00
    ("P1", "general", at(23, 10), at(25, 18), None),                      # 8 weeks never bites P1
    ("P3", "tight", at(23, 10), at(26, 10), "tight"),
])
def test_regulatory_cap(level, profile, received, expected_due, capped):
    result = compute_deadlines(level, received, cn_profile_config(), HOLIDAY, profile=profile)
    assert result.resolve.due == expected_due
    assert result.resolve.capped_by == capped
    if capped:
        assert "regulatory limit" in result.resolve.explanation.en and "监管时限" in result.resolve.explanation.zh
        assert not result.resolve.business  # the cap is in calendar days, so alerts use the wall clock


def test_acknowledge_cap_from_profile():
    result = compute_deadlines("P3", at(23, 10), cn_profile_config(), PLAIN, profile="tight")
    assert result.acknowledge.due == at(23, 10, 30) and result.acknowledge.capped_by == "tight"


def test_long_cap_with_generous_level():
    slow = LevelDeadlines(acknowledge=Duration(amount=5, unit="business_days"),
                          resolve=Duration(amount=100, unit="business_days"))
    config = DeadlinesConfig(levels={**CONFIG.levels, "P4": slow})
    result = compute_deadlines("P4", at(23, 10), config, PLAIN)
    assert result.resolve.due == at(23, 10) + timedelta(weeks=8) and result.resolve.capped_by == "general"


def test_alerts_at_50_80_and_breach_in_business_time():
    # P2 acknowledge from Friday 17:00: 4 business hours = Fri 17-18 + Mon 09-12.
    clock = compute_deadlines("P2", at(27, 17), CONFIG, PLAIN).acknowledge
    assert [(a.name, a.at) for a in clock.alerts] == [
        ("50%", at(30, 10)), ("80%", at(30, 11, 12)), ("breach", at(30, 12))]
    assert all(a.kind == "acknowledge" for a in clock.alerts)


def test_alerts_on_wall_clock_and_zero_length_clock():
    p1 = compute_deadlines("P1", at(28, 10), CONFIG, PLAIN)
    assert [a.at for a in p1.acknowledge.alerts] == [at(28, 10, 30), at(28, 10, 48), at(28, 11)]
    p4 = compute_deadlines("P4", at(28, 10), CONFIG, PLAIN)
    assert [(a.name, a.at) for a in p4.acknowledge.alerts] == [("breach", at(28, 10))]


def test_resolve_alerts_skip_weekend_and_holiday():
    # P4 resolve from Friday 12:00: 3 business days Mon, Tue, (Wed holiday) Thu -> Thu 3 Dec 18:00.
    # Open time: Fri 6h + Mon 9h + Tue 9h + Thu 9h = 33h; half is 16.5h -> Tue 1 Dec 10:30.
    clock = compute_deadlines("P4", at(27, 12), CONFIG, HOLIDAY).resolve
    assert clock.due == at(3, 18)
    half = clock.alerts[0]
    assert half.name == "50%" and half.at == at(1, 10, 30)
    assert business_time_between(HOLIDAY, clock.start, half.at) == business_time_between(
        HOLIDAY, clock.start, clock.due) / 2


@pytest.mark.parametrize("bad_level, profile", [("P5", None), ("P1", "mars")])
def test_unknown_level_or_profile(bad_level, profile):
    with pytest.raises(DeadlineError):
        compute_deadlines(bad_level, at(23, 10), CONFIG, PLAIN, profile=profile)


def test_naive_datetime_refused():
    with pytest.raises(DeadlineError):
        compute_deadlines("P1", datetime(2026, 11, 23, 10), CONFIG, PLAIN)
    with pytest.raises(DeadlineError):
        add_duration(PLAIN, datetime(2026, 11, 23, 10), Duration(amount=1, unit="hours"))


@pytest.mark.parametrize("start, end, hours", [
    (at(27, 17), at(30, 12), 4), (at(30, 12), at(27, 17), 0), (at(28, 1), at(29, 23), 0), (at(23, 8), at(23, 20), 9)])
def test_business_time_between(start, end, hours):
    assert business_time_between(PLAIN, start, end) == timedelta(hours=hours)


def test_elapsed_fraction():
    clock = compute_deadlines("P2", at(27, 17), CONFIG, PLAIN).acknowledge
    frac = lambda now: elapsed_fraction(PLAIN, clock.start, clock.due, clock.business, now)
    assert frac(at(27, 17)) == 0
    assert frac(at(29, 12)) == 0.25  # the weekend does not count
    assert frac(at(30, 12)) == 1
    assert frac(at(30, 14)) == 1.5
    assert elapsed_fraction(PLAIN, at(23, 10), at(23, 12), False, at(23, 11)) == 0.5
    assert elapsed_fraction(PLAIN, at(23, 10), at(23, 10), False, at(23, 9)) == 0.0
    assert elapsed_fraction(PLAIN, at(23, 10), at(23, 10), True, at(23, 10)) == 1.0
    # a business clock over closed time only is measured on the wall clock
    assert elapsed_fraction(PLAIN, at(28, 10), at(28, 12), True, at(28, 11)) == 0.5


@given(st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)),
       st.sampled_from(["P1", "P2", "P3", "P4"]))
def test_invariants(received, level):
    result = compute_deadlines(level, received, CONFIG, HOLIDAY)
    for clock in (result.acknowledge, result.resolve):
        assert clock.due >= received
        assert clock.due <= received + timedelta(weeks=8)
        times = [a.at for a in clock.alerts]
        assert times == sorted(times) and times[-1] == clock.due and all(t >= received for t in times)
    assert result.acknowledge.due <= result.resolve.due
