"""The company's tunable rules, kept in the archive's meta table: one typed reading
with the defaults the issue names, one setter that refuses bad values whole.

Each group is read inside the caller's transaction, so a rule and the policy it
applies come from the same snapshot.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TypeVar

from ..archive.errors import ArchiveError
from ..archive.store import Meta


@dataclass(frozen=True)
class PoolPolicy:
    """The pool (公海): return, warning and claim rules."""

    return_days_a: int = 90  # no visit for this many days: back to the pool
    return_days_b: int = 90
    return_days_c: int = 90
    warn_days: int = 7  # the owner is warned this many days before
    grace_days: int = 3  # returns wait this long for visits not yet synced
    claims_per_day: int = 5  # per rep, in any 24 hours
    cap_senior: int = 300  # customers a rep of each tier may own
    cap_mid: int = 200
    cap_junior: int = 100
    reclaim_cooldown_days: int = 30  # the previous owner waits this long to claim it back

    def return_days(self, grade: str) -> int:
        return int(getattr(self, f"return_days_{grade.lower()}", self.return_days_b))

    def cap(self, tier: str) -> int:
        return int(getattr(self, f"cap_{tier}", self.cap_mid))


@dataclass(frozen=True)
class CallbackPolicy:
    """Call-back verification (电话回访): which visits the office calls."""

    sample_pct: int = 20  # of each rep's visits, picked from the visit id
    dispute_threshold_pct: int = 20  # above it, every visit of the rep is called
    dispute_min_calls: int = 5  # calls needed before a rep's rate counts


_LIMITS: dict[str, tuple[int, int]] = {
    "return_days_a": (1, 3650), "return_days_b": (1, 3650), "return_days_c": (1, 3650),
    "warn_days": (0, 365), "grace_days": (0, 60), "claims_per_day": (0, 1000),
    "cap_senior": (0, 100000), "cap_mid": (0, 100000), "cap_junior": (0, 100000),
    "reclaim_cooldown_days": (0, 3650), "sample_pct": (0, 100),
    "dispute_threshold_pct": (0, 100), "dispute_min_calls": (1, 100000),
}


P = TypeVar("P", PoolPolicy, CallbackPolicy)


def _prefix(cls: type) -> str:
    return "pool." if cls is PoolPolicy else "callback."


def read(store: Meta, cls: type[P]) -> P:
    """The policy in force: stored values over the defaults, in one read (every pull
    carries the pool's rules)."""
    prefix = _prefix(cls)
    stored = store.metas([prefix + f.name for f in fields(cls)])
    return cls(**{name[len(prefix):]: int(value) for name, value in stored.items()})


def write(store: Meta, cls: type[P],
          changes: dict[str, int]) -> P:
    """Store the changed values; ArchiveError `invalid_policy` (nothing stored) for an
    unknown name or a value out of range. Returns the policy now in force."""
    check(cls, changes)
    for name, value in changes.items():
        store.set_meta(_prefix(cls) + name, str(value))
    return read(store, cls)


def check(cls: type[P], changes: dict[str, int]) -> None:
    """ArchiveError `invalid_policy` for an unknown name or a value out of range."""
    known = {f.name for f in fields(cls)}
    for name, value in changes.items():
        if name not in known:
            raise ArchiveError("invalid_policy", f"unknown setting {name!r}: one of "
                               + ", ".join(sorted(known)))
        low, high = _LIMITS[name]
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ArchiveError("invalid_policy", f"{name} must be a whole number "
                               f"from {low} to {high}")


def as_dict(policy: PoolPolicy | CallbackPolicy) -> dict[str, int]:
    return asdict(policy)
