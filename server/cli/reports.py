"""Reports: a rep's daily report (每日销售报告) and a team's weekly progress; CSV exports
are for admins and for managers (their own team only) and recorded in the audit chain."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from schema.output import cli_app, emit_json, fail, show, table

from .common import ArchiveOpt, DataOpt, JsonOpt, app, archive_at, call

if TYPE_CHECKING:
    from ..rules import Archive

report_app = cli_app(help="Daily report per rep, weekly progress per team.")
app.add_typer(report_app, name="report")

ByOpt = Annotated[str | None, typer.Option(
    "--by", help="The staff user asking (a manager: their team only; --csv needs "
    "report.export) [default: the server's admin]", show_default=False)]
CsvOpt = Annotated[Path | None, typer.Option(
    "--csv", help="Write the report as CSV (UTF-8 with BOM, for Excel) to FILE; "
    "admins, or a manager for their team; recorded in the audit log.", show_default=False)]


@report_app.command("daily")
def report_daily(
    data: DataOpt,
    rep: Annotated[str, typer.Option(help="The rep (id or name).")],
    date: Annotated[str, typer.Option("--date", help="The day, YYYY-MM-DD (company time zone).")],
    by: ByOpt = None,
    csv_file: CsvOpt = None,
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """A rep's day: visits by purpose, outcomes, complaints, collections, news, plan, comments."""
    archive = archive_at(data, archive_url)
    if csv_file is not None:
        _export(archive, csv_file, as_json, "daily", rep, date, by)
        return
    report = call(archive.daily_report, rep, date, by)
    if as_json:
        emit_json(report)
        return
    plan = report["plan"] or {}
    show({"rep": report["rep_name"], "date": report["date"], "timezone": report["timezone"],
          "visits": report["visit_count"],
          **{f"  {p}": n for p, n in report["by_purpose"].items() if n},
          "plan": plan.get("status", "none"), "adherence": plan.get("adherence")}, False)
    _section(report["visits"], ["time", "card_no", "customer", "purpose", "status", "planned",
                                "outcome"], "visits")
    for key, column in (("competitor_news", "competitors"), ("customer_news", "feedback")):
        _section(report[key], ["time", "customer", column], key.replace("_", " "))
    if plan:
        _section([i for i in plan["items"] if i["result"] != "done"],
                 ["time", "card_no", "customer", "purpose", "result"], "planned, not visited")
    _section(report["manager_comments"], ["on", "customer", "by", "status", "comment"],
             "manager comments")


@report_app.command("weekly")
def report_weekly(
    data: DataOpt,
    team: Annotated[str, typer.Option(help="The staff manager whose team (reps under them).")],
    week: Annotated[str, typer.Option(help="ISO week, YYYY-Www (company time zone).")],
    by: ByOpt = None,
    csv_file: CsvOpt = None,
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """A team's week per rep: new customers, effective visit rate, orders, collections,
    abnormal customers."""
    archive = archive_at(data, archive_url)
    if csv_file is not None:
        _export(archive, csv_file, as_json, "weekly", team, week, by)
        return
    report = call(archive.weekly_report, team, week, by)
    if as_json:
        emit_json(report)
        return
    columns = ["rep_name", "new_customers", "visits", "effective_rate", "order_visits",
               "collection_visits", "disputed_visits", "abnormal_customers"]
    table([*report["reps"], {**report["total"], "rep_name": "total"}], columns,
          title=f"{report['team']} {report['week']} ({report['from']} to {report['to']}, "
                f"{report['timezone']})")
    _section(report["abnormal"], ["rep_name", "card_no", "customer", "reason", "detail"],
             "abnormal customers")


def _section(rows: list[dict[str, Any]], columns: list[str], title: str) -> None:
    if rows:
        table(rows, columns, title=title)


def _export(archive: Archive, path: Path, as_json: bool, *report: str | None) -> None:
    """Write a report as CSV for the owner only (it holds customer names and what they
    said). A path that cannot be written is refused before the archive records the
    export as done."""
    folder = path.parent
    if path.is_dir() or not folder.is_dir() or not os.access(folder, os.W_OK):
        fail(f"cannot write --csv {path}: give a file in a folder you can write")
    text, count = call(archive.export_report, *report)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(text.encode("utf-8"))
    except OSError as exc:
        fail(f"cannot write --csv {path}: {exc.strerror}")
    show({"file": str(path), "rows": count}, as_json)
