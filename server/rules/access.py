"""Who may do what: staff roles, the authorization matrix and a manager's team.

Every staff action, from the CLI (`--by USER`) or the staff API (bearer token),
goes through `authorize` inside the transaction that carries it out, so the
check and the action see the same archive. The matrix is the one table
docs/RULES.md shows and tests/test_authorization.py walks, role by action.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schema.enums import StaffRole

from ..archive.errors import Forbidden, NotFound
from ..archive.store import Store

A, M, V, H = StaffRole.admin, StaffRole.manager, StaffRole.verifier, StaffRole.hr

# action -> roles allowed. A manager's actions on a rep (or that rep's visit,
# plan or customer) are further limited to the reps under them, transitively.
MATRIX: dict[str, frozenset[StaffRole]] = {
    "staff.manage": frozenset({A}),  # user add/list/token/disable
    "visit.read": frozenset({A, M, V}),
    "visit.review": frozenset({A, M}),  # approvals queue, approve, return
    "callback.work": frozenset({A, V}),  # the call-back queue, verified/disputed
    "callback.figures": frozenset({A, M, V}),  # per-rep verified/disputed shares
    "callback.policy.set": frozenset({A}),
    "disputes.read": frozenset({A, M}),
    "quarantine.review": frozenset({A}),  # list, accept, reject
    "conflict.resolve": frozenset({A, M}),
    "customer.read": frozenset({A, M}),
    "customer.lock": frozenset({A, M}),
    "customer.assign": frozenset({A, M}),
    "customer.distribute": frozenset({A, M}),
    "pool.policy.set": frozenset({A}),
    "plan.review": frozenset({A, M}),  # list, approve, return
    "report.read": frozenset({A, M}),
    "report.export": frozenset({A, M}),  # CSV exports (customer data leaving): a manager's team only, audited
    "jobs.run": frozenset({A}),
    "departure.manage": frozenset({A, H}),
    "device.read": frozenset({A, H, M}),
    "audit.read": frozenset({A}),
    "hr_token.manage": frozenset({A, H}),  # tokens the HR system calls /v1/hr with
    "enroll.create": frozenset({A}),  # one-time enrollment codes for a rep's laptop
    "policy.set": frozenset({A}),  # the offline policy, and previews of any policy change
    "fleet.read": frozenset({A, M}),  # every laptop by risk (a manager: their team's)
    "ops.read": frozenset({A}),  # the archive at a glance: counts, backup and replication
    "policy.read": frozenset({A, M, V, H}),
    "self.read": frozenset({A, M, V, H}),  # who am I, what may I do (GET /v1/staff/me)
}
ACTIONS: tuple[str, ...] = tuple(MATRIX)


@dataclass(frozen=True)
class StaffMember:
    id: str
    name: str
    role: StaffRole
    rep_id: str | None  # a manager's own rep row: their team hangs under it

    @property
    def actor(self) -> str:
        """How the audit chain and revisions name this person."""
        return f"staff:{self.name}"

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> StaffMember:
        return cls(row["id"], row["name"], StaffRole(row["role"]), row["rep_id"])


# Whoever runs a server command without `--by` holds the archive itself (its files or
# its database credentials): the archive's administrator, named so in the audit chain.
OPERATOR = "admin"


def caller(store: Store, by: str | None, action: str,
           rep_id: str | None = None) -> StaffMember | None:
    """The staff member `by`, allowed to do `action` (on `rep_id`'s records), or None
    for the operator (`by` None: a server command run without `--by`)."""
    if by is None:
        return None
    who = staff_member(store, by)
    authorize(store, who, action, rep_id)
    return who


def actor(who: StaffMember | None) -> str:
    """How the audit chain names the caller `caller` returned."""
    return who.actor if who else OPERATOR


def staff_member(store: Store, ref: str) -> StaffMember:
    """The active staff account named `ref` (name or id). NotFound `unknown_user`;
    Forbidden `user_disabled` for a disabled account."""
    row = store.staff(ref)
    if row is None:
        raise NotFound("unknown_user", f"no staff user {ref!r}: see `fieldvault-server user list`")
    if row["disabled_at"]:
        raise Forbidden("user_disabled", f"staff user {row['name']!r} is disabled")
    return StaffMember.from_row(row)


def team(store: Store, manager: StaffMember) -> set[str]:
    """Rep ids under the manager's rep, transitively (the manager's own rep not included)."""
    return set(store.reps_under(manager.rep_id)) if manager.rep_id else set()


def authorize(store: Store, who: StaffMember, action: str, rep_id: str | None = None) -> None:
    """Raise Forbidden unless `who` may do `action` (on `rep_id`'s records, if given).

    Forbidden `forbidden` when the role may not; `outside_team` when a manager acts on
    a rep who is not under them. `rep_id=None` means no particular rep (a queue, the
    pool): a manager's listings are then filtered to their team by the caller.
    """
    allowed = MATRIX.get(action)
    if allowed is None:  # a typo must not become an open door
        raise Forbidden("forbidden", f"unknown action {action!r}")
    if who.role not in allowed:
        raise Forbidden("forbidden", f"a {who.role.value} may not do {action}")
    if who.role == StaffRole.manager and rep_id is not None and rep_id not in team(store, who):
        raise Forbidden("outside_team", f"{rep_id} is not in {who.name}'s team")


def scope(store: Store, who: StaffMember) -> set[str] | None:
    """The reps whose records `who` sees in listings: None for everyone (not a manager)."""
    return team(store, who) if who.role == StaffRole.manager else None
