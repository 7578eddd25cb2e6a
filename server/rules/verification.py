"""The office's call-back work (电话回访): the queue of visits to call, the result of a
call, disputes for the rep's manager, per-rep figures and the policy.

Which visits are picked is rules/callback.py (it runs whenever a visit is saved).
"""

from __future__ import annotations

from typing import Any

from schema.enums import CallbackStatus, StaffRole, VisitStatus

from ..archive.errors import ArchiveError, Conflict
from ..archive.store import Store
from . import access, audit, policies, review
from .access import StaffMember
from .facade import rep_of
from .policies import CallbackPolicy

MAX_NOTE = 1000


def queue(store: Store, by: str | None, limit: int | None) -> list[dict[str, Any]]:
    """What a verifier needs to make each call, the visits waiting longest first."""
    access.caller(store, by, "callback.work")
    return store.callback_queue(limit)


def record(store: Store, now: str, by: str, visit_id: str, result: str,
           note: str) -> dict[str, Any]:
    """The outcome of a call: a new visit revision (the author's laptop shows it), and an
    audit entry; a dispute names the rep's manager, whose dispute list it joins."""
    who = access.staff_member(store, by)
    row = review.visit_or_404(store, visit_id)
    access.authorize(store, who, "callback.work", row["rep_id"])
    if result not in (CallbackStatus.verified, CallbackStatus.disputed):
        raise ArchiveError("invalid_result", "the result must be verified or disputed")
    text = (note or "").strip()
    if len(text) > MAX_NOTE:
        raise ArchiveError("invalid_note", f"the note must be at most {MAX_NOTE} characters")
    if result == CallbackStatus.disputed and not text:
        raise ArchiveError("note_required", "a disputed call-back needs a note: what the "
                           "customer said that does not match the visit record")
    if row["status"] == VisitStatus.void:
        raise Conflict("visit_void", f"visit {visit_id} is void: there is nothing to verify")
    if row["callback"] is None:
        raise Conflict("not_picked", f"visit {visit_id} was not picked for call-back")
    if row["callback"] != CallbackStatus.pending:
        raise Conflict("already_called", f"visit {visit_id} was called back already: "
                       f"{row['callback']} by {row['callback_by']} at {row['callback_at']}")
    row.update(callback=result, callback_note=text, callback_by=who.actor, callback_at=now)
    review.save_visit(store, row, now, who.actor)
    details: dict[str, Any] = {"rep_id": row["rep_id"], "result": result, "note": text}
    if result == CallbackStatus.disputed:
        details["manager"] = manager_of(store, row["rep_id"])
    audit.append(store, now, who.actor, "visit.callback", visit_id, details)
    return row


def manager_of(store: Store, rep_id: str) -> str | None:
    """The name of the rep's manager (the rep row they report to), or None."""
    rep = store.rep(rep_id)
    boss = store.rep(rep["manager_id"]) if rep and rep["manager_id"] else None
    return str(boss["name"]) if boss else None


def disputes(store: Store, by: str | None, manager: str | None,
             limit: int | None) -> list[dict[str, Any]]:
    """Disputed visits of a manager's team (a manager: their own team)."""
    who = access.caller(store, by, "disputes.read")
    return store.disputed_visits(review.team_root(store, who, manager), limit)


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def figures(store: Store, by: str | None, rep: str | None) -> dict[str, Any]:
    """Per rep: called, verified, disputed and their shares (a manager: their team);
    and calls recorded per caller and day (a verifier: their own)."""
    rep_id = rep_of(store, rep)["id"] if rep else None
    who = access.caller(store, by, "callback.figures", rep_id)
    rows = store.callback_counts(review.team_root(store, who, None), rep_id)
    reps = [{**r, "called": r["verified"] + r["disputed"],
             "share_verified": _share(r["verified"], r["verified"] + r["disputed"]),
             "share_disputed": _share(r["disputed"], r["verified"] + r["disputed"])}
            for r in rows]
    return {"reps": reps, "throughput": _throughput(store, who)}


def _throughput(store: Store, who: StaffMember | None) -> list[dict[str, Any]]:
    if who is None or who.role == StaffRole.admin:
        return store.callback_throughput()
    if who.role == StaffRole.verifier:
        return store.callback_throughput(who.actor)
    return []  # a manager's figures are their team's, not the office's


def policy(store: Store, by: str | None) -> dict[str, int]:
    access.caller(store, by, "policy.read")
    return policies.as_dict(policies.read(store, CallbackPolicy))


def set_policy(store: Store, now: str, by: str | None, changes: dict[str, int]) -> dict[str, int]:
    """Change the call-back policy (admin); it applies to visits submitted from now on."""
    who = access.caller(store, by, "callback.policy.set")
    if not changes:
        raise ArchiveError("invalid_policy", "name at least one setting to change")
    new = policies.as_dict(policies.write(store, CallbackPolicy, changes))
    audit.append(store, now, access.actor(who), "callback.policy.set", "", changes)
    return new
