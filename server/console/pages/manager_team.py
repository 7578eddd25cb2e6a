"""A manager's team dashboard (an admin's: everyone's) and the disputed visits."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...rules.access import StaffMember
from ..charts import stacked_bars
from ..kit import archive_of, call, gettext_of, page_require, render
from ..menu import N_, Entry

router = APIRouter()
MENU = [Entry("/team", N_("Team"), "report.read", order=10),
        Entry("/disputes", N_("Disputes"), "disputes.read", order=14)]
Reader = Annotated[StaffMember, page_require("report.read")]
DisputeReader = Annotated[StaffMember, page_require("disputes.read")]


@router.get("/team")
async def team(request: Request, who: Reader) -> Response:
    board = await call(archive_of(request).team_dashboard, who.name)
    counts = {(r["rep_id"], r["day"]): int(r["visits"]) for r in board["per_day"]}
    series = [(name, [counts.get((rep_id, d), 0) for d in board["days"]])
              for rep_id, name in board["reps"]]
    _ = gettext_of(request)
    chart = stacked_bars(_("Visits per day per rep, last 30 days"),
                         [d[5:] for d in board["days"]], series)
    return render(request, "team.html", board=board, series=series, chart=chart)


@router.get("/disputes")
async def disputes(request: Request, who: DisputeReader) -> Response:
    rows = await call(archive_of(request).disputes_page, who.name, 100)
    return render(request, "disputes.html", rows=rows)
