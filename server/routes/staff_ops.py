"""The office's oversight over HTTP: HR's people, departures (preview, confirm, report)
and HR tokens; the admin's enrollment codes, offline policy, policy previews, audit
log and overview; the fleet of laptops by risk. The console's HR, admin and fleet
pages are views over the same archive calls (server/rules/archive_ops.py).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ..answers import Answer, ReportDevice
from ..archive.store import AuditFilter
from ..deps import ArchiveDep, json_body
from ..openapi import request_body
from ..rules import staff
from ..rules.access import StaffMember
from ..rules.archive_ops import MAX_AUDIT_PAGE
from ..staff_auth import current_staff, require

router = APIRouter(prefix="/v1/staff", tags=["staff"])

Reassign = Annotated[str, Field(min_length=1, max_length=200, description=(
    "Successor rep (id or name), `manager`, `team` (dealt fairly over the rep's team) "
    "or `pool`."))]
When = Annotated[str | None, Field(default=None, max_length=40, description=(
    "ISO time the departure takes effect; default now. A future time is scheduled."))]
Text = Annotated[str, Query(max_length=200)]


# --- HR -----------------------------------------------------------------------------------


class Person(Answer):
    id: str
    name: str
    tier: str
    active: bool
    customers: int
    devices: list[ReportDevice]
    departure: dict[str, Any] | None = Field(description="The rep's departure, if recorded")


class DepartureAsk(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rep: str = Field(min_length=1, max_length=200, description="Rep id or name")
    reassign_to: Reassign = "pool"
    effective_at: When = None


class DepartureOrder(DepartureAsk):
    reason: str = Field(min_length=1, max_length=500)


class Share(BaseModel):
    rep_id: str
    name: str
    count: int


class DeparturePreview(Answer):
    rep: dict[str, str]
    reassign_to: str
    effective_at: str
    scheduled: bool
    customers: int = Field(description="Customers the rep owns, all of them reassigned")
    to: list[Share] = Field(description="How many go to each new owner, most first")
    to_pool: int
    devices: list[ReportDevice] = Field(description="Laptops that will be refused and wiped")
    visits_preserved: int


class Departure(Answer):
    id: int
    rep_id: str
    reason: str
    effective_at: str
    applied_at: str | None
    status: Literal["applied", "scheduled"]
    reassign_to: str
    reassigned: dict[str, int]
    requested_by: str
    source: str


class DepartureRecorded(Departure):
    already: bool = Field(description="true when this rep's departure was recorded before")


class DepartureListed(Departure):
    rep_name: str


class DepartureReport(Answer):
    rep: dict[str, Any]
    revocation: Departure
    devices: list[ReportDevice]
    wipe_receipt: str = Field(description="What a wipe receipt means (an attestation)")
    customers: list[dict[str, Any]] = Field(description="Each customer and its new owner")
    visits_preserved: int
    quarantined: int = Field(description="Final-flush operations held for review")


class HrTokenInfo(BaseModel):
    name: str
    created_at: str
    revoked_at: str | None
    expires_at: str = Field(description=(
        f"It stops working then ({staff.HR_TOKEN_MAX_AGE.days} days after it was issued)"))


class NewHrToken(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, description="The HR system using it")


class IssuedHrToken(BaseModel):
    name: str
    token: str = Field(description="Shown this once; the archive keeps only its SHA-256")


class RevokedHrTokens(BaseModel):
    name: str
    revoked: int


@router.get("/people", response_model=list[Person])
async def people(who: Annotated[StaffMember, require("device.read")],
                 archive: ArchiveDep) -> list[dict]:
    """Every rep (a manager: their team) with their laptops and departure, if any."""
    return await run_in_threadpool(archive.people, who.id)


@router.post("/departures/preview", response_model=DeparturePreview,
             openapi_extra=request_body(DepartureAsk))
async def departure_preview(who: Annotated[StaffMember, require("departure.manage")],
                            body: Annotated[DepartureAsk, json_body(DepartureAsk, current_staff)],
                            archive: ArchiveDep) -> dict:
    """A dry run of a departure: who would get how many customers, which laptops would be
    refused. Writes nothing. 400 `no_manager`, `empty_team`; 404 `unknown_successor`."""
    return await run_in_threadpool(archive.departure_preview, body.rep, body.reassign_to,
                                   who.id, body.effective_at)


@router.post("/departures", status_code=201, response_model=DepartureRecorded,
             openapi_extra=request_body(DepartureOrder))
async def depart(who: Annotated[StaffMember, require("departure.manage")],
                 body: Annotated[DepartureOrder, json_body(DepartureOrder, current_staff)],
                 archive: ArchiveDep) -> dict:
    """Record a departure: applied now (laptops refused and wiped at their next request,
    customers reassigned, visits kept) or scheduled. Idempotent (`already`)."""
    return await run_in_threadpool(archive.depart, body.rep, body.reason, body.reassign_to,
                                   body.effective_at, who.id, "api")


@router.get("/departures", response_model=list[DepartureListed])
async def departures(who: Annotated[StaffMember, require("departure.manage")],
                     archive: ArchiveDep) -> list[dict]:
    """Every departure, newest first."""
    return await run_in_threadpool(archive.departures_list, who.id)


@router.get("/departures/{rep}", response_model=DepartureReport)
async def departure_report(rep: str, who: Annotated[StaffMember, require("departure.manage")],
                           archive: ArchiveDep) -> dict:
    """The departure report: laptops and their wipe receipts, customers and their new
    owners, visits preserved, final-flush operations held. 404 `not_revoked`."""
    return await run_in_threadpool(archive.departure_report_for, rep, who.id)


@router.get("/hr-tokens", response_model=list[HrTokenInfo])
async def hr_tokens(who: Annotated[StaffMember, require("hr_token.manage")],
                    archive: ArchiveDep) -> list[dict]:
    """The HR system's tokens, revoked ones too (never a secret)."""
    return await run_in_threadpool(archive.hr_tokens, who.id)


