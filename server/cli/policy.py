"""The offline grace policy and HR tokens."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from schema.output import (
    cli_app,
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


policy_app = cli_app(help="Offline grace policy, delivered in leases; the company's time zone.")
app.add_typer(policy_app, name="policy")


@policy_app.command("set")
def policy_set(
    data: DataOpt,
    offline_block_hours: Annotated[float | None, typer.Option(
        help="Hours offline before a laptop locks its vault (default 72).")] = None,
    offline_wipe_days: Annotated[float | None, typer.Option(
        help="Days offline before a laptop wipes its vault (default 30).")] = None,
    require_pin: Annotated[bool | None, typer.Option(
        "--require-pin/--no-require-pin", help="Mix the rep's PIN into the vault key.")] = None,
    timezone: Annotated[str | None, typer.Option(
        help="The company's time zone, an IANA name such as Asia/Shanghai (default UTC): "
             "the calendar days of plans and reports.")] = None,
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """Change the offline grace policy (devices get it with their next lease) or the
    company's time zone."""
    show(call(archive_at(data, archive_url).set_policy, offline_block_hours, offline_wipe_days,
              require_pin, timezone=timezone), as_json)


@policy_app.command("show")
def policy_show(data: DataOpt, as_json: JsonOpt = False, archive_url: ArchiveOpt = None) -> None:
    """The offline grace policy and the company's time zone in force."""
    show(archive_at(data, archive_url).policy(), as_json)


@app.command("hr-token")
def hr_token(
    data: DataOpt,
    name: Annotated[str, typer.Option("--name", help="Which HR system uses the token.")],
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """Create a bearer token for the HR API (shown once; stored hashed)."""
    token = call(archive_at(data, archive_url).create_hr_token, name)
    show({"id": name, "name": name, "token": token}, as_json)

