"""The hash-chained audit log."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from schema.output import (
    cli_app,
    emit_json,
    show_rows,
)

from .common import (
    ArchiveOpt,
    DataOpt,
    JsonOpt,
    LimitOpt,
    app,
    archive_at,
)

if TYPE_CHECKING:
    pass


audit_app = cli_app(help="The hash-chained audit log.")
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(data: DataOpt, as_json: JsonOpt = False, archive_url: ArchiveOpt = None) -> None:
    """Check the whole chain; exit 1 naming the first broken entry."""
    verdict = archive_at(data, archive_url).audit_verify()
    out = {"ok": verdict.ok, "entries": verdict.entries, "first_broken": verdict.first_broken,
           "problem": verdict.problem}
    if as_json:
        emit_json(out)
    elif verdict.ok:
        typer.echo(f"audit chain intact: {verdict.entries} entries")
    if not verdict.ok:
        if not as_json:
            typer.echo(f"error: audit entry {verdict.first_broken} is broken: {verdict.problem}",
                       err=True)
        raise typer.Exit(1)


@audit_app.command("list")
def audit_list(
    data: DataOpt,
    limit: LimitOpt = None,
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """The audit entries, oldest first; with --limit N (or in a table) the most recent N."""
    archive = archive_at(data, archive_url)
    show_rows(archive.audit_entries, archive.audit_count, as_json=as_json, limit=limit,
              columns=["seq", "at", "actor", "action", "subject", "details"],
              noun="audit entries (the most recent)")

