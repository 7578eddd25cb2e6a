"""`fieldvault plan`: the daily visit plan (每日拜访计划), made offline and submitted
to the manager through the outbox like every other change (agent/plans.py)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from schema.enums import VisitPurpose
from schema.output import cli_app, emit_json, show, table

from .cli_base import HomeOpt, JsonOpt, vault

plan_app = cli_app(help="Your daily visit plans (每日拜访计划).")

DateOpt = Annotated[str, typer.Option("--date", help="The day, YYYY-MM-DD.")]
CustomerOpt = Annotated[str, typer.Option("--customer", help="Customer id (or its first or "
                                          "last digits) or card number (it must be on "
                                          "this laptop).")]
ITEM_COLUMNS = ["time", "customer", "purpose", "result"]


def _print(plan: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(plan)
        return
    show({k: v for k, v in plan.items() if k not in ("items", "actual")}, False)
    if plan["items"]:
        table(plan["items"], ITEM_COLUMNS)
    else:
        typer.echo("nothing planned yet: `fieldvault plan add --date "
                   f"{plan['day']} --customer C --purpose P`")
    actual = plan.get("actual")
    if actual:
        typer.echo("plan vs actual: " + ", ".join(f"{len(v)} {k}" for k, v in actual.items()))
        for visit in actual["unplanned"]:
            typer.echo(f"  unplanned: {visit['customer']} at {visit['time']} "
                       f"({visit['purpose']})")


@plan_app.command("add")
def plan_add(
    home: HomeOpt, date: DateOpt, customer: CustomerOpt,
    purpose: Annotated[VisitPurpose, typer.Option(help="Why you will go.")],
    time: Annotated[str | None, typer.Option("--time", help="HH:MM, if set.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Plan a visit to one of your customers on a day (again: change its purpose or
    time). Works offline; `plan submit` sends the day's plan to your manager."""
    with vault(home) as store:
        _print(store.plan_add(date, customer, purpose.value, time), as_json)


@plan_app.command("remove")
def plan_remove(home: HomeOpt, date: DateOpt, customer: CustomerOpt,
                as_json: JsonOpt = False) -> None:
    """Take a customer off a day's plan."""
    with vault(home) as store:
        _print(store.plan_remove(date, customer), as_json)


@plan_app.command("show")
def plan_show(
    home: HomeOpt,
    date: Annotated[str | None, typer.Option("--date", help="The day, YYYY-MM-DD "
                                             "[default: today]", show_default=False)] = None,
    as_json: JsonOpt = False,
) -> None:
    """A day's plan: its items, whether it was submitted, approved or returned (with
    your manager's comment), and once the day has begun, plan against what you logged:
    done, missed (open while the day lasts) and unplanned visits."""
    with vault(home) as store:
        _print(store.plan_show(date), as_json)


@plan_app.command("submit")
def plan_submit(home: HomeOpt, date: DateOpt, as_json: JsonOpt = False) -> None:
    """Submit a day's plan to your manager (again after a return); it goes up at the
    next `fieldvault sync`."""
    with vault(home) as store:
        _print(store.plan_submit(date), as_json)
