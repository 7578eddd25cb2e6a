"""The pool (公海): its policy, what is in it, and the owners warned of returns."""

from __future__ import annotations

from typing import Annotated

import typer

from schema.output import cli_app, fail, field_args, show, show_rows

from .common import EXTRA, ArchiveOpt, DataOpt, JsonOpt, LimitOpt, app, archive_at, call, export

pool_app = cli_app(help="The pool (公海): customers nobody serves, for reps to claim.")
policy_app = cli_app(help="The pool's rules: returns, warnings, claim caps.")
app.add_typer(pool_app, name="pool")
pool_app.add_typer(policy_app, name="policy")


@policy_app.command("show")
def policy_show(data: DataOpt, as_json: JsonOpt = False, archive_url: ArchiveOpt = None) -> None:
    """The pool's rules in force (days are whole days)."""
    show(call(archive_at(data, archive_url).pool_policy), as_json)


@policy_app.command("set", context_settings=EXTRA)
def policy_set(
    ctx: typer.Context,
    data: DataOpt,
    by: Annotated[str, typer.Option("--by", help="The admin making the change (audited).")],
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """Change settings, each as --setting N: --return-days-a/-b/-c, --warn-days,
    --grace-days, --claims-per-day, --cap-senior/-mid/-junior, --reclaim-cooldown-days.
    One bad value changes nothing."""
    from dataclasses import fields

    from ..rules.policies import PoolPolicy

    given = field_args(ctx.args, [f.name for f in fields(PoolPolicy)])
    if not given:
        fail("name at least one setting, e.g. --return-days-a 60 (see `pool policy show`)")
    changes = {}
    for name, text in given.items():
        if not text.isascii() or not text.isdigit():
            fail(f"--{name.replace('_', '-')} must be a whole number of 0 or more, not {text!r}")
        changes[name] = int(text)
    show(call(archive_at(data, archive_url).set_pool_policy, changes, by), as_json)


@pool_app.command("list")
def pool_list(
    data: DataOpt,
    search: Annotated[str, typer.Option(help="Part of a name, industry or area, or a card "
                                        "number.")] = "",
    limit: LimitOpt = None,
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """Customers in the pool, with what reps see of them and since when."""
    archive = archive_at(data, archive_url)
    export(archive, "pool", {"search": search or None}, lambda: show_rows(
        lambda n: call(archive.pool_entries, search, n), lambda: archive.count_pool(search),
        as_json=as_json, limit=limit, noun="pool customers",
        columns=["card_no", "name", "industry", "area", "grade", "in_pool_since"]))


@pool_app.command("warnings")
def pool_warnings(
    data: DataOpt,
    rep: Annotated[str | None, typer.Option(help="Only this rep's customers.")] = None,
    limit: LimitOpt = None,
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """Customers whose owner was warned they go back to the pool soon (a visit since
    clears the warning), soonest first."""
    rows = call(archive_at(data, archive_url).pool_warnings, rep)
    show_rows(lambda n: rows[:n] if n else rows, lambda: len(rows), as_json=as_json,
              limit=limit, noun="warnings",
              columns=["card_no", "name", "grade", "rep_name", "last_served_at", "due_at",
                       "returns_at"])
