"""The HR system's API: departures, authenticated by an HR-role bearer token.

Create a token with `fieldvault-server hr-token create --name SYSTEM`; send it as
`Authorization: Bearer <token>`. Tokens are stored hashed and compared in
constant time.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ..deps import ArchiveDep, json_body
from ..errors import ApiError
from ..openapi import request_body

router = APIRouter(prefix="/v1/hr", tags=["hr"])
_bearer = HTTPBearer(auto_error=False, description="HR-role token")


async def hr_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(401, "unauthorized", "send an HR token as `Authorization: Bearer ...`")
    name = await run_in_threadpool(request.app.state.archive.check_hr_token,
                                   credentials.credentials)
    if name is None:
        raise ApiError(401, "unauthorized", "unknown or revoked HR token")
    return f"hr-api:{name}"


HrCaller = Annotated[str, Depends(hr_caller)]


class DepartureRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rep: str = Field(min_length=1, max_length=200, description="Rep id or name (employee id).")
    reason: str = Field(min_length=1, max_length=500)
    reassign_to: str = Field(default="pool", max_length=200,
                             description="Successor rep, `manager`, `team` or `pool`.")
    effective_at: str | None = Field(default=None, max_length=40,
                                     description="ISO time; default now. Future dates are scheduled.")


@router.post("/departures", status_code=201, openapi_extra=request_body(DepartureRequest))
async def create_departure(
    body: Annotated[DepartureRequest, json_body(DepartureRequest, hr_caller)], caller: HrCaller,
    archive: ArchiveDep,
) -> dict:
    """Revoke a departing rep: devices refused and wiped, customers reassigned, visits kept.
    Idempotent: the same departure again answers with the existing one (`already: true`)."""
    return await run_in_threadpool(archive.revoke, body.rep, body.reason, body.reassign_to,
                                   body.effective_at, caller, "api")


@router.get("/departures/{rep}")
async def departure_report(rep: str, caller: HrCaller, archive: ArchiveDep) -> dict:
    """The departure report: devices' wipe status, customers reassigned, visits preserved."""
    return await run_in_threadpool(archive.departure_report, rep)
