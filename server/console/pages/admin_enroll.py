"""Admin: a one-time enrollment code for a rep's laptop, shown once with the command
the rep runs and that command as a QR code (inline SVG, drawn on the server)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from markupsafe import Markup

from ...rules.access import StaffMember
from ..kit import archive_of, call, page_require, render
from ..menu import N_, Entry

router = APIRouter()
MENU = [Entry("/admin/enroll", N_("Enroll a laptop"), "enroll.create", order=70)]
Admin = Annotated[StaffMember, page_require("enroll.create")]


async def _page(request: Request, who: StaffMember, made: dict | None = None) -> Response:
    reps = await call(archive_of(request).list_reps)
    return render(request, "admin_enroll.html", reps=[r for r in reps if r["active"]], made=made)


@router.get("/admin/enroll")
async def form(request: Request, who: Admin) -> Response:
    return await _page(request, who)


@router.post("/admin/enroll")
async def create(request: Request, who: Admin,
                 rep: Annotated[str, Form(min_length=1, max_length=200)],
                 ttl_hours: Annotated[float, Form(gt=0, le=720)] = 24) -> Response:
    server = str(request.base_url).rstrip("/")
    made = await call(archive_of(request).enrollment_code, rep, timedelta(hours=ttl_hours),
                      server, who.name)
    # segno's SVG: the command, escaped by segno and in the label by qr_svg.
    made["qr_svg"] = Markup(made["qr_svg"])  # noqa: S704
    response = await _page(request, who, made)
    response.headers["Cache-Control"] = "no-store"  # the code is shown this once
    return response
