"""The approval queue (拜访记录审核): visits waiting for review, oldest first, a page at
a time; approve or return several at once (checkboxes and one form); one visit with
its history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import Response

from ...answers import INLINE_TYPES, attachment_response
from ...archive.errors import ArchiveError
from ...rules.access import StaffMember
from ..kit import PREFIX, archive_of, call, done_note, gettext_of, page_require, redirect, render
from ..menu import N_, Entry

router = APIRouter()
MENU = [Entry("/approvals", N_("Approvals"), "visit.review", order=12)]
Reviewer = Annotated[StaffMember, page_require("visit.review")]
Reader = Annotated[StaffMember, page_require("visit.read")]
PAGE = 50
NOTES = {"approved": N_("Visits approved: %(n)s."), "returned": N_("Visits returned: %(n)s.")}


@router.get("/approvals")
async def approvals(request: Request, who: Reviewer, after: str = "", after_id: str = "") -> Response:
    rows = await call(archive_of(request).review_page, who.name, (after, after_id), PAGE)
    return render(request, "approvals.html", rows=rows, more=len(rows) == PAGE,
                  note=done_note(request, NOTES))


@router.post("/approvals")
async def decide(request: Request, who: Reviewer,
                 decision: Annotated[str, Form(pattern="^(approve|return)$")],
                 visit: Annotated[list[str], Form(max_length=PAGE)],
                 comment: Annotated[str, Form(max_length=1000)] = "") -> Response:
    archive = archive_of(request)
    act = archive.approve_visit if decision == "approve" else archive.return_visit
    done, refused = 0, []
    for visit_id in visit:
        try:
            await call(act, visit_id, by=who.name, comment=comment)
            done += 1
        except ArchiveError as exc:  # the others still go through; say which did not
            refused.append(f"{visit_id}: {exc.message}")
    if refused:
        _ = gettext_of(request)
        rows = await call(archive.review_page, who.name, ("", ""), PAGE)
        return render(request, "approvals.html", code=409 if not done else 200, rows=rows,
                      more=len(rows) == PAGE, refused=refused,
                      note=_("Done: %(n)s; refused: %(m)s.") % {"n": done, "m": len(refused)})
    kind = "approved" if decision == "approve" else "returned"
    return redirect(f"{PREFIX}/approvals?done={kind}&n={done}")


@router.get("/visits/{visit_id}")
async def visit(request: Request, who: Reader, visit_id: str) -> Response:
    archive = archive_of(request)
    row = await call(archive.staff_visit, visit_id, by=who.name)
    # Its photos and forms, and which laptop signed each revision when (visit evidence).
    proof = await call(archive.visit_evidence, row["id"], by=who.name)
    return render(request, "visit.html", visit=row, attachments=proof["attachments"],
                  evidence=proof["evidence"], inline=INLINE_TYPES)


@router.get("/visits/{visit_id}/attachments/{sha256}")
async def attachment(request: Request, who: Reader, visit_id: str,
                     sha256: Annotated[str, Path(pattern="^[0-9a-f]{64}$")]) -> Response:
    ref, data = await call(archive_of(request).staff_attachment, visit_id, sha256, by=who.name)
    return attachment_response(ref, data)
