"""`fieldvault`: the rep's agent. Works offline; `sync` talks to the server.

Every command is interactive, so start-up time counts: the heavy modules (the
pydantic models, httpx and the sync engine, the vault store) are imported inside
the commands that use them, never here. tests/test_startup.py keeps it so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from schema.clock import SystemClock
from schema.enums import VisitPurpose
from schema.fields import CUSTOMER_EDITABLE_FIELDS, VISIT_EDITABLE_FIELDS
from schema.output import cli_app, emit_json, fail, field_args, run_app, show, show_rows

from . import keystore
from .attention import short_id
from .cli_attachments import attachments_command, inbox_app
from .cli_base import (
    EXTRA,
    HomeOpt,
    JsonOpt,
    LimitOpt,
    config_of,
    pin_of,
    validate,
    vault,
)
from .cli_plan import plan_app
from .cli_pool import pool_app
from .keystore import KeyError_

app = cli_app(add_completion=False,
                  help="FieldVault agent: your customers and visits, offline, encrypted.")
customer_app = cli_app(help="Your customers.")
visit_app = cli_app(help="Your visit records.")
app.add_typer(customer_app, name="customer")
app.add_typer(visit_app, name="visit")
app.add_typer(plan_app, name="plan")
app.add_typer(pool_app, name="pool")
app.add_typer(inbox_app, name="inbox")
app.command("attachments")(attachments_command)

CUSTOMER_COLUMNS = ["card_no", "id", "name", "grade", "phone", "last_served_at"]
VISIT_COLUMNS = ["id", "customer_id", "started_at", "purpose", "status", "rev", "summary"]
ATTENTION_COLUMNS = ["state", "kind", "id", "customer", "at", "reason", "by"]


@app.command()
def enroll(
    home: HomeOpt,
    server: Annotated[str, typer.Option("--server", help="Server URL, e.g. https://fv.example.com")],
    code: Annotated[str, typer.Option("--code", help="One-time code from your admin.")],
    insecure: Annotated[bool, typer.Option("--insecure",
                                           help="Allow plain http:// to a non-loopback host.")] = False,
    name: Annotated[str | None, typer.Option(help="Device name shown to admins.")] = None,
    no_sync: Annotated[bool, typer.Option("--no-sync", help="Skip the first sync that brings "
                                          "your customers down.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Enroll this laptop once, with a code from your admin; then a first sync brings
    your customers and visits down. Exit 2 when enrolled but that sync failed."""
    from .cli_enroll import enroll_command

    enroll_command(home, server, code, insecure, name, no_sync, as_json)


@app.command()
def status(home: HomeOpt, as_json: JsonOpt = False) -> None:
    """What this device holds, its lease deadlines, and what is waiting to sync."""
    from . import service

    config = config_of(home)
    try:
        active = keystore.status(home, SystemClock()).state == "active"
    except KeyError_ as exc:  # a damaged keyring.json
        fail(str(exc))
    if active:
        with vault(home) as store:
            out = service.status(home, config, store)
    else:
        out = service.status(home, config, None)
    lease, groups = out["lease"], out["attention"]
    if as_json:
        emit_json(out)
        return
    show({k: v for k, v in out.items() if k not in ("lease", "needs_attention", "attention")},
         False)
    typer.echo(f"lease: blocks at {lease['block_at']}, wipes at {lease['wipe_at']}"
               + (f" ({lease['reason']})" if lease["reason"] else ""))
    for line in _attention_lines(groups):
        typer.echo(line)


_ATTENTION_NOUNS = {"returned_visits": "returned visit", "refused": "refused change",
                    "returned_plans": "returned plan", "conflicts": "conflict",
                    "pool_warnings": "pool warning"}


