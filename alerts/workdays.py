"""Repair deadlines in Chinese working days.

The national online-monitoring rule gives a meter or gateway that stopped reporting three
working days to be repaired. Working days follow the State Council's holiday arrangement,
including adjusted working weekends (调休), as maintained in the ``chinesecalendar`` package
(``chinese_calendar.is_workday``); we keep no table of our own.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar

SHANGHAI = ZoneInfo("Asia/Shanghai")
log = logging.getLogger("nzc.alerts")
_warned: set[int] = set()


def is_workday(day: date) -> bool:
    """Whether ``day`` is a working day in mainland China (statutory holidays off,
    adjusted working weekends on). For a year the installed ``chinesecalendar`` does not
    cover yet (the State Council publishes the next year's arrangement each autumn; update
    the pin then), Monday to Friday, with a warning once per year."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        if day.year not in _warned:
            _warned.add(day.year)
            log.warning("chinesecalendar %s has no holiday data for %d: counting Monday to "
                        "Friday as working days; update the package",
                        getattr(chinese_calendar, "__version__", "?"), day.year)
        return day.weekday() < 5


def repair_deadline(since: datetime, working_days: int = 3, tz: ZoneInfo = SHANGHAI) -> datetime:
    """The end (local midnight) of the ``working_days``-th working day after the local day
    on which the outage began (``since``, timezone-aware). The day the outage begins does not
    count; every later working day does. Returned in UTC.

    Example: an outage on Tuesday 30 Sept 2025 (before the National Day holiday, 1-8 Oct)
    counts Thu 9 Oct, Fri 10 Oct and the adjusted working Saturday 11 Oct: deadline
    2025-10-12 00:00 Asia/Shanghai.
    """
    if since.tzinfo is None:
        raise ValueError(f"since={since!r}: a timezone-aware datetime is required")
    if working_days < 1:
        raise ValueError(f"working_days={working_days}: at least 1")
    day = since.astimezone(tz).date()
    counted = 0
    for _ in range(366):  # bounded: a year always holds enough working days
        day += timedelta(days=1)
        if is_workday(day):
            counted += 1
            if counted == working_days:
                end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
                return end.astimezone(ZoneInfo("UTC"))
    raise ValueError(f"no {working_days} working days within a year after {since}")
