"""Daily visit plans (每日拜访计划) to approve: the list, one plan against what was
done, approve or return with a comment."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from ...rules.access import StaffMember
from ..kit import PREFIX, archive_of, call, done_note, page_require, redirect, render
from ..menu import N_, Entry

router = APIRouter()
MENU = [Entry("/plans", N_("Plans"), "plan.review", order=13)]
Reviewer = Annotated[StaffMember, page_require("plan.review")]
NOTES = {"approved": N_("Plan approved."), "returned": N_("Plan returned.")}


@router.get("/plans")
async def plans(request: Request, who: Reviewer, status: str = "submitted") -> Response:
    status = status if status in ("submitted", "approved", "returned") else "submitted"
    rows = await call(archive_of(request).list_plans, by=who.name, status=status, limit=200)
    return render(request, "plans.html", rows=rows, status=status, note=done_note(request, NOTES))


@router.get("/plans/{plan_id}")
async def plan(request: Request, who: Reviewer, plan_id: str) -> Response:
    row = await call(archive_of(request).show_plan, plan_id, by=who.name)
    return render(request, "plan.html", plan=row)


@router.post("/plans/{plan_id}")
async def decide(request: Request, who: Reviewer, plan_id: str,
                 decision: Annotated[str, Form(pattern="^(approve|return)$")],
                 comment: Annotated[str, Form(max_length=1000)] = "") -> Response:
    archive = archive_of(request)
    if decision == "approve":
        await call(archive.approve_plan, plan_id, by=who.name, comment=comment)
    else:
        await call(archive.return_plan, plan_id, by=who.name, comment=comment)
    return redirect(f"{PREFIX}/plans?done={'approved' if decision == 'approve' else 'returned'}")
