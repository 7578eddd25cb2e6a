"""The fleet (admin and manager; a manager sees their team's laptops): every laptop
with its last sync and check-in, its deadlines, the unsynced work it reported at its
last check-in (how many changes, made since when), most at risk first. A laptop whose
agent does not report it shows what is known: anything unsynced was made after the
last sync."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...rules.access import StaffMember
from ..kit import archive_of, call, page_require, render
from ..menu import N_, Entry
from ..ops_terms import term_of

router = APIRouter()
MENU = [Entry("/fleet", N_("Fleet"), "fleet.read", order=65)]
Fleet = Annotated[StaffMember, page_require("fleet.read")]


@router.get("/fleet")
async def fleet(request: Request, who: Fleet) -> Response:
    rows = await call(archive_of(request).fleet, who.name)
    return render(request, "fleet_devices.html", devices=rows, term=term_of(request))
