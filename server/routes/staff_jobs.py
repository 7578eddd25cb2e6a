"""The staff API's jobs: run every due job now (pool returns and warnings, due
departures), as `fieldvault-server jobs run` does; admin only, audited."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ..deps import ArchiveDep
from ..rules.access import StaffMember
from ..staff_auth import require

router = APIRouter(prefix="/v1/staff", tags=["staff"])


class JobsRun(BaseModel):
    model_config = ConfigDict(extra="allow")

    at: str = Field(description="The time the jobs ran as of")
    departures_applied: list[str] = Field(description="Reps whose scheduled departure applied")
    returned: int = Field(description="Customers returned to the pool")
    returned_cards: list[str]
    warned: int = Field(description="New warnings to owners")
    evidence_checked: int = Field(0, description="Pushed visit revisions whose device "
                                  "signature was verified in this run")
    evidence_failed: int = Field(0, description="Of those, signatures that do not verify "
                                 "(each in the audit log as evidence.invalid)")


@router.post("/jobs/run", response_model=JobsRun)
async def run_jobs(who: Annotated[StaffMember, require("jobs.run")],
                   archive: ArchiveDep) -> dict[str, Any]:
    """Run every due job as of now; idempotent (a second run finds nothing to do)."""
    return await run_in_threadpool(archive.run_jobs, None, who.name)
