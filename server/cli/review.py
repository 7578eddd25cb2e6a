"""What waits for a person: conflicts and quarantined operations, and deciding them.

`fieldvault-server conflicts` and `fieldvault-server quarantine` alone list, as they
always did; `conflicts resolve`, `quarantine accept|reject` decide (the person named by
--by must be allowed to: rules/access.py).
"""

from __future__ import annotations

from typing import Annotated

import typer

from schema.output import show, show_rows

from .common import ArchiveOpt, DataOpt, JsonOpt, LimitOpt, app, archive_at, call


def _listing_group(help_text: str) -> typer.Typer:
    # Not cli_app: without a subcommand the group lists (no_args_is_help would not).
    return typer.Typer(help=help_text, invoke_without_command=True, no_args_is_help=False,
                       rich_markup_mode=None, pretty_exceptions_enable=False)


ByOpt = Annotated[str, typer.Option("--by", help="The staff user deciding (see `user list`).")]
conflicts_app = _listing_group("Card fields where a rep's edit lost to a newer server value "
                               "(the rep's value is kept here); `conflicts resolve` closes one.")
quarantine_app = _listing_group("Operations held for review instead of being merged (e.g. visits "
                                "to reassigned customers, a revoked laptop's last work).")
app.add_typer(conflicts_app, name="conflicts")
app.add_typer(quarantine_app, name="quarantine")


@conflicts_app.callback()
def conflicts(ctx: typer.Context, data: DataOpt, limit: LimitOpt = None, as_json: JsonOpt = False,
              archive_url: ArchiveOpt = None) -> None:
    """Card fields where a rep's edit lost to a newer server value (the rep's value is kept here)."""
    if ctx.invoked_subcommand is not None:
        return
    archive = archive_at(data, archive_url)
    show_rows(archive.conflicts, lambda: archive.counts()["conflicts"], as_json=as_json,
              limit=limit, noun="conflicts", columns=["id", "card_no", "customer_name", "field",
                                                      "server_value", "rep_value", "rep_id", "at",
                                                      "resolution"])


@conflicts_app.command("resolve")
def conflicts_resolve(
    data: DataOpt,
    conflict_id: Annotated[int, typer.Argument(help="The conflict's id (see `conflicts`).")],
    keep: Annotated[str, typer.Option("--keep", help="server or rep: the value to keep.")],
    by: ByOpt,
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """Close a conflict: the kept value becomes a new revision of the card."""
    show(call(archive_at(data, archive_url).resolve_conflict, conflict_id, keep, by), as_json)


@quarantine_app.callback()
def quarantine(ctx: typer.Context, data: DataOpt, limit: LimitOpt = None, as_json: JsonOpt = False,
               archive_url: ArchiveOpt = None) -> None:
    """Operations held for review instead of being merged (e.g. visits to reassigned customers)."""
    if ctx.invoked_subcommand is not None:
        return
    archive = archive_at(data, archive_url)
    show_rows(archive.quarantine, lambda: archive.counts()["quarantine"], as_json=as_json,
              limit=limit, noun="quarantined operations",
              columns=["id", "kind", "entity_id", "rep_id", "reason", "at", "decision"])


@quarantine_app.command("accept")
def quarantine_accept(
    data: DataOpt,
    held_id: Annotated[int, typer.Argument(help="The held operation's id (see `quarantine`).")],
    by: ByOpt,
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """Apply a held operation as if it had arrived in time (its author and times kept)."""
    held = call(archive_at(data, archive_url).accept_quarantined, held_id, by)
    show({k: v for k, v in held.items() if k != "payload"} if not as_json else held, as_json)


@quarantine_app.command("reject")
def quarantine_reject(
    data: DataOpt,
    held_id: Annotated[int, typer.Argument(help="The held operation's id (see `quarantine`).")],
    by: ByOpt,
    reason: Annotated[str, typer.Option("--reason", help="Why it is not applied (kept with it).")],
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """Keep a held operation unapplied, marked with the reason (nothing is deleted)."""
    held = call(archive_at(data, archive_url).reject_quarantined, held_id, by, reason)
    show({k: v for k, v in held.items() if k != "payload"} if not as_json else held, as_json)
