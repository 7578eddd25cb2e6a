"""Daily visit plans (每日拜访计划) for managers: list, one plan with the plan against
actual visits, approve, return with a comment. A manager sees and acts on their own
team's plans only (checked by the archive call, with the plan in hand)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from schema.enums import PlanStatus, VisitPurpose
from schema.validation import ASCII_INT

from ..deps import ArchiveDep, json_body
from ..openapi import request_body
from ..rules.access import StaffMember
from ..staff_auth import current_staff, require

router = APIRouter(prefix="/v1/staff", tags=["staff"])
PlanId = Annotated[str, Path(max_length=300, description="REP_ID:YYYY-MM-DD")]


def _digits(value: Any) -> Any:
    """A query integer as ASCII digits only (pydantic's lax parsing takes `+5`, `1_0`)."""
    if isinstance(value, str) and not ASCII_INT.fullmatch(value):
        raise ValueError("must be a whole number written in the digits 0-9")
    return value


class _Answer(BaseModel):
    """Built by the archive: a key added there is passed on, not filtered out."""

    model_config = ConfigDict(extra="allow")


class PlanItemOut(_Answer):
    customer_id: str
    purpose: VisitPurpose
    time: str | None = Field(description="Planned time HH:MM, if the rep gave one")


class PlanOut(_Answer):
    id: str = Field(description="REP_ID:YYYY-MM-DD")
    rep_id: str
    day: str
    rev: int
    status: PlanStatus
    items: list[PlanItemOut]
    comment: str = Field(description="The last review's comment (empty after a resubmission)")
    submitted_at: str
    reviewed_by: str | None
    reviewed_at: str | None


class PlanRow(PlanOut):
    rep_name: str
    planned: int = Field(description="Number of planned visits")


class PlannedItem(PlanItemOut):
    card_no: str
    customer: str
    area: str
    result: Literal["done", "missed", "open"] = Field(description=(
        "done: visited that day; missed: the day is over without a visit; open: not yet"))
    visit_id: str | None
    visited_at: str | None = Field(description="HH:MM in the company's time zone")


class UnplannedVisit(_Answer):
    visit_id: str
    customer_id: str
    card_no: str
    customer: str
    purpose: VisitPurpose
    time: str


class PlanActual(_Answer):
    planned: int
    done: int
    missed: int
    open: int
    unplanned: int
    adherence: float | None = Field(description="done / planned")
    unplanned_visits: list[UnplannedVisit]


class PlanList(_Answer):
    plans: list[PlanRow] = Field(description="Newest day first")


class PlanDetail(PlanOut):
    rep_name: str
    timezone: str
    items: list[PlannedItem]  # type: ignore[assignment]
    actual: PlanActual


class ReviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: str = Field(default="", max_length=2000, description="What the rep sees")


class ReturnRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: str = Field(min_length=1, max_length=2000, description="What the rep should change")


@router.get("/plans", response_model=PlanList)
async def list_plans(
    who: Annotated[StaffMember, require("plan.review")], archive: ArchiveDep,
    manager: Annotated[str | None, Query(max_length=200,
                                         description="A staff manager: their team only")] = None,
    status: PlanStatus | None = None,
    date: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$")] = None,
    rep: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, BeforeValidator(_digits), Query(ge=1, le=5000)] = 500,
) -> dict:
    """Daily plans newest day first (a manager: their team's only)."""
    return {"plans": await run_in_threadpool(archive.list_plans, who.name, manager,
                                             status.value if status else None, date, rep, limit)}


@router.get("/plans/{plan_id}", response_model=PlanDetail)
async def show_plan(plan_id: PlanId, who: Annotated[StaffMember, require("plan.review")],
                    archive: ArchiveDep) -> dict:
    """One plan: each item done, missed or open, the day's unplanned visits, adherence."""
    return await run_in_threadpool(archive.show_plan, plan_id, who.name)


@router.post("/plans/{plan_id}/approve", response_model=PlanOut,
             openapi_extra=request_body(ReviewRequest))
async def approve_plan(
    plan_id: PlanId, who: Annotated[StaffMember, require("plan.review")],
    body: Annotated[ReviewRequest, json_body(ReviewRequest, current_staff)], archive: ArchiveDep,
) -> dict:
    """Approve a submitted plan; the rep's laptop sees it at its next sync."""
    return await run_in_threadpool(archive.approve_plan, plan_id, who.name, body.comment)


@router.post("/plans/{plan_id}/return", response_model=PlanOut,
             openapi_extra=request_body(ReturnRequest))
async def return_plan(
    plan_id: PlanId, who: Annotated[StaffMember, require("plan.review")],
    body: Annotated[ReturnRequest, json_body(ReturnRequest, current_staff)], archive: ArchiveDep,
) -> dict:
    """Return a submitted or approved plan with a comment; the rep changes it and
    submits it again."""
    return await run_in_threadpool(archive.return_plan, plan_id, who.name, body.comment)
