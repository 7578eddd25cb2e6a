"""Quarantine and conflict review for staff: what the archive held back, and deciding it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from schema.validation import MAX_WIRE_INT

from ..answers import Answer, Limit
from ..deps import ArchiveDep, json_body
from ..openapi import request_body
from ..rules.access import StaffMember
from ..staff_auth import current_staff, require

# A row number the archive handed out: bounded so that no database integer overflows
# (a 25-digit id answered 500 before; the staff fuzz found it).
RowId = Annotated[int, Path(ge=1, le=MAX_WIRE_INT)]

router = APIRouter(prefix="/v1/staff", tags=["staff"])

OpenOnly = Annotated[bool, Query(alias="open", description="Only those not decided yet.")]


class HeldOp(Answer):
    id: int
    op_id: str
    device_id: str
    rep_id: str
    kind: str
    entity_id: str
    payload: dict[str, Any]
    reason: str
    at: str
    decision: Literal["accepted", "rejected"] | None
    decided_by: str | None
    decision_reason: str
    reviewed_at: str | None


class ConflictRow(Answer):
    id: int
    customer_id: str
    customer_name: str
    card_no: str
    field: str
    server_value: Any
    rep_value: Any
    rep_id: str
    at: str
    resolved_at: str | None
    resolved_by: str | None
    resolution: Literal["server", "rep"] | None


class HeldOps(BaseModel):
    held: list[HeldOp]


class Conflicts(BaseModel):
    conflicts: list[ConflictRow]


class Reject(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500)


class Resolve(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keep: Literal["server", "rep"]


@router.get("/quarantine", response_model=HeldOps)
async def quarantine(who: Annotated[StaffMember, require("quarantine.review")],
                     archive: ArchiveDep, open_only: OpenOnly = False,
                     limit: Limit = 500) -> dict[str, Any]:
    """Operations held for review, oldest first."""
    return {"held": await run_in_threadpool(archive.held_ops, who.name, open_only, limit)}


@router.post("/quarantine/{held_id}/accept", response_model=HeldOp)
async def accept(held_id: RowId, who: Annotated[StaffMember, require("quarantine.review")],
                 archive: ArchiveDep) -> dict[str, Any]:
    """Apply a held operation as if it had arrived in time (author and times kept);
    409 `already_decided`, or `cannot_apply` when a record it needs is missing."""
    return await run_in_threadpool(archive.accept_quarantined, held_id, who.name)


@router.post("/quarantine/{held_id}/reject", response_model=HeldOp,
             openapi_extra=request_body(Reject))
async def reject(held_id: RowId, who: Annotated[StaffMember, require("quarantine.review")],
                 body: Annotated[Reject, json_body(Reject, current_staff)],
                 archive: ArchiveDep) -> dict[str, Any]:
    """Keep a held operation unapplied, marked with the reason (nothing is deleted)."""
    return await run_in_threadpool(archive.reject_quarantined, held_id, who.name, body.reason)


@router.get("/conflicts", response_model=Conflicts)
async def conflicts(who: Annotated[StaffMember, require("conflict.resolve")],
                    archive: ArchiveDep, open_only: OpenOnly = True,
                    limit: Limit = 500) -> dict[str, Any]:
    """Conflicts, oldest first (a manager: their team's); by default the open ones."""
    return {"conflicts": await run_in_threadpool(archive.open_conflicts, who.name, open_only,
                                                 limit)}


@router.post("/conflicts/{conflict_id}/resolve", response_model=ConflictRow,
             openapi_extra=request_body(Resolve))
async def resolve(conflict_id: RowId, who: Annotated[StaffMember, require("conflict.resolve")],
                  body: Annotated[Resolve, json_body(Resolve, current_staff)],
                  archive: ArchiveDep) -> dict[str, Any]:
    """Close a conflict: the kept value becomes a new card revision (409 `already_resolved`)."""
    return await run_in_threadpool(archive.resolve_conflict, conflict_id, body.keep, who.name)
