"""Departures: revoke, the departure report."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from schema.output import (
    emit_json,
    fail,
    show,
)

from .common import (
    ArchiveOpt,
    DataOpt,
    JsonOpt,
    app,
    archive_at,
    call,
)

if TYPE_CHECKING:
    pass


@app.command()
def revoke(
    rep: Annotated[str, typer.Argument(help="Departing rep (id or name).")],
    data: DataOpt,
    reason: Annotated[str, typer.Option("--reason", help="Why, for the record.")],
    reassign_to: Annotated[str, typer.Option(
        help="Successor rep, `manager`, `team` (round-robin, grade A to seniors) or `pool`.")]
        = "pool",
    effective_at: Annotated[str | None, typer.Option(
        help="ISO time the departure takes effect; default now.")] = None,
    by: Annotated[str, typer.Option(help="Who orders it, for the audit log.")] = "hr",
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """HR: revoke a departing rep. Devices are refused and wiped, customers reassigned,
    visits kept."""
    from schema.clock import parse_iso

    if effective_at:
        try:
            parse_iso(effective_at)
        except ValueError:
            fail(f"--effective-at {effective_at!r} is not an ISO time like 2026-12-01T09:00:00Z")
    out = call(archive_at(data, archive_url).revoke, rep, reason, reassign_to, effective_at, by, "cli")
    show(out, as_json)


@app.command("departure-report")
def departure_report(
    rep: Annotated[str, typer.Argument(help="Revoked rep (id or name).")],
    data: DataOpt, as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """HR: when and by whom, wipe status of each device, customers reassigned, visits kept."""
    report = call(archive_at(data, archive_url).departure_report, rep)
    if as_json:
        emit_json(report)
        return
    show({**report["rep"], **{k: v for k, v in report["revocation"].items() if k != "id"},
          "visits_preserved": report["visits_preserved"], "quarantined": report["quarantined"],
          "wipe_receipt": report["wipe_receipt"]}, False)
    from schema.output import table

    table(report["devices"], ["id", "name", "state", "last_seen_at", "wipe_ordered_at",
                              "wipe_receipt_at"], "devices")
    table(report["customers"], ["card_no", "name", "to_name"], "customers reassigned")

