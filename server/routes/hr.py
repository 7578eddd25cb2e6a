"""The HR system's API: departures, authenticated by a bearer token: an HR token
(`fieldvault-server hr-token --name SYSTEM`) or the token of a staff account whose
role may manage departures (hr or admin: `fieldvault-server user token USER`).
Send it as `Authorization: Bearer <token>`. Tokens are stored hashed and compared
in constant time.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ..answers import ReportDevice
from ..deps import ArchiveDep, json_body
from ..errors import ApiError
from ..openapi import request_body
from ..rules import staff
from ..rules.access import MATRIX

router = APIRouter(prefix="/v1/hr", tags=["hr"])
_bearer = HTTPBearer(auto_error=False, scheme_name="HRToken", description=(
    "An HR token from `fieldvault-server hr-token --name SYSTEM`, or a staff token of an hr or "
    "admin account (`fieldvault-server user token USER`), as `Authorization: Bearer ...`"))


async def hr_caller(
    archive: ArchiveDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(401, "unauthorized", "send an HR token as `Authorization: Bearer ...`")
    name = await run_in_threadpool(archive.check_hr_token,
                                   credentials.credentials)
    if name is not None:
        return f"hr-api:{name}"
    who = await run_in_threadpool(archive.staff_by_token, credentials.credentials)
    if who is None:
        raise ApiError(401, "unauthorized", staff.TOKEN_REFUSED)
    if who.role not in MATRIX["departure.manage"]:
        raise ApiError(403, "forbidden", f"a {who.role.value} may not do departure.manage")
    return who.actor


HrCaller = Annotated[str, Depends(hr_caller)]


class DepartureRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rep: str = Field(min_length=1, max_length=200, description="Rep id or name (employee id).")
    reason: str = Field(min_length=1, max_length=500)
    reassign_to: str = Field(default="pool", max_length=200,
                             description="Successor rep, `manager`, `team` or `pool`.")
    effective_at: str | None = Field(default=None, max_length=40,
                                     description="ISO time; default now. Future dates are scheduled.")


class _Answer(BaseModel):
    """Answers built by the archive: a key added there is passed on, not dropped by
    FastAPI's response_model filtering."""

    model_config = ConfigDict(extra="allow")


class Departure(_Answer):
    """A departure as recorded (server/archive `revoke`)."""

    id: int
    rep_id: str
    reason: str
    effective_at: str
    applied_at: str | None = Field(description="null while the departure is scheduled")
    status: Literal["applied", "scheduled"]
    reassign_to: str
    reassigned: dict[str, int] = Field(description="Customers moved, per new owner (`pool`)")
    requested_by: str
    source: str


class DepartureAnswer(Departure):
    already: bool = Field(description="true when this rep's departure was recorded before")


class ReportRep(_Answer):
    id: str
    name: str
    active: bool


class ReportCustomer(_Answer):
    customer_id: str
    name: str
    card_no: str
    to: str | None = Field(description="New owner's rep id; null for the pool")
    to_name: str
    owner_now: str | None


class DepartureReport(_Answer):
    rep: ReportRep
    revocation: Departure
    devices: list[ReportDevice]
    wipe_receipt: str = Field(description="What a wipe receipt means (an attestation)")
    customers: list[ReportCustomer]
    visits_preserved: int
    quarantined: int


@router.post("/departures", status_code=201, response_model=DepartureAnswer,
             openapi_extra=request_body(DepartureRequest))
async def create_departure(
    body: Annotated[DepartureRequest, json_body(DepartureRequest, hr_caller)], caller: HrCaller,
    archive: ArchiveDep,
) -> dict:
    """Revoke a departing rep: devices refused and wiped, customers reassigned, visits kept.
    Idempotent: the same departure again answers with the existing one (`already: true`)."""
    return await run_in_threadpool(archive.revoke, body.rep, body.reason, body.reassign_to,
                                   body.effective_at, caller, "api")


@router.get("/departures/{rep}", response_model=DepartureReport)
async def departure_report(rep: str, caller: HrCaller, archive: ArchiveDep) -> dict:
    """The departure report: devices' wipe status, customers reassigned, visits preserved."""
    return await run_in_threadpool(archive.departure_report, rep)
