"""Visit records (拜访记录)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from schema.output import (
    show_rows,
)

from .common import (
    ArchiveOpt,
    DataOpt,
    JsonOpt,
    LimitOpt,
    archive_at,
    call,
    export,
    visit_app,
)

if TYPE_CHECKING:
    pass


@visit_app.command("list")
def visit_list(
    data: DataOpt,
    rep: Annotated[str | None, typer.Option(help="Author rep id or name.")] = None,
    customer: Annotated[str | None, typer.Option(help="Customer id or card number.")] = None,
    limit: LimitOpt = None,
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """List visit records in the archive, oldest first."""
    archive = archive_at(data, archive_url)
    call(archive.count_visits, rep, customer)  # unknown --rep/--customer fail up front
    export(archive, "visits", {"rep": rep, "customer": customer}, lambda: show_rows(
        lambda n: archive.iter_visits(rep, customer, n), lambda: archive.count_visits(rep, customer),
        as_json=as_json, limit=limit, noun="visits",
        columns=["id", "customer_id", "rep_id", "started_at", "purpose", "status", "summary"]))

