"""`fieldvault`: the rep's agent. Works offline; `sync` talks to the server.

Every command is interactive, so start-up time counts: the heavy modules (the
pydantic models, httpx and the sync engine, the vault store) are imported inside
the commands that use them, never here. tests/test_startup.py keeps it so.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from schema.clock import SystemClock
from schema.enums import VisitPurpose
from schema.fields import CUSTOMER_EDITABLE_FIELDS, VISIT_EDITABLE_FIELDS
from schema.output import cli_app, disk_full, emit_json, fail, field_args, run_app, show, show_rows

from . import keystore, wipe
from .cli_attachments import attachments_command, inbox_app
from .cli_base import (
    EXIT_OFFLINE,
    EXIT_REVOKED,
    EXTRA,
    HomeOpt,
    JsonOpt,
    LimitOpt,
    config_of,
    pin_of,
    server_errors,
    validate,
    vault,
)
from .cli_plan import plan_app
from .cli_pool import pool_app
from .home import AgentConfig
from .keystore import KeyError_, VaultWiped

if TYPE_CHECKING:
    from . import sync as sync_mod
    from .store import Store

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


def _revoked(home: Path, transport: sync_mod.Transport, order: dict[str, Any] | None = None,
             receipt: dict[str, Any] | None = None) -> NoReturn:
    """Carry out a verified wipe order (or resend its receipt) and exit 3."""
    from . import sync as sync_mod

    delivered = sync_mod.obey_wipe(home, transport, order=order, receipt=receipt)
    tail = "" if delivered else "; the wipe receipt will be sent at the next `fieldvault sync`"
    fail("this device was revoked by the company: its local copy has been wiped" + tail,
         EXIT_REVOKED)


def _vault_if_it_opens(home: Path, config: AgentConfig, pin: str | None) -> Store | None:
    """A revoked laptop's vault, if it still opens by itself (its push is then the final
    flush), else None: the sealed envelopes go instead and nothing is unlocked. A lease
    past its deadlines is not enforced here (no self-wipe before the hand-over): the
    wipe order that follows destroys everything anyway."""
    from .store import Store, StoreError

    try:
        if keystore.status(home, SystemClock()).state != "active":
            return None
        return Store.open(home, config.rep_id, pin=pin)
    except (KeyError_, StoreError):
        return None


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
    from .enroll import AlreadyEnrolled
    from .enroll import enroll as do_enroll
    from .transport import Offline, ServerRefused

    try:
        config = do_enroll(home, server, code, insecure, name)
    except (ValueError, AlreadyEnrolled, KeyError_) as exc:
        fail(str(exc))
    except Offline as exc:
        fail(f"{exc}; check the address and your network", EXIT_OFFLINE)
    except ServerRefused as exc:
        fail(exc.message)
    with vault(home) as store:
        store.set_state("archive_epoch", config.archive_epoch)
    out: dict[str, Any] = {
        "id": config.device_id, "device_id": config.device_id, "rep_id": config.rep_id,
        "rep_name": config.rep_name, "server": config.server_url}
    problem = None
    if not no_sync:
        report, problem = _first_sync(home, config)
        out["first_sync"] = report
    if as_json:
        emit_json(out)
    else:
        show({k: v for k, v in out.items() if k != "first_sync"}, False)
        if out.get("first_sync"):
            report = out["first_sync"]
            typer.echo(f"first sync: pulled {report['pulled_customers']} customers, "
                       f"{report['pulled_visits']} visits")
    if problem:
        fail(f"enrolled, but the first sync failed ({problem}); your enrollment stands: "
             "run `fieldvault sync` when the server is reachable", EXIT_OFFLINE)


def _first_sync(home: Path, config: AgentConfig) -> tuple[dict[str, Any] | None, str | None]:
    """The first sync after enrollment, as `fieldvault sync` runs it (the lease is brand
    new, so no check-in first): its report, or why it failed."""
    from . import sync as sync_mod
    from .store import Store, StoreError
    from .transport import Offline, ServerRefused, UntrustedResponse

    transport = sync_mod.open_transport(home, config)
    try:
        store = Store.open(home, config.rep_id, pin=pin_of(home))
        try:
            return sync_mod.sync(store, transport).as_dict(), None
        finally:
            store.close()
    except Offline as exc:
        return None, str(exc)
    except ServerRefused as exc:
        return None, f"server refused the sync: {exc.message}"
    except (UntrustedResponse, StoreError, KeyError_, wipe.DeviceRevoked) as exc:
        return None, str(exc) or type(exc).__name__
    except Exception as exc:
        if (problem := disk_full(exc)) is None:
            raise
        return None, f"{problem}: free some space"
    finally:
        transport.close()


@app.command()
def status(home: HomeOpt, as_json: JsonOpt = False) -> None:
    """What this device holds, its lease deadlines, and what is waiting to sync."""
    config = config_of(home)
    try:
        lease = keystore.status(home, SystemClock()).as_dict()
    except KeyError_ as exc:  # a damaged keyring.json
        fail(str(exc))
    out: dict[str, Any] = {
        "device_id": config.device_id, "rep_id": config.rep_id, "rep_name": config.rep_name,
        "server": config.server_url, "state": lease["state"], "lease": lease,
    }
    attention: list[dict[str, Any]] = []
    groups: dict[str, Any] = {}
    if lease["state"] == "active":
        with vault(home) as store:
            attention = store.needs_attention()
            groups = store.attention(ATTENTION_TOP)
            out.update(**store.counts(), outbox=store.outbox_counts(),
                       last_sync_at=store.get_state("last_sync_at"),
                       last_server_time=store.get_state("last_server_time"))
    if as_json:
        emit_json({**out, "needs_attention": attention, "attention": groups})
        return
    show({k: v for k, v in out.items() if k != "lease"}, False)
    typer.echo(f"lease: blocks at {lease['block_at']}, wipes at {lease['wipe_at']}"
               + (f" ({lease['reason']})" if lease["reason"] else ""))
    for line in _attention_lines(groups):
        typer.echo(line)


ATTENTION_TOP = 5  # items of each kind `status` lists; `visit list --attention` has all
_ATTENTION_NOUNS = {"returned_visits": "returned visit", "refused": "refused change",
                    "returned_plans": "returned plan", "pool_warnings": "pool warning"}


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
                lines.append(f"  {item['state']}: {item['kind']} {item['id'][:12]} "
                             f"{item['customer']}: {item['reason']}")
            elif key == "returned_plans":
                lines.append(f"  returned: plan for {item['id']}: {item['reason']}{by}")
            else:
                lines.append(f"  returned: {item['kind']} {item['id'][:12]} "
                             f"{item['customer']}: {item['reason']}{by}")
        if counts[key] > len(groups[key]):
            lines.append(f"  ... and {counts[key] - len(groups[key])} more {noun}s")
    if counts["returned_visits"] or counts["refused"]:
        lines.append("  see `fieldvault visit list --attention`; a returned visit is "
                     "corrected with `fieldvault visit edit ID`")
    return lines


def _check_in_says_revoked(home: Path, config: AgentConfig, transport: sync_mod.Transport,
                           pin: str | None) -> bool:
    """Renew the lease; True when the server says this device is revoked (or wiped): it
    then hands over what is unsynced (push, or sealed envelopes) and wipes. Any other
    failure ends the command with its one line and exit code."""
    from . import sync as sync_mod
    from .transport import ServerRefused

    with server_errors("check-in"):
        try:
            sync_mod.check_in(home, config, transport, pin)
        except ServerRefused as exc:
            if exc.code not in sync_mod.REVOKED_CODES:
                raise
            return True
        except KeyError_ as exc:
            # The keyring is damaged, but the device key is its own file: a revoked
            # laptop still hands over its envelopes and wipes.
            if not sync_mod.revoked_despite_local_error(transport):
                fail(str(exc))
            return True
    return False


@app.command()
def sync(home: HomeOpt, as_json: JsonOpt = False) -> None:
    """Send local changes up, bring assignments down. Exit 2 when the server is
    unreachable, 3 when this device was revoked (its local copy is then wiped)."""
    from . import sync as sync_mod
    from .store import Store, StoreError

    config = config_of(home)
    transport = sync_mod.open_transport(home, config)
    try:
        receipt = wipe.pending_receipt(home)
        if receipt is not None:
            _revoked(home, transport, receipt=receipt)
        pin = pin_of(home)
        revoked = _check_in_says_revoked(home, config, transport, pin)
        order = None
        store: Store | None = None
        if revoked:
            store = _vault_if_it_opens(home, config, pin)
        else:
            try:
                store = Store.open(home, config.rep_id, pin=pin)
            except (StoreError, KeyError_) as exc:
                fail(str(exc), EXIT_REVOKED if isinstance(exc, VaultWiped) else 1)
        if store is None:
            with server_errors("final sync"):
                order = sync_mod.hand_over_envelopes(home, transport).order
        else:
            try:
                with server_errors("sync"):
                    report = sync_mod.sync(store, transport)
            except wipe.DeviceRevoked as exc:
                order = exc.order
            finally:
                attention = len(store.needs_attention())
                returned = len(store.returned_visits()) + len(store.returned_plans())
                warnings = store.pool_warning_count()
                store.close()
        if order is not None:
            _revoked(home, transport, order=order)
    finally:
        transport.close()
    out = {**report.as_dict(), "needs_attention": attention, "returned": returned,
           "pool_warnings": warnings}
    if as_json:
        emit_json(out)
        return
    res = ", ".join(f"{n} {s}" for s, n in sorted(report.results.items())) or "nothing to send"
    typer.echo(f"pushed {report.pushed} ({res}); pulled {report.pulled_customers} customers, "
               f"{report.pulled_visits} visits; evicted {report.evicted}")
    if attention:
        typer.echo(f"{attention} change(s) need attention: see `fieldvault status`")
    if returned or warnings:
        typer.echo(f"{returned} returned by your manager, {warnings} pool warning(s): "
                   "see `fieldvault status`")


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
    customer: Annotated[str, typer.Argument(help="Id, id prefix or card number.")],
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
    customer: Annotated[str, typer.Argument(help="Id, id prefix or card number.")],
    home: HomeOpt, as_json: JsonOpt = False,
) -> None:
    from schema.models import CustomerPatch

    patch = validate(CustomerPatch, field_args(ctx.args, CUSTOMER_EDITABLE_FIELDS))
    with vault(home) as store:
        show(store.edit_customer(customer, patch), as_json)


# --- visits ---------------------------------------------------------------------

Opt = typer.Option


@visit_app.command("log")
def visit_log(
    home: HomeOpt,
    customer: Annotated[str, Opt(help="Customer id, id prefix or card number.")],
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
    visit: Annotated[str, typer.Argument(help="Visit id or id prefix.")],
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
    visit: Annotated[str, typer.Argument(help="Visit id or id prefix.")],
    home: HomeOpt, as_json: JsonOpt = False,
) -> None:
    from schema.models import VisitPatch

    patch = validate(VisitPatch, field_args(ctx.args, VISIT_EDITABLE_FIELDS))
    with vault(home) as store:
        show(store.edit_visit(visit, patch), as_json)


@visit_app.command("void")
def visit_void(
    visit: Annotated[str, typer.Argument(help="Visit id or id prefix.")],
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
