"""The staff API for customers: listings, one card's file, locks, assignment, fair
distribution and the pool's policy and warnings (`/v1/staff/...`, bearer token).

Each route declares its action once (`require`); the archive call checks it again
with the record in hand (a manager: their team's customers and the pool's).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from schema.enums import Grade

from ..deps import ArchiveDep, json_body
from ..openapi import request_body
from ..rules.access import StaffMember
from ..staff_auth import current_staff, require

router = APIRouter(prefix="/v1/staff", tags=["staff"])

Ref = Annotated[str, Path(min_length=1, max_length=64, description="Customer id or card number")]


class _Answer(BaseModel):
    """Built by the archive: a key added there is passed on, not dropped."""

    model_config = ConfigDict(extra="allow")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class StaffCard(_Answer):
    """A customer card as the archive holds it (every card field, ownership, lock)."""

    id: str
    card_no: str
    name: str
    grade: Grade
    rev: int
    owner_rep_id: str | None
    owned_since: str | None
    ownership_source: str
    last_served_at: str | None
    locked: int = Field(description="1: a key account, exempt from pool returns")


class ListedCard(StaffCard):
    owner_name: str | None


class CustomerList(_Answer):
    customers: list[ListedCard]
    total: int


class OwnershipRow(_Answer):
    from_rep_id: str | None
    to_rep_id: str | None
    source: str = Field(description="assigned, developed, claimed, pool; locked/unlocked "
                        "marks keep the owner (from = to)")
    reason: str
    by: str
    at: str


class CustomerFile(_Answer):
    card: StaffCard
    ownership: list[OwnershipRow]
    visits: list[_Answer]


class LockRequest(_Body):
    reason: str = Field("key account", min_length=1, max_length=500)


class AssignRequest(_Body):
    rep: str | None = Field(None, max_length=200, description="Rep id or name; null: the pool")
    reason: str = Field(min_length=1, max_length=500)


class DistributeRequest(_Body):
    """Deal the pool's customers. (New leads come in through `customer distribute
    FILE.csv`; a body of cards would outgrow the staff API's small body cap.)"""

    to_team: str | None = Field(None, max_length=200, description=(
        "A manager (staff account or rep): their active reps, transitively"))
    to_reps: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        None, min_length=1, max_length=20, description="Reps by id or name (a bigger group: "
        "to_team)")
    dry_run: bool = False


class PlanRow(_Answer):
    customer: str = Field(description="Card number")
    name: str
    grade: Grade
    to: str | None
    to_rep_id: str | None
    reason: str


class Distribution(_Answer):
    dry_run: bool
    source: str
    assigned: dict[str, int]
    left_in_pool: int
    skipped: list[_Answer]
    plan: list[PlanRow]


class PoolPolicyModel(_Answer):
    return_days_a: int
    return_days_b: int
    return_days_c: int
    warn_days: int
    grace_days: int
    claims_per_day: int
    cap_senior: int
    cap_mid: int
    cap_junior: int
    reclaim_cooldown_days: int


class PoolPolicyPatch(_Body):
    """Only the settings to change."""

    model_config = ConfigDict(extra="forbid")

    return_days_a: int | None = None
    return_days_b: int | None = None
    return_days_c: int | None = None
    warn_days: int | None = None
    grace_days: int | None = None
    claims_per_day: int | None = None
    cap_senior: int | None = None
    cap_mid: int | None = None
    cap_junior: int | None = None
    reclaim_cooldown_days: int | None = None


class PoolWarning(_Answer):
    customer_id: str
    card_no: str
    name: str
    rep_id: str
    rep_name: str
    due_at: str
    returns_at: str
    warned_at: str


class PoolWarnings(_Answer):
    warnings: list[PoolWarning]


@router.get("/customers", response_model=CustomerList)
async def list_customers(
    who: Annotated[StaffMember, require("customer.read")], archive: ArchiveDep,
    owner: Annotated[str | None, Query(max_length=200)] = None,
    grade: Grade | None = None,
    pool: Annotated[bool | None, Query(description="true: only the pool; false: only owned")]
        = None,
    locked: bool | None = None,
    not_visited_for_days: Annotated[int | None, Query(ge=0, le=36500)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    """Cards by card number (a manager: their team's and the pool's)."""
    return await run_in_threadpool(
        archive.find_customers, who.name, owner, grade.value if grade else None, pool, locked,
        not_visited_for_days, limit, offset)


@router.get("/customers/{ref}", response_model=CustomerFile)
async def customer_file(who: Annotated[StaffMember, require("customer.read")],
                        archive: ArchiveDep, ref: Ref) -> dict[str, Any]:
    """One card with its ownership history and every visit."""
    return await run_in_threadpool(archive.customer_file, ref, who.name)


@router.post("/customers/{ref}/lock", response_model=StaffCard,
             openapi_extra=request_body(LockRequest))
async def lock_customer(
    who: Annotated[StaffMember, require("customer.lock")], archive: ArchiveDep, ref: Ref,
    body: Annotated[LockRequest, json_body(LockRequest, current_staff)],
) -> dict[str, Any]:
    """Make a key account: exempt from pool returns (409 `in_pool` for a pool card)."""
    return await run_in_threadpool(archive.lock_customer, ref, who.name, body.reason)


@router.post("/customers/{ref}/unlock", response_model=StaffCard,
             openapi_extra=request_body(LockRequest))
async def unlock_customer(
    who: Annotated[StaffMember, require("customer.lock")], archive: ArchiveDep, ref: Ref,
    body: Annotated[LockRequest, json_body(LockRequest, current_staff)],
) -> dict[str, Any]:
    """The pool's return rules apply to the customer again."""
    return await run_in_threadpool(archive.unlock_customer, ref, who.name, body.reason)


@router.post("/customers/{ref}/assign", response_model=StaffCard,
             openapi_extra=request_body(AssignRequest))
async def assign_customer(
    who: Annotated[StaffMember, require("customer.assign")], archive: ArchiveDep, ref: Ref,
    body: Annotated[AssignRequest, json_body(AssignRequest, current_staff)],
) -> dict[str, Any]:
    """Give the customer to a rep, or to the pool (`rep`: null)."""
    return await run_in_threadpool(archive.assign_customer, ref, body.rep, body.reason, who.name)


@router.post("/distribute", response_model=Distribution,
             openapi_extra=request_body(DistributeRequest))
async def distribute(
    who: Annotated[StaffMember, require("customer.distribute")], archive: ArchiveDep,
    body: Annotated[DistributeRequest, json_body(DistributeRequest, current_staff)],
) -> dict[str, Any]:
    """Deal the pool's customers round-robin over a team or named reps, balancing load,
    grade A to seniors and C to juniors, skipping reps at their cap; the plan with a
    reason for each customer. `dry_run`: nothing written."""
    return await run_in_threadpool(lambda: archive.distribute(
        who.name, None, body.to_team, body.to_reps, body.dry_run))


@router.get("/pool/policy", response_model=PoolPolicyModel)
async def pool_policy(who: Annotated[StaffMember, require("policy.read")],
                      archive: ArchiveDep) -> dict[str, Any]:
    """The pool's rules in force."""
    return await run_in_threadpool(archive.pool_policy)


@router.put("/pool/policy", response_model=PoolPolicyModel,
            openapi_extra=request_body(PoolPolicyPatch))
async def set_pool_policy(
    who: Annotated[StaffMember, require("pool.policy.set")], archive: ArchiveDep,
    body: Annotated[PoolPolicyPatch, json_body(PoolPolicyPatch, current_staff)],
) -> dict[str, Any]:
    """Change some of the pool's rules (400 `invalid_policy`: nothing changed)."""
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    return await run_in_threadpool(archive.set_pool_policy, changes, who.name)


@router.get("/pool/warnings", response_model=PoolWarnings)
async def pool_warnings(
    who: Annotated[StaffMember, require("customer.read")], archive: ArchiveDep,
    rep: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    """Customers due back in the pool soon, soonest first (a manager: their team's)."""
    return {"warnings": await run_in_threadpool(archive.pool_warnings, rep, who.name)}
