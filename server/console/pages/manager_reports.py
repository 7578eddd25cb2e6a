"""The daily report per rep (每日销售报告) and the weekly team progress, with charts;
CSV exports go through the archive's audited export (report.export)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from ...rules.access import MATRIX, StaffMember
from ..charts import stacked_bars
from ..kit import archive_of, call, gettext_of, page_require, render
from ..menu import N_, Entry

router = APIRouter()
MENU = [Entry("/reports/daily", N_("Daily report"), "report.read", order=30),
        Entry("/reports/weekly", N_("Weekly progress"), "report.read", order=31)]
Reader = Annotated[StaffMember, page_require("report.read")]
Exporter = Annotated[StaffMember, page_require("report.export")]


def _today(request: Request) -> str:
    return archive_of(request).clock.now().date().isoformat()


def _this_week(request: Request) -> str:
    year, week, _ = archive_of(request).clock.now().date().isocalendar()
    return f"{year}-W{week:02d}"


def _may_export(who: StaffMember) -> bool:
    return who.role in MATRIX["report.export"]


@router.get("/reports/daily")
async def daily(request: Request, who: Reader, rep: str = "", day: str = "") -> Response:
    archive = archive_of(request)
    reps = await call(archive.team_reps, who.name)
    day = day or _today(request)
    report = None
    if rep:
        report = await call(archive.daily_report, rep, day, by=who.name)
    return render(request, "report_daily.html", reps=reps, rep=rep, day=day, report=report,
                  may_export=_may_export(who))


@router.get("/reports/weekly")
async def weekly(request: Request, who: Reader, team: str = "", week: str = "") -> Response:
    team = team or (who.name if who.role.value == "manager" else "")
    week = week or _this_week(request)
    report, chart = None, None
    if team:
        report = await call(archive_of(request).weekly_report, team, week, by=who.name)
        _ = gettext_of(request)
        chart = stacked_bars(
            _("Visits per rep this week"), [r["rep_name"] for r in report["reps"]],
            [(_("Effective visits"), [r["effective_visits"] for r in report["reps"]]),
             (_("Other visits"), [r["visits"] - r["effective_visits"] for r in report["reps"]])])
    return render(request, "report_weekly.html", team=team, week=week, report=report, chart=chart,
                  may_export=_may_export(who))


@router.post("/reports/export")
async def export(request: Request, who: Exporter,
                 kind: Annotated[str, Form(pattern="^(daily|weekly)$")],
                 subject: Annotated[str, Form(max_length=200)],
                 period: Annotated[str, Form(max_length=20)]) -> Response:
    """The report as CSV (UTF-8 with a BOM, for spreadsheets); the export is in the
    audit chain with its row count."""
    text, _rows = await call(archive_of(request).export_report, kind, subject, period, by=who.name)
    filename = f"{kind}-{subject}-{period}.csv"
    return Response(text.encode("utf-8"), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}"})



