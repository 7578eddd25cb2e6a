"""Call-back verification for staff (电话回访): the queue, a call's result, per-rep figures
and the policy that picks visits."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ..answers import Answer, Limit, VisitRecord, WaitingVisits
from ..deps import ArchiveDep, json_body
from ..openapi import request_body
from ..rules.access import StaffMember
from ..staff_auth import current_staff, require

router = APIRouter(prefix="/v1/staff", tags=["staff"])


class CallResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    result: Literal["verified", "disputed"]
    note: str = Field(default="", max_length=1000,
                      description="What the customer said; required for disputed.")


class RepFigures(Answer):
    rep_id: str
    rep_name: str
    called: int
    verified: int
    disputed: int
    pending: int
    share_verified: float | None = Field(description="verified / called; null before a call")
    share_disputed: float | None


class Throughput(BaseModel):
    by: str
    day: str = Field(description="YYYY-MM-DD (UTC)")
    calls: int


class Figures(BaseModel):
    reps: list[RepFigures]
    throughput: list[Throughput] = Field(description="Calls recorded per caller and day "
                                         "(a verifier: their own; a manager: none)")


class CallbackPolicy(BaseModel):
    sample_pct: int
    dispute_threshold_pct: int
    dispute_min_calls: int


class CallbackPolicyChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sample_pct: int | None = Field(default=None, ge=0, le=100)
    dispute_threshold_pct: int | None = Field(default=None, ge=0, le=100)
    dispute_min_calls: int | None = Field(default=None, ge=1, le=100000)


@router.get("/callbacks", response_model=WaitingVisits)
async def queue(who: Annotated[StaffMember, require("callback.work")], archive: ArchiveDep,
                limit: Limit = 500) -> dict[str, Any]:
    """Visits to call back, oldest first, with the customer's phone and decision maker."""
    return {"visits": await run_in_threadpool(archive.callback_queue, who.name, limit)}


@router.post("/callbacks/{visit_id}", response_model=VisitRecord,
             openapi_extra=request_body(CallResult))
async def record(visit_id: str, who: Annotated[StaffMember, require("callback.work")],
                 body: Annotated[CallResult, json_body(CallResult, current_staff)],
                 archive: ArchiveDep) -> dict[str, Any]:
    """Record a call's outcome (409 `already_called` the second time); a dispute goes to
    the rep's manager."""
    return await run_in_threadpool(archive.record_callback, visit_id, body.result, body.note,
                                   who.name)


@router.get("/callbacks/figures", response_model=Figures)
async def figures(who: Annotated[StaffMember, require("callback.figures")], archive: ArchiveDep,
                  rep: Annotated[str | None, Query(max_length=200)] = None) -> dict[str, Any]:
    """Per rep: called, verified, disputed and their shares (a manager: their team)."""
    return await run_in_threadpool(archive.callback_figures, who.name, rep)


@router.get("/callbacks/policy", response_model=CallbackPolicy)
async def policy(who: Annotated[StaffMember, require("policy.read")],
                 archive: ArchiveDep) -> dict[str, int]:
    """The call-back policy in force."""
    return await run_in_threadpool(archive.callback_policy, who.name)


@router.put("/callbacks/policy", response_model=CallbackPolicy,
            openapi_extra=request_body(CallbackPolicyChange))
async def set_policy(who: Annotated[StaffMember, require("callback.policy.set")],
                     body: Annotated[CallbackPolicyChange,
                                     json_body(CallbackPolicyChange, current_staff)],
                     archive: ArchiveDep) -> dict[str, int]:
    """Change the settings given (audited); visits submitted from now on follow them."""
    changes = {k: v for k, v in body.model_dump().items() if v is not None}
    return await run_in_threadpool(archive.set_callback_policy, changes, who.name)
