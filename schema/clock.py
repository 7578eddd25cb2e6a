"""Injectable time, so leases, expiries and timestamps are testable without sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Current time, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta

    def set(self, when: datetime) -> None:
        self._now = when


def iso(dt: datetime) -> str:
    """Canonical wire form of a timestamp: UTC, microseconds, trailing Z."""
    # A push formats ~4 times per visit: the UTC test and the %-format cost half of
    # astimezone() plus an f-string (pydantic's parsed times carry their own UTC object).
    zone = dt.tzinfo
    d = dt if zone is UTC or (zone is not None and not dt.utcoffset()) else dt.astimezone(UTC)
    if d.year < 1000:  # keep strftime's own rendering of early years
        return d.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return _ISO % (d.year, d.month, d.day, d.hour, d.minute, d.second, d.microsecond)


_ISO = "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ"


def parse_iso(text: str) -> datetime:
    """Parse an ISO-8601 timestamp; naive values are taken as UTC. ValueError for
    anything else, including a time whose UTC form is outside years 1-9999."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        return dt.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-14:00
        raise ValueError(f"{text!r} is out of range in UTC") from None
