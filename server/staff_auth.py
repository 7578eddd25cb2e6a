"""Who is calling the staff API (`/v1/staff/...`): a bearer token of a staff account.

Create one with `fieldvault-server user token USER --name SYSTEM`; send it as
`Authorization: Bearer <token>`. The token only says who is calling: what they may
do is decided by `rules/access.authorize`, inside the archive call that acts, the
same check the CLI's `--by USER` goes through.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from .errors import ApiError
from .rules import staff
from .rules.access import StaffMember
from .state import ArchiveDep

STAFF_BEARER = HTTPBearer(auto_error=False, scheme_name="StaffToken", description=(
    "A staff account's token from `fieldvault-server user token USER`, "
    "as `Authorization: Bearer ...`"))


async def current_staff(
    archive: ArchiveDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(STAFF_BEARER)],
) -> StaffMember:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(401, "unauthorized", "send a staff token as `Authorization: Bearer ...`")
    who = await run_in_threadpool(archive.staff_by_token, credentials.credentials)
    if who is None:
        raise ApiError(401, "unauthorized", staff.TOKEN_REFUSED)
    return who


CurrentStaff = Annotated[StaffMember, Depends(current_staff)]


class RoleCheck:
    """A route's dependency: the caller, refused with 403 `forbidden` unless their role
    may do `action` at all (rules/access.MATRIX). Runs before the body is parsed, so a
    forbidden caller learns nothing about the body's rules. Whether a manager may act
    on this rep is checked again, with the record in hand, by the archive call."""

    def __init__(self, action: str) -> None:
        from .rules.access import MATRIX

        if action not in MATRIX:
            raise ValueError(f"unknown action {action!r}")  # a typo fails at import time
        self.action = action

    async def __call__(self, who: CurrentStaff) -> StaffMember:
        from .rules.access import MATRIX

        if who.role not in MATRIX[self.action]:
            raise ApiError(403, "forbidden", f"a {who.role.value} may not do {self.action}")
        return who


def require(action: str) -> Any:
    """`who: Annotated[StaffMember, require("visit.review")]` in a staff route."""
    return Depends(RoleCheck(action))
