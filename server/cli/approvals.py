"""Visit review (拜访记录审核): the approvals queue, approving or returning a visit, and
the disputes that call-backs found, for the rep's manager."""

from __future__ import annotations

from typing import Annotated

import typer

from schema.output import show, show_rows

from .common import ArchiveOpt, DataOpt, JsonOpt, LimitOpt, app, archive_at, call, visit_app

ByOpt = Annotated[str, typer.Option("--by", help="The staff user acting (see `user list`).")]
AsOpt = Annotated[str | None, typer.Option(
    "--by", help="List as this staff user (a manager sees their team) [default: the "
    "archive's administrator]", show_default=False)]
ManagerOpt = Annotated[str | None, typer.Option(
    "--manager", help="Only this manager's team (a manager's staff account).")]
VisitArg = Annotated[str, typer.Argument(help="The visit's id.")]
COLUMNS = ["id", "rep_name", "customer_name", "card_no", "started_at", "purpose", "summary"]


@app.command()
def approvals(data: DataOpt, manager: ManagerOpt = None, by: AsOpt = None,
              limit: LimitOpt = None, as_json: JsonOpt = False,
              archive_url: ArchiveOpt = None) -> None:
    """Submitted visits waiting for review, oldest first."""
    archive = archive_at(data, archive_url)
    rows = call(archive.approvals, by, manager)
    show_rows(lambda n: rows[:n] if n else rows, lambda: len(rows), as_json=as_json, limit=limit,
              noun="visits waiting for review", columns=COLUMNS)


@visit_app.command("approve")
def visit_approve(
    data: DataOpt, visit_id: VisitArg, by: ByOpt,
    comment: Annotated[str, typer.Option("--comment", help="Optional note to the rep.")] = "",
    as_json: JsonOpt = False, archive_url: ArchiveOpt = None,
) -> None:
    """Approve a submitted visit: read-only for the rep from now on."""
    show(call(archive_at(data, archive_url).approve_visit, visit_id, by, comment), as_json)


@visit_app.command("return")
def visit_return(
    data: DataOpt, visit_id: VisitArg, by: ByOpt,
    comment: Annotated[str, typer.Option("--comment", help="What the rep must fix (required).")],
    as_json: JsonOpt = False, archive_url: ArchiveOpt = None,
) -> None:
    """Return a submitted visit to its author with a comment; their correction resubmits it."""
    show(call(archive_at(data, archive_url).return_visit, visit_id, by, comment), as_json)


@app.command()
def disputes(data: DataOpt, manager: ManagerOpt = None, by: AsOpt = None,
             limit: LimitOpt = None, as_json: JsonOpt = False,
             archive_url: ArchiveOpt = None) -> None:
    """Visits whose call-back was disputed, for the rep's manager."""
    archive = archive_at(data, archive_url)
    rows = call(archive.disputes, by, manager)
    show_rows(lambda n: rows[:n] if n else rows, lambda: len(rows), as_json=as_json, limit=limit,
              noun="disputed visits",
              columns=[*COLUMNS[:6], "callback_note", "callback_by", "callback_at"])
