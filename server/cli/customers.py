"""Customer cards (客户卡)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from schema.fields import CUSTOMER_EDITABLE_FIELDS
from schema.output import (
    field_args,
    show,
    show_rows,
)

from .common import (
    EXTRA,
    FIELDS_HELP,
    ArchiveOpt,
    DataOpt,
    JsonOpt,
    LimitOpt,
    archive_at,
    call,
    customer_app,
    export,
)

if TYPE_CHECKING:
    pass


@customer_app.command("add", context_settings=EXTRA, help="Add a customer card. " + FIELDS_HELP)
def customer_add(
    ctx: typer.Context,
    data: DataOpt,
    name: Annotated[str, typer.Option("--name", help="Person or company name.")],
    owner: Annotated[str | None, typer.Option(help="Owning rep; omit for the pool.")] = None,
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    from schema.models import CustomerCreate

    fields = field_args(ctx.args, CUSTOMER_EDITABLE_FIELDS)
    card = call(CustomerCreate.model_validate, {**fields, "name": name})
    show(call(archive_at(data, archive_url).add_customer, card, owner, "admin"), as_json)


@customer_app.command("import")
def customer_import(
    file: Annotated[Path, typer.Argument(help="CSV with a header of card field names "
                                         "(and optionally `owner`).")],
    data: DataOpt,
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """Import customers from CSV; one bad row imports nothing."""
    count = call(archive_at(data, archive_url).import_csv, file)
    show({"imported": count}, as_json)


@customer_app.command("list")
def customer_list(
    data: DataOpt,
    owner: Annotated[str | None, typer.Option(help="Rep id/name, or `pool`.")] = None,
    limit: LimitOpt = None,
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """List customer cards."""
    archive = archive_at(data, archive_url)
    call(archive.count_customers, owner)  # an unknown --owner fails before anything is printed
    export(archive, "customers", {"owner": owner}, lambda: show_rows(
        lambda n: archive.iter_customers(owner, n), lambda: archive.count_customers(owner),
        as_json=as_json, limit=limit, noun="customers",
        columns=["card_no", "id", "name", "grade", "owner_rep_id", "rev", "last_served_at"]))


@customer_app.command("show")
def customer_show(
    customer: Annotated[str, typer.Argument(help="Customer id or card number.")],
    data: DataOpt,
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """Show one card with its ownership history."""
    archive = archive_at(data, archive_url)
    card = call(archive.get_customer, customer)
    card["ownership_history"] = archive.ownership_history(card["id"])
    show(card, as_json)


@customer_app.command("edit", context_settings=EXTRA, help="Office edit of a card. " + FIELDS_HELP)
def customer_edit(
    ctx: typer.Context,
    customer: Annotated[str, typer.Argument(help="Customer id or card number.")],
    data: DataOpt,
    by: Annotated[str, typer.Option(help="Who makes the edit, for the history.")] = "office",
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    from schema.models import CustomerPatch

    patch = call(CustomerPatch.model_validate, field_args(ctx.args, CUSTOMER_EDITABLE_FIELDS))
    show(call(archive_at(data, archive_url).edit_customer, customer, patch, by), as_json)


@customer_app.command("assign")
def customer_assign(
    customer: Annotated[str, typer.Argument(help="Customer id or card number.")],
    rep: Annotated[str, typer.Argument(help="New owner (rep id or name), or `pool`.")],
    data: DataOpt,
    reason: Annotated[str, typer.Option(help="Why, for the ownership history.")] = "reassigned",
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """Give a customer to another rep or return it to the pool (公海)."""
    row = call(archive_at(data, archive_url).assign, customer, None if rep == "pool" else rep,
               reason, "admin")
    show(row, as_json)

