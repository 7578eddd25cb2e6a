"""`fieldvault pool`: browse the pool (公海) and claim a customer, online only
(agent/pool.py). Offline, each command says it needs the network and exits 2."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from schema.output import cli_app, emit_json, fail, show, table

from .cli_base import EXIT_OFFLINE, HomeOpt, JsonOpt, config_of, vault

pool_app = cli_app(help="The pool (公海) of customers nobody serves: browse and claim, online.")

POOL_COLUMNS = ["card_no", "id", "name", "industry", "area", "grade", "in_pool_since"]


@contextmanager
def _online(what: str) -> Iterator[None]:
    """A pool command's failures, each as one line: offline, or the server's own
    message (for a refused claim: which cap, and when it frees up)."""
    from .transport import Offline, ServerRefused, UntrustedResponse

    try:
        yield
    except Offline as exc:
        fail(f"{what} needs the network ({exc}): try again when you are online",
             EXIT_OFFLINE)
    except ServerRefused as exc:
        fail(exc.message)
    except UntrustedResponse as exc:
        fail(str(exc))


@pool_app.command("list")
def pool_list(
    home: HomeOpt,
    search: Annotated[str | None, typer.Option(help="Names, industries, areas.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="Show at most N.")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="Skip the first N.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Customers in the pool you could claim: name, industry, area and grade only
    (phones, notes and history arrive once you have claimed one)."""
    from . import service

    with _online("browsing the pool"):
        page = service.pool_browse(home, config_of(home), search, limit, offset)
    if as_json:
        emit_json(page)
        return
    table(page["customers"], POOL_COLUMNS)
    typer.echo(f"showing {len(page['customers'])} of {page['total']}; claims left today: "
               f"{page['claims_left_today']}; you own {page['owned']} of {page['owned_cap']}")


@pool_app.command("claim")
def pool_claim(
    customer: Annotated[str, typer.Argument(help="Customer id or card number, from "
                                            "`fieldvault pool list`.")],
    home: HomeOpt, as_json: JsonOpt = False,
) -> None:
    """Claim a customer from the pool; its full card and history then come down."""
    from . import service

    config = config_of(home)
    with vault(home) as store:  # opened first: a vault that will not open claims nothing
        with _online("claiming from the pool"):
            out = service.pool_claim(home, config, store, customer)
    if "bring_down_failed" in out:
        fail(f"claimed {out['card_no']} {out['name']}, but its card did not come down "
             f"({out['bring_down_failed']}): run `fieldvault sync`", EXIT_OFFLINE)
    if as_json:
        emit_json(out)
        return
    show(out, False)
