"""Fair distribution (公平分配): company leads are dealt, never grabbed.

Round-robin by load: each customer goes to the eligible rep holding the fewest
customers so far (ties in the order the reps were given), so seven leads over
three equal reps give 3/2/2. When tiers are set, grade A goes to senior reps and
grade C to junior reps (B to anyone); a rep at their owned cap is skipped. Every
assignment carries the reason it was made, so the plan can be shown before it is
applied (`--dry-run`) and kept in the ownership history after.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

_GRADE_TIER = {"A": "senior", "C": "junior"}
# Customers bound to a tier (A, C) are dealt before the free ones (B), so the free
# ones even out the load: 2 A + 3 B + 2 C over senior/mid/junior give 3/2/2.
_GRADE_ORDER = {"A": 0, "C": 1, "B": 2}


@dataclass
class Plan:
    """customer key -> (rep id or None, reason); `skipped`: rep id -> why passed over."""

    assignments: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def targets(self) -> dict[str, str | None]:
        return {key: rep for key, (rep, _) in self.assignments.items()}


def plan(customers: Sequence[dict[str, Any]], reps: Sequence[dict[str, Any]],
         load: dict[str, int] | None = None, caps: dict[str, int] | None = None) -> Plan:
    """Deal `customers` (each with `key` and `grade`, in the order to deal ties) among
    `reps` (id, name, tier). `load`: what each rep holds already (default 0); `caps`:
    the most each may hold (default none). A customer no rep has room for gets None."""
    held = {r["id"]: (load or {}).get(r["id"], 0) for r in reps}
    limit = caps or {}
    out = Plan()

    def full(rep: dict[str, Any]) -> bool:
        cap = limit.get(rep["id"])
        if cap is not None and held[rep["id"]] >= cap:
            out.skipped.setdefault(rep["id"], f"{rep['name']} is at their owned cap "
                                   f"({held[rep['id']]} of {cap} for a {rep['tier']} rep)")
            return True
        return False

    for customer in sorted(customers, key=lambda c: _GRADE_ORDER.get(c["grade"], 1)):
        grade = customer["grade"]
        tier = _GRADE_TIER.get(grade)
        room = [r for r in reps if not full(r)]
        if not room:
            out.assignments[customer["key"]] = (None, "every rep is at their owned cap: "
                                                "left in the pool")
            continue
        matched = [r for r in room if r["tier"] == tier] if tier else []
        if matched:
            rule = f"grade {grade} to a {tier} rep"
        elif tier:
            rule = f"grade {grade}, no {tier} rep with room: any rep"
        else:
            rule = f"grade {grade}: any rep"
        chosen = min(matched or room, key=lambda r: held[r["id"]])
        out.assignments[customer["key"]] = (
            chosen["id"], f"{rule}; {chosen['name']} had the fewest ({held[chosen['id']]})")
        held[chosen["id"]] += 1
    return out


def deal(customers: list[dict[str, Any]], team: list[dict[str, Any]]) -> dict[str, str]:
    """A departing rep's customers over their team (each team member starting from
    nothing): customer id -> rep id. See `plan`."""
    dealt = plan([{"key": c["id"], "grade": c["grade"]}
                  for c in sorted(customers, key=lambda c: c["card_no"])],
                 [{"name": r["id"], **r} for r in team])
    return {key: rep for key, rep in dealt.targets().items() if rep is not None}
