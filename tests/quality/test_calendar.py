"""Business-hours arithmetic: weekends, Uruguay's holidays (public ones and the days public offices close), extra
closed days, and pauses (a ticket waiting on the citizen)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from workers.quality.calendar import BusinessCalendar, active_segments, business_seconds_between, due_at

MVD = ZoneInfo("America/Montevideo")
H = 3600.0


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=MVD)


@pytest.fixture(scope="module")
def cal() -> BusinessCalendar:
    return BusinessCalendar()  # Monday–Friday 9–17 America/Montevideo, UY holidays + Carnival + Tourism Week


def test_within_a_day_and_outside_hours(cal: BusinessCalendar) -> None:
    assert cal.add_business_seconds(local(2025, 5, 6, 10), 2 * H) == local(2025, 5, 6, 12)
    # before opening counts from 9:00, after closing from the next morning
    assert cal.add_business_seconds(local(2025, 5, 6, 7), 1 * H) == local(2025, 5, 6, 10)
    assert cal.add_business_seconds(local(2025, 5, 6, 19), 1 * H) == local(2025, 5, 7, 10)
    assert cal.business_seconds(local(2025, 5, 6, 7), local(2025, 5, 6, 20)) == 8 * H
    # ending exactly at closing time stays on that day
    assert cal.add_business_seconds(local(2025, 5, 6, 9), 8 * H) == local(2025, 5, 6, 17)
    # results are UTC instants (Montevideo is UTC-3 all year)
    assert cal.add_business_seconds(local(2025, 5, 6, 10), H).utcoffset() == timedelta(0)
    assert cal.add_business_seconds(local(2025, 5, 6, 10), H) == datetime(2025, 5, 6, 14, tzinfo=UTC)


def test_across_a_weekend(cal: BusinessCalendar) -> None:
    friday = local(2025, 5, 9, 16)
    assert cal.add_business_seconds(friday, 2 * H) == local(2025, 5, 12, 10)
    assert cal.business_seconds(friday, local(2025, 5, 12, 10)) == 2 * H
    # a ticket written on Saturday starts counting on Monday at 9
    assert cal.add_business_seconds(local(2025, 5, 10, 11), 30 * 60) == local(2025, 5, 12, 9, 30)
    assert cal.business_seconds(local(2025, 5, 10, 0), local(2025, 5, 12, 0)) == 0
    # a full week is five days of eight hours
    assert cal.business_seconds(local(2025, 5, 5, 0), local(2025, 5, 12, 0)) == 40 * H


def test_uruguayan_public_holidays(cal: BusinessCalendar) -> None:
    # Friday 18 July 2025 is Constitution Day (Jura de la Constitución)
    assert not cal.is_open_day(local(2025, 7, 18).date())
    assert cal.add_business_seconds(local(2025, 7, 17, 16), 2 * H) == local(2025, 7, 21, 10)
    # Monday 25 August 2025 is Independence Day; 1 May (Thursday) Workers' Day; 1 January; 25 December
    assert cal.add_business_seconds(local(2025, 8, 22, 16), 2 * H) == local(2025, 8, 26, 10)
    assert cal.add_business_seconds(local(2025, 4, 30, 16), 2 * H) == local(2025, 5, 2, 10)
    assert not cal.is_open_day(local(2026, 1, 1).date())
    assert not cal.is_open_day(local(2025, 12, 25).date())


def test_carnival_and_tourism_week_close_public_offices(cal: BusinessCalendar) -> None:
    # Carnival: Monday 3 and Tuesday 4 March 2025
    assert cal.add_business_seconds(local(2025, 2, 28, 16), 2 * H) == local(2025, 3, 5, 10)
    # Tourism Week: 14–18 April 2025
    assert cal.add_business_seconds(local(2025, 4, 11, 16), 2 * H) == local(2025, 4, 21, 10)
    assert cal.business_seconds(local(2025, 4, 11, 0), local(2025, 4, 22, 0)) == 16 * H
    # "feriados laborables" such as 18 May (Sunday in 2025; Monday 19 May is an ordinary day) stay open
    assert cal.is_open_day(local(2025, 5, 19).date())
    # with only the public category, Carnival Monday is an ordinary working day
    plain = BusinessCalendar(extra_holiday_names=())
    assert plain.is_open_day(local(2025, 3, 3).date())
    assert plain.add_business_seconds(local(2025, 2, 28, 16), 2 * H) == local(2025, 3, 3, 10)


def test_extra_closed_days_and_other_hours() -> None:
    cal = BusinessCalendar(closed_days=["2025-12-24", "2025-12-31"], open_time="08:30", close_time="14:30")
    assert cal.add_business_seconds(local(2025, 12, 23, 14), 1 * H) == local(2025, 12, 26, 9)
    assert cal.business_seconds(local(2025, 12, 22, 0), local(2026, 1, 3, 0)) == 6 * 6 * H  # 22,23,26,29,30,2


def test_round_trip_is_consistent(cal: BusinessCalendar) -> None:
    rnd = random.Random(7)
    base = local(2025, 1, 1)
    for _ in range(300):
        start = base + timedelta(minutes=rnd.randrange(0, 365 * 24 * 60))
        seconds = rnd.randrange(1, 120) * 15 * 60
        end = cal.add_business_seconds(start, seconds)
        assert cal.business_seconds(start, end) == pytest.approx(seconds)
        assert cal.is_open_day(end.astimezone(MVD).date())


def test_a_pause_stops_the_clock(cal: BusinessCalendar) -> None:
    created = local(2025, 5, 5, 10)  # Monday
    pending = (local(2025, 5, 5, 12), local(2025, 5, 7, 11))  # waiting on the citizen until Wednesday 11:00
    # 2 h on Monday, then the remaining 6 h from Wednesday 11:00
    assert due_at(cal, created, 8 * H, [pending]) == local(2025, 5, 7, 17)
    assert due_at(cal, created, 8 * H) == local(2025, 5, 6, 10)
    assert business_seconds_between(cal, created, local(2025, 5, 7, 13), [pending]) == 4 * H
    # a pause that has not ended: no due time while the clock is stopped
    assert due_at(cal, created, 8 * H, [(local(2025, 5, 5, 12), None)]) is None
    # the target was reached before the pause began: the pause changes nothing
    assert due_at(cal, created, 1 * H, [(local(2025, 5, 5, 12), None)]) == local(2025, 5, 5, 11)
    # a pause across a weekend and a holiday (Friday 18 July) costs only the business time it covers
    start = local(2025, 7, 16, 9)
    pause = (local(2025, 7, 16, 13), local(2025, 7, 21, 13))
    assert due_at(cal, start, 8 * H, [pause]) == local(2025, 7, 21, 17)
    assert active_segments(start, None, [pause]) == [(start, pause[0]), (pause[1], None)]
