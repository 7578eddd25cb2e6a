"""Reports for managers: a rep's daily report (每日销售报告) and a team's weekly progress.

`format=csv` is an export of customer data: admins, and managers for their own team
(`report.export`, checked by the archive call that makes it, not just here), recorded in the audit chain with
its row count. The CSV is UTF-8 with a byte order mark, so Excel shows Chinese."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from schema.enums import VisitPurpose

from ..deps import ArchiveDep
from ..rules.access import StaffMember
from ..staff_auth import require

router = APIRouter(prefix="/v1/staff", tags=["staff"])

Format = Annotated[Literal["json", "csv"], Query(
    description="csv: the report as a spreadsheet (admins; managers for their own team; audited)")]
_CSV: dict[int | str, dict[str, Any]] = {200: {"content": {"text/csv": {"schema": {"type": "string"}}},
              "description": "The report; with format=csv, CSV text (UTF-8 with BOM)"}}


class _Answer(BaseModel):
    """Built by the archive: a key added there is passed on, not filtered out."""

    model_config = ConfigDict(extra="allow")


class DailyPlan(_Answer):
    id: str
    status: str
    planned: int
    done: int
    missed: int
    open: int
    unplanned: int
    adherence: float | None
    items: list[dict[str, Any]]


class DailyReport(_Answer):
    rep_id: str
    rep_name: str
    date: str
    timezone: str
    visit_count: int = Field(description="Visits that day, void ones left out")
    by_purpose: dict[VisitPurpose, int]
    outcomes: list[dict[str, Any]]
    complaints_handled: list[dict[str, Any]]
    collections: list[dict[str, Any]]
    competitor_news: list[dict[str, Any]]
    customer_news: list[dict[str, Any]]
    plan: DailyPlan | None = Field(description="null when the rep made no plan for the day")
    manager_comments: list[dict[str, Any]]
    visits: list[dict[str, Any]]


class WeeklyFigures(_Answer):
    new_customers: int = Field(description="developed + claimed that week")
    developed: int
    claimed: int
    visits: int
    effective_visits: int = Field(description="approved and not disputed on call-back")
    effective_rate: float | None = Field(description="effective_visits / visits")
    order_visits: int
    collection_visits: int
    disputed_visits: int
    abnormal_customers: int


class WeeklyRep(WeeklyFigures):
    rep_id: str
    rep_name: str


class Abnormal(_Answer):
    customer_id: str
    card_no: str
    customer: str
    rep_id: str
    rep_name: str
    reason: Literal["nearing_pool_return", "disputed_visit", "complaint_without_follow_up"]
    detail: str


class WeeklyReport(_Answer):
    team: str
    week: str
    timezone: str
    reps: list[WeeklyRep]
    total: WeeklyFigures
    new_customers: list[dict[str, Any]]
    abnormal: list[Abnormal]


def _csv(text: str, name: str) -> Response:
    return Response(text.encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


@router.get("/reports/daily", response_model=DailyReport, responses=_CSV)
async def daily_report(
    who: Annotated[StaffMember, require("report.read")], archive: ArchiveDep,
    rep: Annotated[str, Query(min_length=1, max_length=200, description="Rep id or name")],
    date: Annotated[str, Query(pattern=r"^\d{4}-\d{2}-\d{2}$",
                               description="YYYY-MM-DD in the company's time zone")],
    format: Format = "json",
) -> Any:
    """A rep's day: visits by purpose, outcomes, complaints handled, collections,
    competitor and customer news, plan adherence, the managers' comments."""
    if format == "csv":
        text, _ = await run_in_threadpool(archive.export_report, "daily", rep, date, who.name)
        return _csv(text, f"daily-{date}")
    return await run_in_threadpool(archive.daily_report, rep, date, who.name)


@router.get("/reports/weekly", response_model=WeeklyReport, responses=_CSV)
async def weekly_report(
    who: Annotated[StaffMember, require("report.read")], archive: ArchiveDep,
    team: Annotated[str, Query(min_length=1, max_length=200,
                               description="The staff manager whose team")],
    week: Annotated[str, Query(pattern=r"^\d{4}-W\d{2}$", description="ISO week YYYY-Www")],
    format: Format = "json",
) -> Any:
    """A team's week per rep and in total: new customers, effective visit rate, order
    and collection visits, abnormal customers."""
    if format == "csv":
        text, _ = await run_in_threadpool(archive.export_report, "weekly", team, week, who.name)
        return _csv(text, f"weekly-{week}")
    return await run_in_threadpool(archive.weekly_report, team, week, who.name)