def _attention_lines(groups: dict[str, Any]) -> list[str]:
    """What waits for the rep, for `status`: the counts, then the first items of each."""
    counts = groups.get("counts", {})
    summary = [f"{n} {_ATTENTION_NOUNS[k]}{'s' if n != 1 else ''}" for k, n in counts.items() if n]
    if not summary:
        return []
    lines = ["needs attention: " + ", ".join(summary)]
    for key, noun in _ATTENTION_NOUNS.items():
        for item in groups[key]:
            by = f" ({item['by']})" if item.get("by") else ""
            if key == "pool_warnings":
                lines.append(f"  pool: {item['message']}")
            elif key == "refused":
                lines.append(f"  {item['state']}: {item['kind']} {short_id(item['id'])} "
                             f"{item['customer']}: {item['reason']}")
            elif key == "conflicts":
                for f in item["fields"]:
                    lines.append(f"  conflict: {item['customer']} {f['field']}: yours "
                                 f"{f['mine']!r} not kept, the office's {f['kept']!r} stands "
                                 f"(dismiss: `fieldvault customer dismiss-conflict {item['op_id']}`)")
            elif key == "returned_plans":
                lines.append(f"  returned: plan for {item['id']}: {item['reason']}{by}")
            else:
                lines.append(f"  returned: {item['kind']} {short_id(item['id'])} "
                             f"{item['customer']}: {item['reason']}{by}")
        if counts[key] > len(groups[key]):
            lines.append(f"  ... and {counts[key] - len(groups[key])} more {noun}s")
    if counts["returned_visits"] or counts["refused"]:
        lines.append("  see `fieldvault visit list --attention`; a returned visit is "
                     "corrected with `fieldvault visit edit ID`")
    return lines


@app.command()
def sync(home: HomeOpt, as_json: JsonOpt = False) -> None:
    """Send local changes up, bring assignments down. Exit 2 when the server is
    unreachable, 3 when this device was revoked (its local copy is then wiped)."""
    # Usually not reached: agent/cli_main.py runs a plain `fieldvault sync` without
    # typer; this is the same command for `python -m agent.cli` and unusual arguments.
    from .cli_sync import sync_command

    sync_command(home, as_json)


# --- the local web UI -------------------------------------------------------------

PortOpt = Annotated[int, typer.Option("--port", min=0, max=65535,
                                      help="Port on 127.0.0.1 [default: any free port]")]
NoBrowserOpt = Annotated[bool, typer.Option("--no-browser", help="Print the address only.")]


@app.command()
def ui(home: HomeOpt, port: PortOpt = 0, no_browser: NoBrowserOpt = False) -> None:
    """Your customers and visits in the browser, on this laptop only (127.0.0.1).
    Prints one line with the address to open; "Sync now" syncs in the background."""
    from .ui.serve import serve

    serve(home, config_of(home), port, not no_browser, auto=False, pin=pin_of(home))


@app.command()
def run(
    home: HomeOpt, port: PortOpt = 0, no_browser: NoBrowserOpt = False,
    every: Annotated[float, typer.Option("--every", min=1, help="Seconds between syncs "
                                         "while online.")] = 300,
    retry: Annotated[float, typer.Option("--retry", min=0.1, help="First retry delay in "
                                         "seconds while offline (it doubles up to --every).")] = 10,
) -> None:
    """The UI plus background sync: after each save and every --every seconds."""
    from datetime import timedelta

    from .runner import Schedule
    from .ui.serve import serve

    schedule = Schedule(SystemClock(), every=timedelta(seconds=every),
                        retry_min=timedelta(seconds=retry))
    serve(home, config_of(home), port, not no_browser, auto=True, pin=pin_of(home),
          schedule=schedule)


# --- customers ------------------------------------------------------------------

FIELDS_HELP = "Card fields as --field VALUE: " + ", ".join(
    "--" + f.replace("_", "-") for f in CUSTOMER_EDITABLE_FIELDS)


