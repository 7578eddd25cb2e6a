"""Visit review for staff (拜访记录审核): the approvals queue, one visit with its history,
approve, return with a comment, and the disputes call-backs found.

Every route names its action once (`require`); whether a manager may act on this
visit's rep is checked again by the archive, with the record in hand.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ..answers import Limit, VisitRecord, WaitingVisits
from ..deps import ArchiveDep, json_body
from ..openapi import request_body
from ..rules.access import StaffMember
from ..staff_auth import current_staff, require

router = APIRouter(prefix="/v1/staff", tags=["staff"])

Manager = Annotated[str | None, Query(max_length=200, description=(
    "Only this manager's team (a manager's staff account; a manager may name one under them)."))]


class Revision(BaseModel):
    rev: int
    author: str = Field(description="rep id, or staff:<name> for a staff change")
    at: str
    status: str | None
    snapshot: dict[str, Any]


class VisitWithHistory(VisitRecord):
    rep_name: str | None
    customer_name: str | None
    card_no: str | None
    history: list[Revision]


class Approve(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: str = Field(default="", max_length=1000, description="Optional note to the rep.")


class Return(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: str = Field(min_length=1, max_length=1000, description="What the rep must fix.")


@router.get("/approvals", response_model=WaitingVisits)
async def approvals(who: Annotated[StaffMember, require("visit.review")], archive: ArchiveDep,
                    manager: Manager = None, limit: Limit = 500) -> dict[str, Any]:
    """Submitted visits waiting for review, oldest first (a manager: their team)."""
    return {"visits": await run_in_threadpool(archive.approvals, who.name, manager, limit)}


@router.get("/visits/{visit_id}", response_model=VisitWithHistory)
async def visit(visit_id: str, who: Annotated[StaffMember, require("visit.read")],
                archive: ArchiveDep) -> dict[str, Any]:
    """One visit with every revision: who changed what, when (review and call-back too)."""
    return await run_in_threadpool(archive.staff_visit, visit_id, who.name)


@router.post("/visits/{visit_id}/approve", response_model=VisitRecord,
             openapi_extra=request_body(Approve))
async def approve(visit_id: str, who: Annotated[StaffMember, require("visit.review")],
                  body: Annotated[Approve, json_body(Approve, current_staff)],
                  archive: ArchiveDep) -> dict[str, Any]:
    """Approve a submitted visit (409 `not_submitted` otherwise): read-only for the rep."""
    return await run_in_threadpool(archive.approve_visit, visit_id, who.name, body.comment)


@router.post("/visits/{visit_id}/return", response_model=VisitRecord,
             openapi_extra=request_body(Return))
async def return_visit(visit_id: str, who: Annotated[StaffMember, require("visit.review")],
                       body: Annotated[Return, json_body(Return, current_staff)],
                       archive: ArchiveDep) -> dict[str, Any]:
    """Return a submitted visit to its author with a comment; their laptop pulls it, and
    their correction submits it again."""
    return await run_in_threadpool(archive.return_visit, visit_id, who.name, body.comment)


@router.get("/disputes", response_model=WaitingVisits)
async def disputes(who: Annotated[StaffMember, require("disputes.read")], archive: ArchiveDep,
                   manager: Manager = None, limit: Limit = 500) -> dict[str, Any]:
    """Visits whose call-back was disputed (a manager: their team)."""
    return {"visits": await run_in_threadpool(archive.disputes, who.name, manager, limit)}
