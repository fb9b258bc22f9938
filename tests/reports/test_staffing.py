"""Staffing from a forecast with Erlang C, beside the agents scheduled."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.reports.staffing import (
    StaffingError, add_shift, plan_interval, save_forecast, scheduled_per_interval, staffing_plan,
)
from tests.factories import make_staff

T = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def test_the_worked_example_100_calls_in_30_minutes():
    """Call Centre Helper's Erlang C worked example: 100 calls in 30 min, AHT 180 s, 80% within 20 s
    -> 10 Erlangs, 14 agents (service level 88.8%, 13 would give 78.5%), 20 with 30% shrinkage."""
    plan = plan_interval(T, 100, 180, interval_s=1800, target_level=0.8, target_s=20, shrinkage=0.3,
                         scheduled=15, max_agents=100)
    assert plan.traffic == 10.0
    assert plan.agents_needed == 14
    assert plan.service_level == pytest.approx(0.8884, abs=1e-4)
    assert plan.agents_to_schedule == 20  # ceil(14 / 0.7)
    assert plan.gap == -5
    assert plan.occupancy == pytest.approx(10 / 14)


@pytest.mark.parametrize("contacts, shrinkage, needed, to_schedule", [
    (0, 0.3, 0, 0),      # nothing forecast: nobody needed
    (100, 0.0, 14, 14),  # no shrinkage: schedule exactly the on-phone agents
    (100, 0.5, 14, 28),
])
def test_shrinkage_table(contacts, shrinkage, needed, to_schedule):
    plan = plan_interval(T, contacts, 180, interval_s=1800, target_level=0.8, target_s=20, shrinkage=shrinkage,
                         scheduled=0, max_agents=100)
    assert (plan.agents_needed, plan.agents_to_schedule) == (needed, to_schedule)


@pytest.mark.parametrize("contacts, aht, level, shrinkage, max_agents", [
    (-1, 180, 0.8, 0.3, 100), (10, 0, 0.8, 0.3, 100), (10, 180, 1.0, 0.3, 100), (10, 180, 0.8, 1.0, 100),
    (1000, 180, 0.8, 0.3, 50),
])
def test_impossible_plans_are_refused(contacts, aht, level, shrinkage, max_agents):
    with pytest.raises(StaffingError):
        plan_interval(T, contacts, aht, interval_s=1800, target_level=level, target_s=20, shrinkage=shrinkage,
                      scheduled=0, max_agents=max_agents)


def test_a_shift_counts_only_for_the_intervals_it_covers_whole():
    half = timedelta(minutes=30)
    shifts = [(T, T + 2 * half), (T + half, T + 3 * half), (T + timedelta(minutes=10), T + 2 * half)]
    assert scheduled_per_interval(shifts, [T, T + half, T + 2 * half], half) == [1, 3, 1]


def test_plan_from_the_database(db_session, desk_config):
    ann, bob = make_staff(db_session), make_staff(db_session)
    save_forecast(db_session, "general", T, 30, [(100, 180), (0, 180)])
    save_forecast(db_session, "general", T, 30, [(100, 180), (10, 200)])  # replaces, does not add
    add_shift(db_session, ann.id, T, T + timedelta(hours=1))
    add_shift(db_session, bob.id, T, T + timedelta(minutes=30), queue="general")
    add_shift(db_session, bob.id, T, T + timedelta(hours=1), queue="billing")  # another queue: not counted
    db_session.commit()
    plans = staffing_plan(db_session, desk_config, "general", T, T + timedelta(hours=1))
    assert [(p.contacts, p.scheduled) for p in plans] == [(100, 2), (10, 1)]
    assert plans[0].agents_needed == 14  # general: 80% within 20 s
    assert plans[0].agents_to_schedule == 20  # config.yaml shrinkage 0.30
    assert staffing_plan(db_session, desk_config, "general", T, T + timedelta(hours=1),
                         shrinkage=0)[0].agents_to_schedule == 14


def test_bad_forecasts_and_shifts_are_refused(db_session):
    with pytest.raises(StaffingError):
        save_forecast(db_session, "general", T, 30, [(-5, 180)])
    with pytest.raises(StaffingError):
        add_shift(db_session, 1, T, T)
