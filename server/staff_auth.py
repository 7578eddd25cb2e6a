"""Who is calling the staff API (`/v1/staff/...`): a bearer token of a staff account.

Create one with `fieldvault-server user token USER --name SYSTEM`; send it as
`Authorization: Bearer <token>`. The token only says who is calling: what they may
do is decided by `rules/access.authorize`, inside the archive call that acts, the
same check the CLI's `--by USER` goes through.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from .errors import ApiError
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
        raise ApiError(401, "unauthorized", "unknown or revoked token, or a disabled account")
    return who


CurrentStaff = Annotated[StaffMember, Depends(current_staff)]
