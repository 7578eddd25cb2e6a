"""Daily visit plans (每日拜访计划): list, show (with plan against actual), approve, return."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from schema.output import cli_app, emit_json, show, show_rows, table

from .common import ArchiveOpt, DataOpt, JsonOpt, LimitOpt, app, archive_at, call

plan_app = cli_app(help="Daily visit plans (每日拜访计划): the manager approves or returns them.")
app.add_typer(plan_app, name="plan")

ByOpt = Annotated[str | None, typer.Option(
    "--by", help="The staff user acting (a manager sees their team only) "
    "[default: the server's admin]", show_default=False)]
ActingBy = Annotated[str, typer.Option("--by", help="The staff user acting (manager: team only).")]
PlanId = Annotated[str, typer.Argument(help="The plan's id, REP_ID:YYYY-MM-DD.")]


@plan_app.command("list")
def plan_list(
    data: DataOpt,
    manager: Annotated[str | None, typer.Option(
        help="Only the team of this staff manager (the reps under them).")] = None,
    status: Annotated[str | None, typer.Option(help="submitted, approved or returned.")] = None,
    date: Annotated[str | None, typer.Option("--date", help="Only this day, YYYY-MM-DD.")] = None,
    rep: Annotated[str | None, typer.Option(help="Only this rep (id or name).")] = None,
    by: ByOpt = None,
    limit: LimitOpt = None,
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """List daily plans, newest day first."""
    rows: list[dict[str, Any]] = call(archive_at(data, archive_url).list_plans, by, manager,
                                      status, date, rep)
    show_rows(lambda n: rows[:n] if n is not None else rows, lambda: len(rows), as_json=as_json,
              limit=limit, noun="plans", columns=["id", "rep_name", "day", "status", "planned",
                                                  "rev", "submitted_at", "reviewed_by", "comment"])


@plan_app.command("show")
def plan_show(
    data: DataOpt,
    plan_id: Annotated[str | None, typer.Argument(
        help="The plan's id, REP_ID:YYYY-MM-DD (or give --rep and --date).")] = None,
    rep: Annotated[str | None, typer.Option(help="The rep (id or name).")] = None,
    date: Annotated[str | None, typer.Option("--date", help="The day, YYYY-MM-DD.")] = None,
    by: ByOpt = None,
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """One plan, each item done, missed or open, and the day's unplanned visits."""
    plan = call(archive_at(data, archive_url).show_plan, plan_id, by, rep, date)
    if as_json:
        emit_json(plan)
        return
    actual = plan["actual"]
    show({k: plan[k] for k in ("id", "rep_name", "day", "timezone", "status", "rev", "comment",
                               "reviewed_by")}
         | {k: actual[k] for k in ("planned", "done", "missed", "open", "unplanned", "adherence")},
         False)
    table(plan["items"], ["time", "card_no", "customer", "area", "purpose", "result", "visited_at"],
          title="planned")
    if actual["unplanned_visits"]:
        table(actual["unplanned_visits"], ["time", "card_no", "customer", "purpose"],
              title="unplanned")


@plan_app.command("approve")
def plan_approve(
    data: DataOpt,
    plan_id: PlanId,
    by: ActingBy,
    comment: Annotated[str, typer.Option(help="A comment the rep sees.")] = "",
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """Approve a submitted plan; the rep's laptop sees it at its next sync."""
    _show_plan(call(archive_at(data, archive_url).approve_plan, plan_id, by, comment), as_json)


@plan_app.command("return")
def plan_return(
    data: DataOpt,
    plan_id: PlanId,
    by: ActingBy,
    comment: Annotated[str, typer.Option(help="What the rep should change.")],
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """Return a plan to the rep with a comment; they change it and submit it again."""
    _show_plan(call(archive_at(data, archive_url).return_plan, plan_id, by, comment), as_json)


def _show_plan(plan: dict[str, Any], as_json: bool) -> None:
    show(plan if as_json else {k: v for k, v in plan.items() if k != "items"}
         | {"planned": len(plan["items"])}, as_json)
