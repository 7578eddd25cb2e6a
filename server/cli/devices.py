"""Enrolled devices."""

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
    device_app,
)

if TYPE_CHECKING:
    pass


@device_app.command("list")
def device_list(
    data: DataOpt,
    rep: Annotated[str | None, typer.Option(help="Only this rep's devices.")] = None,
    limit: LimitOpt = None,
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """List enrolled devices."""
    archive = archive_at(data, archive_url)
    call(archive.list_devices, rep, 0)  # an unknown --rep fails before anything is printed
    show_rows(lambda n: archive.list_devices(rep, n), lambda: len(archive.list_devices(rep)),
              as_json=as_json, limit=limit, noun="devices",
              columns=["id", "rep_name", "name", "state", "last_seen_at", "revoked_at",
                       "wipe_receipt_at"])