@router.post("/hr-tokens", status_code=201, response_model=IssuedHrToken,
             openapi_extra=request_body(NewHrToken))
async def issue_hr_token(who: Annotated[StaffMember, require("hr_token.manage")],
                         body: Annotated[NewHrToken, json_body(NewHrToken, current_staff)],
                         archive: ArchiveDep) -> dict:
    """A token for the HR system's calls to /v1/hr, shown once."""
    token = await run_in_threadpool(archive.issue_hr_token, body.name, who.id)
    return {"name": body.name.strip(), "token": token}


@router.delete("/hr-tokens/{name}", response_model=RevokedHrTokens)
async def revoke_hr_token(name: str, who: Annotated[StaffMember, require("hr_token.manage")],
                          archive: ArchiveDep) -> dict:
    """Revoke the HR tokens of that name. 404 `unknown_token`."""
    count = await run_in_threadpool(archive.revoke_hr_token, name, who.id)
    return {"name": name, "revoked": count}


# --- admin --------------------------------------------------------------------------------


class NewEnrollCode(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rep: str = Field(min_length=1, max_length=200, description="Rep id or name")
    ttl_hours: float = Field(default=24, gt=0, le=720, description="How long the code is valid")


class EnrollCode(BaseModel):
    rep_id: str
    rep_name: str
    code: str = Field(description="Shown this once; the archive keeps only its hash")
    expires_at: str
    command: str = Field(description="What the rep runs on their laptop")
    qr_svg: str = Field(description="The command as a QR code, inline SVG")


class OfflinePolicy(Answer):
    offline_block_hours: float
    offline_wipe_days: float
    require_pin: bool
    timezone: str


class OfflinePolicyChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    block_hours: float | None = Field(default=None, gt=0, le=8760)
    wipe_days: float | None = Field(default=None, gt=0, le=3650)
    require_pin: bool | None = None
    timezone: str | None = Field(default=None, max_length=64)


class PolicyPreviewAsk(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pool: dict[str, int] = Field(default_factory=dict, max_length=20, description=(
        "Pool settings to try (as PUT /v1/staff/pool/policy takes them)"))
    block_hours: float | None = Field(default=None, gt=0, le=8760)


class PolicyPreview(Answer):
    pool: dict[str, dict[str, int]] = Field(description=(
        "`now` and `new`: customers due back in the pool (`due`) and owners warned "
        "(`warned`) under today's policy and the proposed one"))
    policy: dict[str, int] = Field(description="The pool policy as proposed")
    offline: dict[str, float]


class AuditEntry(Answer):
    seq: int
    at: str
    actor: str
    action: str
    subject: str
    details: dict[str, Any]


class AuditPage(BaseModel):
    entries: list[AuditEntry]
    total: int


class ChainVerdict(BaseModel):
    ok: bool
    entries: int
    first_broken: int | None
    problem: str


class Overview(Answer):
    counts: dict[str, int]
    audit_entries: int
    quarantine_open: int
    conflicts_open: int
    devices_by_risk: dict[str, int]
    departures_scheduled: int
    replication: dict[str, Any] = Field(description="As /healthz reports it")


@router.post("/enroll-codes", status_code=201, response_model=EnrollCode,
             openapi_extra=request_body(NewEnrollCode))
async def enroll_code(request: Request, who: Annotated[StaffMember, require("enroll.create")],
                      body: Annotated[NewEnrollCode, json_body(NewEnrollCode, current_staff)],
                      archive: ArchiveDep) -> dict:
    """A one-time enrollment code for a rep's laptop, with the enroll command and its QR
    code. 400 `rep_inactive` for a rep who has left."""
    server = str(request.base_url).rstrip("/")
    return await run_in_threadpool(archive.enrollment_code, body.rep,
                                   timedelta(hours=body.ttl_hours), server, who.id)


@router.get("/offline-policy", response_model=OfflinePolicy)
async def offline_policy(who: Annotated[StaffMember, require("policy.read")],
                         archive: ArchiveDep) -> dict:
    """How long a laptop may stay offline (block, wipe), the PIN rule, the company's zone."""
    return await run_in_threadpool(archive.policy)


@router.put("/offline-policy", response_model=OfflinePolicy,
            openapi_extra=request_body(OfflinePolicyChange))
async def set_offline_policy(
        who: Annotated[StaffMember, require("policy.set")],
        body: Annotated[OfflinePolicyChange, json_body(OfflinePolicyChange, current_staff)],
        archive: ArchiveDep) -> dict:
    """Change the offline policy; leases issued from now on follow it. 400 `invalid_policy`."""
    return await run_in_threadpool(archive.set_offline_policy, who.id, body.block_hours,
                                   body.wipe_days, body.require_pin, body.timezone)


@router.post("/policy/preview", response_model=PolicyPreview,
             openapi_extra=request_body(PolicyPreviewAsk))
async def policy_preview(who: Annotated[StaffMember, require("policy.set")],
                         body: Annotated[PolicyPreviewAsk, json_body(PolicyPreviewAsk, current_staff)],
                         archive: ArchiveDep) -> dict:
    """What a policy change would do now, written nowhere. 400 `invalid_policy`."""
    return await run_in_threadpool(archive.policy_preview, who.id, body.pool, body.block_hours)


@router.get("/audit", response_model=AuditPage)
async def audit_log(who: Annotated[StaffMember, require("audit.read")], archive: ArchiveDep,
                    actor: Text = "", action: Text = "", subject: Text = "",
                    since: Annotated[str, Query(max_length=40)] = "",
                    until: Annotated[str, Query(max_length=40)] = "",
                    limit: Annotated[int, Query(ge=1, le=MAX_AUDIT_PAGE)] = 50,
                    offset: Annotated[int, Query(ge=0, le=10**9)] = 0) -> dict:
    """The audit log, newest first: exact actor and subject, an action prefix
    (`staff.`), a [since, until) window of ISO times."""
    where = AuditFilter(actor or None, action or None, subject or None, since or None,
                        until or None)
    return await run_in_threadpool(archive.audit_log, who.id, where, limit, offset)


@router.get("/audit/verify", response_model=ChainVerdict)
async def audit_verify(who: Annotated[StaffMember, require("audit.read")],
                       archive: ArchiveDep) -> dict:
    """Walk the whole chain; the first entry that does not check out, if any."""
    return await run_in_threadpool(archive.audit_check, who.id)


@router.get("/overview", response_model=Overview)
async def overview(request: Request, who: Annotated[StaffMember, require("ops.read")],
                   archive: ArchiveDep) -> dict:
    """The archive at a glance, with backup and replication health."""
    glance = await run_in_threadpool(archive.overview, who.id)
    replication = await run_in_threadpool(request.app.state.replication.status)
    return {**glance, "replication": replication}


# --- the fleet ----------------------------------------------------------------------------


class FleetDevice(Answer):
    id: str
    rep_id: str
    rep_name: str
    name: str
    state: str
    last_seen_at: str | None = Field(description="The laptop's last signed request (a sync)")
    lease_issued_at: str | None = Field(description="Its last check-in")
    block_at: str | None
    wipe_at: str | None
    wipe_ordered_at: str | None
    wipe_receipt_at: str | None
    risk: Literal["wipe_pending", "blocked", "near_block", "ok", "wiped"]
    window_used: float = Field(description="Share of its offline window used (1 = blocked)")
    unsynced_ops: int | None = Field(description=(
        "Operations the laptop had not synced at its last check-in; null if its agent "
        "does not report them"))
    oldest_unsynced_at: str | None = Field(description=(
        "When the oldest of them was made (null when none, or not reported)"))
    unsynced_age_s: float | None = Field(description=(
        "Age of that oldest unsynced operation now, in seconds (sorts the risk within a rank)"))
    unsynced_at_most_s: float | None = Field(description=(
        "Anything unsynced was made after the last sync: at most this many seconds old"))


@router.get("/fleet", response_model=list[FleetDevice])
async def fleet(who: Annotated[StaffMember, require("fleet.read")],
                archive: ArchiveDep) -> list[dict]:
    """Every laptop (a manager: their team's), most at risk first: awaiting a wipe,
    past the block deadline, near it, the rest, wiped."""
    return await run_in_threadpool(archive.fleet, who.id)
