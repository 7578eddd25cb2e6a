"""Allocating customers: key-account locks and fair distribution (公平分配)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from schema.output import emit_json, fail, show, table

from .common import ArchiveOpt, DataOpt, JsonOpt, archive_at, call, customer_app

ByOpt = Annotated[str, typer.Option("--by", help="The staff user acting (checked, audited).")]


@customer_app.command("lock")
def customer_lock(
    customer: Annotated[str, typer.Argument(help="Customer id or card number.")],
    data: DataOpt,
    by: ByOpt,
    reason: Annotated[str, typer.Option(help="Why, for the ownership history.")] = "key account",
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """Make a key account: it never returns to the pool (a manager: their team's)."""
    show(call(archive_at(data, archive_url).lock_customer, customer, by, reason), as_json)


@customer_app.command("unlock")
def customer_unlock(
    customer: Annotated[str, typer.Argument(help="Customer id or card number.")],
    data: DataOpt,
    by: ByOpt,
    reason: Annotated[str, typer.Option(help="Why, for the ownership history.")]
        = "no longer a key account",
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """The pool's return rules apply to the customer again."""
    show(call(archive_at(data, archive_url).unlock_customer, customer, by, reason), as_json)


@customer_app.command("distribute")
def customer_distribute(
    data: DataOpt,
    file: Annotated[Path | None, typer.Argument(
        help="CSV of new leads (card fields; no owner column).", show_default=False)] = None,
    from_pool: Annotated[bool, typer.Option("--pool", help="Deal the pool's customers.")]
        = False,
    to_team: Annotated[str | None, typer.Option(
        "--to-team", help="A manager (staff user or rep): their active reps.")] = None,
    to_reps: Annotated[str | None, typer.Option(
        "--to-reps", help="Reps by name or id, comma-separated.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan; write nothing.")]
        = False,
    by: Annotated[str | None, typer.Option(
        "--by", help="The staff user acting (a manager: their team only); default: the "
        "archive's administrator.")] = None,
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """Deal customers round-robin: balancing what each rep holds, grade A to senior and
    C to junior reps (B to anyone), skipping reps at their owned cap. Prints the plan
    with the reason for each assignment. A lead that duplicates a card: nothing added."""
    if (file is None) == (not from_pool):
        fail("give either a CSV file of new leads or --pool")
    if (to_team is None) == (to_reps is None):
        fail("give either --to-team MANAGER or --to-reps R1,R2")
    archive = archive_at(data, archive_url)
    leads = None
    if file is not None:
        from ..rules.imports import read_numbered_cards_csv

        numbered = call(read_numbered_cards_csv, file, lambda _: None)
        if any(owner for _, _, owner in numbered):
            fail(f"{file}: distribution chooses the owners; remove the `owner` column")
        leads = [(f"{file.name} line {line}", card) for line, card, _ in numbered]
    reps = [r for r in to_reps.split(",") if r.strip()] if to_reps is not None else None
    out = call(archive.distribute, by, leads, to_team, reps, dry_run)
    if as_json:
        emit_json(out)
        return
    table(out["plan"], ["customer", "name", "grade", "to", "reason"],
          "plan (dry run: nothing written)" if dry_run else "distributed")
    show({"assigned": ", ".join(f"{k} {v}" for k, v in out["assigned"].items()),
          "left_in_pool": out["left_in_pool"],
          "skipped": "; ".join(s["reason"] for s in out["skipped"])}, False)
