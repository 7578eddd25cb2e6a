"""Visit review (拜访记录审核): a manager approves a submitted visit or returns it to its
author with a comment; the author's correction submits it again (rules/operations.py).

Each change is a new visit revision with a feed row for the customer's owner, so the
author's laptop pulls the decision and the comment. Who may: `visit.review` on the
visit's author (a manager: their team only), checked in the same transaction.
"""

from __future__ import annotations

from typing import Any

from schema.enums import StaffRole, VisitStatus

from ..archive.errors import ArchiveError, Conflict, Forbidden, NotFound
from ..archive.store import Store
from . import access, audit, operations
from .access import StaffMember

MAX_COMMENT = 1000

# No rep has this id: the team of a manager without a rep row is nobody.
NOBODY = ""


def team_root(store: Store, who: StaffMember | None, manager: str | None) -> str | None:
    """The rep whose subtree a listing shows (`under`): the caller's own team for a
    manager, `manager`'s team when named (a manager may name one under them), None
    for everyone."""
    if manager is not None:
        named = access.staff_member(store, manager)
        if named.role != StaffRole.manager:
            raise ArchiveError("not_a_manager", f"{named.name!r} is a {named.role.value}, not a "
                               "manager: name a manager's staff account")
        root = named.rep_id or NOBODY
        if who is not None and who.role == StaffRole.manager and named.id != who.id and (
                root not in access.team(store, who)):
            raise Forbidden("outside_team", f"{named.name}'s team is not under {who.name}")
        return root
    if who is not None and who.role == StaffRole.manager:
        return who.rep_id or NOBODY
    return None


def visit_or_404(store: Store, visit_id: str) -> dict[str, Any]:
    row = store.visit(visit_id)
    if row is None:
        raise NotFound("unknown_visit", f"no visit {visit_id!r}")
    return row


def save_visit(store: Store, row: dict[str, Any], now: str, author: str) -> None:
    """A staff change to a visit: a new revision the customer owner's laptop pulls."""
    row.update(rev=row["rev"] + 1, updated_at=now)
    customer = store.customer(row["customer_id"])
    assert customer is not None  # visits reference their customer
    operations.store_visit(store, row, customer["owner_rep_id"], author, None, None, insert=False)


def comment_text(comment: str, required: bool) -> str:
    text = (comment or "").strip()
    if len(text) > MAX_COMMENT or (required and not text):
        need = "1" if required else "0"
        raise ArchiveError("invalid_comment", f"the comment must be {need}-{MAX_COMMENT} "
                           "characters" + (": tell the rep what to fix" if required else ""))
    return text


def decide(store: Store, now: str, by: str, visit_id: str, status: VisitStatus,
           comment: str) -> dict[str, Any]:
    """Approve or return a submitted visit. Conflict `not_submitted` otherwise."""
    who = access.staff_member(store, by)
    row = visit_or_404(store, visit_id)
    access.authorize(store, who, "visit.review", row["rep_id"])
    text = comment_text(comment, required=status == VisitStatus.returned)
    if row["status"] != VisitStatus.submitted:
        raise Conflict("not_submitted", f"visit {visit_id} is {row['status']}: only a submitted "
                       "visit can be approved or returned")
    row.update(status=status.value, review_comment=text, reviewed_by=who.actor, reviewed_at=now)
    save_visit(store, row, now, who.actor)
    verb = "approve" if status == VisitStatus.approved else "return"
    audit.append(store, now, who.actor, f"visit.{verb}", visit_id,
                 {"rep_id": row["rep_id"], "comment": text})
    return row


def visit_with_history(store: Store, by: str | None, visit_id: str) -> dict[str, Any]:
    """A visit as a reviewer sees it: names, and every revision (who, when, what)."""
    row = visit_or_404(store, visit_id)
    access.caller(store, by, "visit.read", row["rep_id"])
    customer = store.customer(row["customer_id"]) or {}
    rep = store.rep(row["rep_id"]) or {}
    history = [{"rev": r["rev"], "author": r["author"], "at": r["at"], "status":
                r["snapshot"].get("status"), "snapshot": r["snapshot"]}
               for r in store.visit_revisions(visit_id)]
    return {**row, "customer_name": customer.get("name"), "card_no": customer.get("card_no"),
            "rep_name": rep.get("name"), "history": history}
