"""Staff accounts over HTTP: who am I, accounts, their tokens, a rep's laptops.

Each route names its action once (`require`): the role is checked before the body
is read, then the archive call checks it again with the records in hand (a manager's
team) and writes the audit entry. The caller acts as their own account (`by=who.id`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ..answers import ReportDevice
from ..deps import ArchiveDep, json_body
from ..openapi import request_body
from ..rules.access import StaffMember
from ..rules.staff import MAX_PASSWORD, MIN_PASSWORD, TOKEN_MAX_AGE
from ..staff_auth import current_staff, require

router = APIRouter(prefix="/v1/staff", tags=["staff"])

Role = Literal["admin", "manager", "verifier", "hr"]
Password = Annotated[str, Field(min_length=MIN_PASSWORD, max_length=MAX_PASSWORD,
                                description="Sent only in a body, never logged; stored as argon2id.")]
TokenName = Annotated[str, Field(min_length=1, max_length=100,
                                 description="What uses the token (e.g. `erp`).")]


class Me(BaseModel):
    id: str
    name: str
    role: Role
    rep_id: str | None = Field(description="A manager's own rep: their team is every rep under it")
    actions: list[str] = Field(description="The actions this role may take (docs/RULES.md); a "
                               "manager's are limited to their team's records")


class StaffAccount(BaseModel):
    id: str
    name: str
    role: Role
    rep_id: str | None
    created_at: str
    disabled_at: str | None
    locked_until: str | None = Field(description="Set while locked after failed logins")
    has_password: bool = Field(description="false: an account for API tokens only")
    tokens: int = Field(description="Live (unrevoked) API tokens")


class NewStaff(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="Login name")
    role: Role
    rep: str | None = Field(default=None, max_length=200,
                            description="Required for a manager: their own rep (id or name)")
    password: Password | None = Field(default=None, description="Omit for an API-only account")


class NewToken(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: TokenName = "api"


class IssuedToken(BaseModel):
    user: str
    name: str
    token: str = Field(description="Shown this once; the archive keeps only its SHA-256")


class TokenInfo(BaseModel):
    name: str
    created_at: str
    last_used_at: str | None = Field(description="To the minute: written at most once a minute")
    revoked_at: str | None
    expires_at: str = Field(description=(
        f"It stops working then ({TOKEN_MAX_AGE.days} days after it was issued)"))


class RevokedTokens(BaseModel):
    user: str
    name: str
    revoked: int = Field(description="How many live tokens of that name were revoked")


class NewPassword(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: Password


@router.get("/me", response_model=Me)
async def me(who: Annotated[StaffMember, require("self.read")], archive: ArchiveDep) -> dict:
    """The caller's account and what their role may do."""
    return archive.whoami(who)


@router.get("/users", response_model=list[StaffAccount])
async def list_users(who: Annotated[StaffMember, require("staff.manage")],
                     archive: ArchiveDep) -> list[dict]:
    """Every staff account (never a password hash)."""
    return await run_in_threadpool(archive.list_staff, who.id)


@router.post("/users", status_code=201, response_model=StaffAccount,
             openapi_extra=request_body(NewStaff))
async def add_user(who: Annotated[StaffMember, require("staff.manage")],
                   body: Annotated[NewStaff, json_body(NewStaff, current_staff)],
                   archive: ArchiveDep) -> dict:
    """Add a staff account. 409 `duplicate_user`; 400 `rep_required` for a manager."""
    return await run_in_threadpool(archive.add_staff, body.name, body.role, body.rep,
                                   body.password, who.id)


@router.post("/users/{user}/disable", response_model=StaffAccount)
async def disable_user(user: str, who: Annotated[StaffMember, require("staff.manage")],
                       archive: ArchiveDep) -> dict:
    """Disable an account and revoke its tokens (idempotent). 409 `last_admin`."""
    return await run_in_threadpool(archive.disable_staff, user, who.id)


@router.post("/users/{user}/password", response_model=StaffAccount,
             openapi_extra=request_body(NewPassword))
async def set_password(user: str, who: Annotated[StaffMember, require("staff.manage")],
                       body: Annotated[NewPassword, json_body(NewPassword, current_staff)],
                       archive: ArchiveDep) -> dict:
    """Set a new password (an admin's reset); it also ends a lockout."""
    return await run_in_threadpool(archive.set_password, user, body.password, who.id)


@router.get("/users/{user}/tokens", response_model=list[TokenInfo])
async def list_tokens(user: str, who: Annotated[StaffMember, require("staff.manage")],
                      archive: ArchiveDep) -> list[dict]:
    """The account's API tokens, revoked ones too (never a secret)."""
    return await run_in_threadpool(archive.staff_tokens, user, who.id)


@router.post("/users/{user}/tokens", status_code=201, response_model=IssuedToken,
             openapi_extra=request_body(NewToken))
async def create_token(user: str, who: Annotated[StaffMember, require("staff.manage")],
                       body: Annotated[NewToken, json_body(NewToken, current_staff)],
                       archive: ArchiveDep) -> dict:
    """A new bearer token acting as `user`, shown once."""
    token = await run_in_threadpool(archive.create_staff_token, user, body.name, who.id)
    return {"user": user, "name": body.name.strip(), "token": token}


@router.delete("/users/{user}/tokens/{name}", response_model=RevokedTokens)
async def revoke_token(user: str, name: str, who: Annotated[StaffMember, require("staff.manage")],
                       archive: ArchiveDep) -> dict:
    """Revoke every live token of that name: they stop working at once. 404 `unknown_token`."""
    count = await run_in_threadpool(archive.revoke_staff_token, user, name, who.id)
    return {"user": user, "name": name, "revoked": count}


@router.get("/reps/{rep}/devices", response_model=list[ReportDevice])
async def rep_devices(rep: str, who: Annotated[StaffMember, require("device.read")],
                      archive: ArchiveDep) -> list[dict]:
    """A rep's laptops: state, last seen, lease, wipe. A manager: reps of their team only
    (403 `outside_team`)."""
    return await run_in_threadpool(archive.rep_devices, rep, who.id)
