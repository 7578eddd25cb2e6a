"""Reps and their enrollment codes."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from schema.durations import parse_duration
from schema.output import (
    fail,
    show,
    show_rows,
)

from .common import (
    ArchiveOpt,
    DataOpt,
    JsonOpt,
    LimitOpt,
    app,
    archive_at,
    call,
    rep_app,
)

if TYPE_CHECKING:
    pass


@rep_app.command("add")
def rep_add(
    data: DataOpt,
    name: Annotated[str, typer.Option("--name", help="Rep's display name.")],
    manager: Annotated[str | None, typer.Option(help="Manager rep (id or name).")] = None,
    tier: Annotated[str, typer.Option(help="senior, mid or junior.")] = "mid",
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """Add a sales rep."""
    rep = call(archive_at(data, archive_url).add_rep, name, manager, tier)
    show(rep, as_json)


@rep_app.command("list")
def rep_list(data: DataOpt, limit: LimitOpt = None, as_json: JsonOpt = False,
             archive_url: ArchiveOpt = None) -> None:
    """List reps with their customer and device counts."""
    archive = archive_at(data, archive_url)
    show_rows(archive.list_reps, lambda: archive.counts()["reps"], as_json=as_json, limit=limit,
              columns=["id", "name", "tier", "manager_id", "customers", "devices", "active"],
              noun="reps")


@app.command("enroll-code")
def enroll_code(
    rep: Annotated[str, typer.Argument(help="Rep id or name.")],
    data: DataOpt,
    ttl: Annotated[str, typer.Option(help="How long the code stays valid, e.g. 30m, 24h.")] = "24h",
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """Create a one-time enrollment code for a rep's laptop."""
    try:
        lifetime: timedelta = parse_duration(ttl)
    except ValueError as exc:
        fail(str(exc))
    code, expires = call(archive_at(data, archive_url).create_enroll_code, rep, lifetime)
    show({"id": code, "code": code, "rep": rep, "expires_at": expires}, as_json)