@customer_app.command("list")
def customer_list(
    home: HomeOpt,
    search: Annotated[str | None, typer.Option(help="Full-text search (names, notes, needs).")] = None,
    limit: LimitOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Your customers, optionally searched."""
    with vault(home) as store:
        show_rows(lambda n: store.iter_customers(search, n), lambda: store.count_customers(search),
                  as_json=as_json, limit=limit, columns=CUSTOMER_COLUMNS, noun="customers")


@customer_app.command("show")
def customer_show(
    customer: Annotated[str, typer.Argument(help="Id (or its first or last digits) or card number.")],
    home: HomeOpt, as_json: JsonOpt = False,
) -> None:
    """One customer card with its visits, and when it returns to the pool (公海)
    unless visited."""
    with vault(home) as store:
        card = store.get_customer(customer)
        card.update(store.pool_status(card))
        card["visits"] = store.list_visits(card["id"])
    show(card, as_json)


@customer_app.command("add", context_settings=EXTRA, help="Add a customer you developed. "
                      + FIELDS_HELP)
def customer_add(
    ctx: typer.Context, home: HomeOpt,
    name: Annotated[str, typer.Option("--name", help="Person or company name.")],
    as_json: JsonOpt = False,
) -> None:
    from schema.models import CustomerCreate

    card = validate(CustomerCreate, {**field_args(ctx.args, CUSTOMER_EDITABLE_FIELDS),
                                      "name": name})
    with vault(home) as store:
        show(store.add_customer(card), as_json)


@customer_app.command("edit", context_settings=EXTRA, help="Edit a card. " + FIELDS_HELP)
def customer_edit(
    ctx: typer.Context,
    customer: Annotated[str, typer.Argument(help="Id (or its first or last digits) or card number.")],
    home: HomeOpt, as_json: JsonOpt = False,
) -> None:
    from schema.models import CustomerPatch

    patch = validate(CustomerPatch, field_args(ctx.args, CUSTOMER_EDITABLE_FIELDS))
    with vault(home) as store:
        show(store.edit_customer(customer, patch), as_json)


@customer_app.command("dismiss-conflict")
def customer_dismiss_conflict(
    op_id: Annotated[str, typer.Argument(help="The conflict's op id (from `fieldvault status`).")],
    home: HomeOpt, as_json: JsonOpt = False,
) -> None:
    """You have seen that the office's value was kept over yours: stop listing it."""
    from . import service

    with vault(home) as store:
        service.dismiss_conflict(store, op_id)
    show({"dismissed": op_id}, as_json)


# --- visits ---------------------------------------------------------------------

Opt = typer.Option


@visit_app.command("log")
def visit_log(
    home: HomeOpt,
    customer: Annotated[str, Opt(help="Customer id (or its first or last digits) or card number.")],
    purpose: Annotated[VisitPurpose, Opt(help="Why you went.")],
    summary: Annotated[str, Opt(help="What happened.")],
    outcome: Annotated[str, Opt(help="Negotiation result (洽谈结果).")] = "",
    feedback: Annotated[str, Opt(help="Customer feedback.")] = "",
    competitors: Annotated[str, Opt(help="Competitor information.")] = "",
    location: Annotated[str, Opt(help="Where.")] = "",
    started_at: Annotated[str | None, Opt(help="ISO time; default now.")] = None,
    ended_at: Annotated[str | None, Opt(help="ISO time.")] = None,
    next_at: Annotated[str | None, Opt(help="Next appointment, ISO time.")] = None,
    next_place: Annotated[str, Opt(help="Next appointment place.")] = "",
    next_content: Annotated[str, Opt(help="Next appointment content.")] = "",
    planned: Annotated[bool, Opt("--planned", help="It was on the day's plan.")] = False,
    draft: Annotated[bool, Opt("--draft", help="Keep as a draft (not submitted).")] = False,
    attach: Annotated[list[Path] | None, Opt(help="A photo or scanned form to attach "
                                             "(repeatable; at most 20 MB each).")] = None,
    attach_id: Annotated[list[str] | None, Opt(help="Attach a file already in the vault "
                                               "(`fieldvault attachments`), by sha256.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Log a visit right after it happened. Works offline."""
    from schema.models import VisitCreate

    from . import attachments, inbox

    with vault(home) as store:
        shas = [attachments.resolve(store, ref) for ref in attach_id or []]
        shas += [attachments.add_bytes(store, inbox.read_regular(path, follow=True),
                                       path.name)["sha256"] for path in attach or []]
        data = validate(VisitCreate, {
            "customer_id": store.get_customer(customer)["id"], "purpose": purpose,
            "summary": summary, "outcome": outcome, "feedback": feedback,
            "competitors": competitors, "location": location,
            "started_at": started_at or store.clock.now(), "ended_at": ended_at,
            "next_at": next_at, "next_place": next_place, "next_content": next_content,
            "planned": planned, "status": "draft" if draft else "submitted",
        })
        row = store.log_visit(data, shas)
        show({**row, "attachments": attachments.of_visit(store.conn, row["id"])} if shas
             else row, as_json)


@visit_app.command("import")
def visit_import(
    home: HomeOpt,
    file: Annotated[Path, typer.Argument(
        help="CSV (UTF-8) whose header names visit fields and `customer` (id or card "
             "number); times without a zone are this laptop's local time.")],
    as_json: JsonOpt = False,
) -> None:
    """Log the visits of a spreadsheet as offline visits: all rows or none."""
    from .visit_import import import_csv

    with vault(home) as store:
        n = import_csv(store, file)
    if as_json:
        emit_json({"imported": n})
        return
    typer.echo(f"imported {n} visits; they go up at the next `fieldvault sync`")


@visit_app.command("list")
def visit_list(
    home: HomeOpt,
    customer: Annotated[str | None, Opt(help="Only this customer's visits.")] = None,
    search: Annotated[str | None, Opt(help="Full-text search in visit notes.")] = None,
    attention: Annotated[bool, Opt("--attention", help="Only what needs you: visits your "
                                   "manager returned, changes the server refused or holds, "
                                   "with the reasons.")] = False,
    limit: LimitOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Visits on this device (yours and, for your customers, your predecessors')."""
    with vault(home) as store:
        if attention:
            rows = store.returned_visits() + store.refused_ops()
            show_rows(lambda n: rows[:n] if n is not None else rows, lambda: len(rows),
                      as_json=as_json, limit=limit, columns=ATTENTION_COLUMNS,
                      noun="items needing attention")
            return
        show_rows(lambda n: store.iter_visits(customer, search, n),
                  lambda: store.count_visits(customer, search),
                  as_json=as_json, limit=limit, columns=VISIT_COLUMNS, noun="visits")


@visit_app.command("show")
def visit_show(
    visit: Annotated[str, typer.Argument(help="Visit id, or its first or last digits.")],
    home: HomeOpt, as_json: JsonOpt = False,
) -> None:
    """One visit record: its review status and the manager's comment, and the result
    of the office's call-back (电话回访) when it was picked for one."""
    from . import attachments

    with vault(home) as store:
        row = store.get_visit(visit)
        show({**row, "attachments": attachments.of_visit(store.conn, row["id"])}, as_json)


@visit_app.command("edit", context_settings=EXTRA, help="Correct your visit before approval "
                   "(a returned one is then submitted again): "
                   + ", ".join("--" + f.replace("_", "-") for f in VISIT_EDITABLE_FIELDS))
def visit_edit(
    ctx: typer.Context,
    visit: Annotated[str, typer.Argument(help="Visit id, or its first or last digits.")],
    home: HomeOpt, as_json: JsonOpt = False,
) -> None:
    from schema.models import VisitPatch

    patch = validate(VisitPatch, field_args(ctx.args, VISIT_EDITABLE_FIELDS))
    with vault(home) as store:
        show(store.edit_visit(visit, patch), as_json)


@visit_app.command("void")
def visit_void(
    visit: Annotated[str, typer.Argument(help="Visit id, or its first or last digits.")],
    home: HomeOpt,
    reason: Annotated[str, Opt("--reason", help="Why the record is void; it stays archived.")],
    as_json: JsonOpt = False,
) -> None:
    """Void a mistaken visit record (it is kept, marked void)."""
    from schema.models import VisitVoid

    with vault(home) as store:
        show(store.void_visit(visit, validate(VisitVoid, {"reason": reason})), as_json)


def main() -> None:
    run_app(app)


if __name__ == "__main__":
    main()
