"""Business-hours calendar: opening hours in a time zone, public holidays from the ``holidays`` package, extra closed
days, and arithmetic on business time (with pauses, for SLA timers that stop while a ticket waits on the citizen).

All datetimes in and out are timezone-aware; naive ones are taken as UTC."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays as holidays_pkg

MAX_DAYS = 3660  # a search for the next open minute gives up after ten years (a calendar with no open day)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class BusinessCalendar:
    def __init__(
        self,
        timezone: str = "America/Montevideo",
        workdays: Iterable[int] = (1, 2, 3, 4, 5),
        open_time: time | str = time(9),
        close_time: time | str = time(17),
        country: str | None = "UY",
        categories: Sequence[str] = ("public",),
        extra_holiday_names: Sequence[str] = ("Carnival", "Tourism Week"),
        closed_days: Iterable[date | str] = (),
    ):
        self.tz = ZoneInfo(timezone)
        self.workdays = frozenset(workdays)
        self.open_time = time.fromisoformat(open_time) if isinstance(open_time, str) else open_time
        self.close_time = time.fromisoformat(close_time) if isinstance(close_time, str) else close_time
        self.country = country
        self.categories = tuple(categories)
        self.extra_holiday_names = frozenset(extra_holiday_names)
        self.closed_days = frozenset(date.fromisoformat(d) if isinstance(d, str) else d for d in closed_days)
        self._years: dict[int, dict[date, str]] = {}
        self.window = lru_cache(maxsize=4096)(self._window)

    @classmethod
    def from_settings(cls, s: object) -> BusinessCalendar:
        return cls(
            timezone=s.timezone,  # type: ignore[attr-defined]
            workdays=s.workdays,  # type: ignore[attr-defined]
            open_time=s.open_time,  # type: ignore[attr-defined]
            close_time=s.close_time,  # type: ignore[attr-defined]
            country=s.holiday_country or None,  # type: ignore[attr-defined]
            categories=s.holiday_categories,  # type: ignore[attr-defined]
            extra_holiday_names=s.extra_holiday_names,  # type: ignore[attr-defined]
            closed_days=s.extra_closed_days,  # type: ignore[attr-defined]
        )

    # -- days ------------------------------------------------------------------------------------------------------
    def holidays_of(self, year: int) -> dict[date, str]:
        """The closed days of ``year`` that are holidays, with their names."""
        if year not in self._years:
            out: dict[date, str] = {}
            if self.country:
                cls = holidays_pkg.country_holidays(self.country, years=year).__class__
                supported = set(getattr(cls, "supported_categories", ("public",)))
                cats = tuple(c for c in self.categories if c in supported) or ("public",)
                for d, name in holidays_pkg.country_holidays(self.country, years=year, categories=cats,
                                                             language="en_US").items():
                    out[d] = name
                others = tuple(c for c in supported if c not in cats)
                if others and self.extra_holiday_names:
                    extra = holidays_pkg.country_holidays(self.country, years=year, categories=others,
                                                          language="en_US")
                    for d in extra:
                        names = [n for n in extra.get_list(d) if n in self.extra_holiday_names]
                        if names:
                            out.setdefault(d, "; ".join(names))
            self._years[year] = out
        return self._years[year]

    def is_open_day(self, d: date) -> bool:
        return d.isoweekday() in self.workdays and d not in self.closed_days and d not in self.holidays_of(d.year)

    def _window(self, d: date) -> tuple[datetime, datetime] | None:
        """The open interval of local day ``d`` in UTC, or None when closed."""
        if not self.is_open_day(d):
            return None
        start = datetime.combine(d, self.open_time, tzinfo=self.tz).astimezone(UTC)
        end = datetime.combine(d, self.close_time, tzinfo=self.tz).astimezone(UTC)
        return start, end

    def local_date(self, value: datetime) -> date:
        return _aware(value).astimezone(self.tz).date()

    # -- arithmetic ------------------------------------------------------------------------------------------------
    def business_seconds(self, start: datetime, end: datetime) -> float:
        """Open seconds in [start, end) (0 when end <= start)."""
        start, end = _aware(start), _aware(end)
        if end <= start:
            return 0.0
        total = 0.0
        d, last = self.local_date(start), self.local_date(end)
        while d <= last:
            w = self.window(d)
            if w is not None:
                lo, hi = max(w[0], start), min(w[1], end)
                if hi > lo:
                    total += (hi - lo).total_seconds()
            d += timedelta(days=1)
        return total

    def add_business_seconds(self, start: datetime, seconds: float) -> datetime:
        """The instant when ``seconds`` of open time have passed since ``start``."""
        cur = _aware(start).astimezone(UTC)
        if seconds <= 0:
            return cur
        remaining = float(seconds)
        d = self.local_date(cur)
        for _ in range(MAX_DAYS):
            w = self.window(d)
            if w is not None and w[1] > cur:
                lo = max(w[0], cur)
                available = (w[1] - lo).total_seconds()
                if remaining <= available:
                    return lo + timedelta(seconds=remaining)
                remaining -= available
            d += timedelta(days=1)
        raise ValueError("the calendar has no open time in the next ten years")

    def next_open(self, at: datetime) -> datetime:
        """The first open instant at or after ``at``."""
        cur = _aware(at).astimezone(UTC)
        d = self.local_date(cur)
        for _ in range(MAX_DAYS):
            w = self.window(d)
            if w is not None and w[1] > cur:
                return max(w[0], cur)
            d += timedelta(days=1)
        raise ValueError("the calendar has no open time in the next ten years")


Interval = tuple[datetime, datetime | None]  # (start, end); end None = still going


def merge_intervals(intervals: Iterable[Interval]) -> list[Interval]:
    items = sorted(((_aware(a), _aware(b) if b else None) for a, b in intervals), key=lambda iv: iv[0])
    out: list[Interval] = []
    for a, b in items:
        if b is not None and b <= a:
            continue
        if out and (out[-1][1] is None or a <= out[-1][1]):  # type: ignore[operator]
            prev_a, prev_b = out[-1]
            out[-1] = (prev_a, None if (prev_b is None or b is None) else max(prev_b, b))
        else:
            out.append((a, b))
    return out


def active_segments(start: datetime, end: datetime | None, pauses: Iterable[Interval]) -> list[Interval]:
    """[start, end) minus the pauses; the last segment is open-ended when end is None and no pause is running."""
    start = _aware(start)
    segs: list[Interval] = []
    cur: datetime | None = start
    for a, b in merge_intervals(pauses):
        if cur is None:
            break
        if b is not None and b <= cur:
            continue
        if end is not None and a >= end:
            break
        if a > cur:
            segs.append((cur, a))
        cur = None if b is None else max(cur, b)
    if cur is not None and (end is None or cur < end):
        segs.append((cur, end))
    return segs


def business_seconds_between(cal: BusinessCalendar, start: datetime, end: datetime,
                             pauses: Iterable[Interval] = ()) -> float:
    """Open seconds between start and end, not counting the pauses."""
    return sum(cal.business_seconds(a, b if b is not None else end) for a, b in active_segments(start, end, pauses))


def due_at(cal: BusinessCalendar, start: datetime, seconds: float, pauses: Iterable[Interval] = ()) -> datetime | None:
    """When ``seconds`` of open, unpaused time have passed since ``start``; None while a pause that has not ended
    stops the clock before that."""
    remaining = seconds
    for a, b in active_segments(start, None, pauses):
        if b is None:
            return cal.add_business_seconds(a, remaining)
        used = cal.business_seconds(a, b)
        if used >= remaining:
            return cal.add_business_seconds(a, remaining)
        remaining -= used
    return None
