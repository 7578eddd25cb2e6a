"""One rep as their manager sees them: customers, recent visits, plans against what was
done, and what the call-back office found."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...rules.access import StaffMember
from ..kit import archive_of, call, page_require, render

router = APIRouter()
Reader = Annotated[StaffMember, page_require("report.read")]


@router.get("/reps/{rep}")
async def rep_page(request: Request, who: Reader, rep: str) -> Response:
    archive = archive_of(request)
    row = await call(archive.rep_of, rep, who.name)
    customers = await call(archive.customers_page, who.name, owner=row["id"], limit=50)
    visits = await call(archive.rep_visits, row["id"], who.name)
    plans = await call(archive.list_plans, by=who.name, rep=row["id"], limit=14)
    details = [await call(archive.show_plan, p["id"], by=who.name) for p in plans[:7]]
    figures = await call(archive.callback_figures, by=who.name, rep=row["id"])
    mine = next((r for r in figures["reps"] if r.get("rep_id") == row["id"]), None)
    return render(request, "rep.html", rep=row, customers=customers, visits=visits[:50],
                  plans=details, callbacks=mine)
