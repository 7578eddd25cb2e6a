"""Admin: staff accounts and their roles. Add an account (a manager names the rep row
their team hangs under), disable one (its tokens are revoked; the last admin stays), set
a new password (it also ends a lockout). The rules are the staff library's."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from ...rules.access import StaffMember
from ...rules.staff import MAX_PASSWORD, MIN_PASSWORD
from ..kit import (
    PREFIX,
    ROLE_NAMES,
    archive_of,
    call,
    done_note,
    gettext_of,
    page_require,
    redirect,
    render,
)
from ..menu import N_, Entry

router = APIRouter()
MENU = [Entry("/admin/staff", N_("Staff accounts"), "staff.manage", order=69)]
Admin = Annotated[StaffMember, page_require("staff.manage")]
User = Annotated[str, Form(min_length=1, max_length=200)]
# Only the length cap here: a short password is the staff library's to refuse, saying why.
Password = Annotated[str, Form(min_length=1, max_length=MAX_PASSWORD)]
NOTES = {"added": N_("Account added."), "disabled": N_("Account disabled; its tokens are revoked."),
         "password": N_("Password set; any lockout is over.")}


@router.get("/admin/staff")
async def staff(request: Request, who: Admin) -> Response:
    archive = archive_of(request)
    accounts = await call(archive.list_staff, who.name)
    reps = await call(archive.list_reps)
    names = {r["id"]: r["name"] for r in reps}
    _ = gettext_of(request)
    return render(request, "admin_staff.html", accounts=accounts, reps=reps, names=names,
                  min_password=MIN_PASSWORD, role_label=lambda role: _(ROLE_NAMES[role]),
                  note=done_note(request, NOTES))


@router.post("/admin/staff")
async def add(request: Request, who: Admin, user: User,
              role: Annotated[str, Form(pattern="^(admin|manager|verifier|hr)$")],
              password: Password, rep: Annotated[str, Form(max_length=200)] = "") -> Response:
    await call(archive_of(request).add_staff, user, role, rep or None, password, who.name)
    return redirect(f"{PREFIX}/admin/staff?done=added")


@router.post("/admin/staff/disable")
async def disable(request: Request, who: Admin, user: User) -> Response:
    await call(archive_of(request).disable_staff, user, who.name)
    return redirect(f"{PREFIX}/admin/staff?done=disabled")


@router.post("/admin/staff/password")
async def password(request: Request, who: Admin, user: User, password: Password) -> Response:
    await call(archive_of(request).set_password, user, password, who.name)
    return redirect(f"{PREFIX}/admin/staff?done=password")
