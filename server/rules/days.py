"""The company's calendar: its time zone, and the days and weeks plans and reports count in.

Visit times are stored in UTC. A plan's day, a daily report's day and a weekly
report's week are calendar days in the company's zone (meta `timezone`, an IANA
name such as Asia/Shanghai; UTC until an admin sets it): a visit at 23:30 in
Shanghai belongs to that Shanghai day, not to the next UTC day. Each day is turned
into the UTC span [start, end) it covers, so a daylight-saving day of 23 or 25
hours is still exactly one day.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from schema.clock import iso, parse_iso

from ..archive.errors import ArchiveError
from ..archive.store import Meta

DEFAULT_ZONE = "UTC"
META_KEY = "timezone"
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


def check_zone(name: str) -> str:
    """The zone's canonical name; ArchiveError `invalid_policy` for a name the tz
    database does not know."""
    name = name.strip()
    try:
        if not name or len(name) > 64:
            raise ValueError
        return str(ZoneInfo(name).key)
    except (ValueError, ZoneInfoNotFoundError):
        raise ArchiveError("invalid_policy", f"unknown time zone {name!r}: give an IANA name "
                           "such as Asia/Shanghai or UTC") from None


def zone_name(store: Meta) -> str:
    return store.meta(META_KEY) or DEFAULT_ZONE


def zone(store: Meta) -> ZoneInfo:
    """The company's zone (names are checked when set, so this one loads)."""
    return ZoneInfo(zone_name(store))


def parse_day(text: str) -> date:
    """A YYYY-MM-DD day; ArchiveError `invalid_date` otherwise."""
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise ArchiveError("invalid_date", f"{text!r} is not a day: write YYYY-MM-DD") from None


def parse_week(text: str) -> date:
    """The Monday of an ISO week written YYYY-Www; ArchiveError `invalid_week` otherwise."""
    match = _WEEK.fullmatch(text)
    try:
        if match is None:
            raise ValueError
        return date.fromisocalendar(int(match[1]), int(match[2]), 1)
    except ValueError:
        raise ArchiveError("invalid_week", f"{text!r} is not an ISO week: write YYYY-Www, "
                           "e.g. 2026-W10") from None


def week_name(monday: date) -> str:
    year, week, _ = monday.isocalendar()
    return f"{year}-W{week:02d}"


def today(now: datetime, tz: ZoneInfo) -> date:
    return now.astimezone(tz).date()


def day_of(at: str, tz: ZoneInfo) -> date:
    """The company day a stored UTC time falls on."""
    return parse_iso(at).astimezone(tz).date()


def local_time(at: str, tz: ZoneInfo) -> str:
    """HH:MM of a stored UTC time, in the company's zone."""
    return parse_iso(at).astimezone(tz).strftime("%H:%M")


def _start(day: date, tz: ZoneInfo) -> str:
    return iso(datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC))


def span(first: date, days: int, tz: ZoneInfo) -> tuple[str, str]:
    """The UTC times [start, end) of `days` company days from `first` on, in the
    archive's canonical form (comparable as text with stored times)."""
    return _start(first, tz), _start(first + timedelta(days=days), tz)


__all__ = ["DEFAULT_ZONE", "META_KEY", "check_zone", "day_of", "local_time", "parse_day",
           "parse_week", "span", "today", "week_name", "zone", "zone_name"]
