"""Admin: what the archive held back for a person to decide. Quarantined operations
(a departed rep's final flush, a visit dated where its author could not have made it)
are accepted (applied as if in time) or rejected with a reason, never deleted; edit
conflicts are closed keeping the server's or the rep's value."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import Response

from schema.validation import MAX_WIRE_INT

from ...rules.access import StaffMember
from ..kit import PREFIX, archive_of, call, done_note, page_require, redirect, render
from ..menu import N_, Entry
from ..ops_terms import term_of

router = APIRouter()
MENU = [Entry("/admin/review", N_("Quarantine and conflicts"), "quarantine.review", order=72)]
Admin = Annotated[StaffMember, page_require("quarantine.review")]
Resolver = Annotated[StaffMember, page_require("conflict.resolve")]
RowId = Annotated[int, Path(ge=1, le=MAX_WIRE_INT)]
NOTES = {"accepted": N_("Accepted: the operation is applied and in the record's history."),
         "rejected": N_("Rejected: the operation stays on file, not applied."),
         "resolved": N_("Conflict closed: the kept value is a new revision of the card.")}


@router.get("/admin/review")
async def review(request: Request, who: Admin) -> Response:
    archive = archive_of(request)
    held = await call(archive.held_ops, who.name, True, 200)
    conflicts = await call(archive.open_conflicts, who.name, True, 200)
    names = {r["id"]: r["name"] for r in await call(archive.list_reps)}
    return render(request, "admin_review.html", held=held, conflicts=conflicts, names=names,
                  term=term_of(request), note=done_note(request, NOTES))


@router.post("/admin/review/held/{held_id}/accept")
async def accept(request: Request, who: Admin, held_id: RowId) -> Response:
    await call(archive_of(request).accept_quarantined, held_id, who.name)
    return redirect(f"{PREFIX}/admin/review?done=accepted")


@router.post("/admin/review/held/{held_id}/reject")
async def reject(request: Request, who: Admin, held_id: RowId,
                 reason: Annotated[str, Form(min_length=1, max_length=500)]) -> Response:
    await call(archive_of(request).reject_quarantined, held_id, who.name, reason)
    return redirect(f"{PREFIX}/admin/review?done=rejected")


@router.post("/admin/review/conflicts/{conflict_id}")
async def resolve(request: Request, who: Resolver, conflict_id: RowId,
                  keep: Annotated[str, Form(pattern="^(server|rep)$")]) -> Response:
    await call(archive_of(request).resolve_conflict, conflict_id, keep, who.name)
    return redirect(f"{PREFIX}/admin/review?done=resolved")
