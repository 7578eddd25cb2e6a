"""`fieldvault-server`: run the server and administer the archive (a thin layer over it).

Start-up time counts for admin commands and `--help`: the archive (sqlite-utils, the
pydantic models), the web app and Litestream support are imported inside the commands
that use them, never here. tests/test_startup.py keeps it so.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from schema.durations import parse_duration
from schema.fields import CUSTOMER_EDITABLE_FIELDS
from schema.output import (
    TABLE_ROWS,
    cli_app,
    emit_json,
    fail,
    field_args,
    run_app,
    show,
    show_rows,
    validation_message,
)

if TYPE_CHECKING:
    from .rules import Archive


def default_data_dir() -> Path:
    """$FIELDVAULT_DATA as server.settings reads it, without importing pydantic-settings."""
    return Path(os.environ.get("FIELDVAULT_DATA") or "./fieldvault-data")


app = cli_app(add_completion=False,
                  help="FieldVault server: master archive, sync API and admin commands.")
rep_app = cli_app(help="Sales reps.")
customer_app = cli_app(help="Customer cards (客户卡).")
visit_app = cli_app(help="Visit records (拜访记录).")
device_app = cli_app(help="Enrolled devices.")
app.add_typer(rep_app, name="rep")
app.add_typer(customer_app, name="customer")
app.add_typer(visit_app, name="visit")
app.add_typer(device_app, name="device")

DataOpt = Annotated[Path, typer.Option("--data", help="Archive directory "
                                       "[default: $FIELDVAULT_DATA or ./fieldvault-data]",
                                       default_factory=default_data_dir, show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
ArchiveOpt = Annotated[str | None, typer.Option(
    "--archive", envvar="FIELDVAULT_ARCHIVE_URL", show_default=False,
    help="The archive: sqlite:///PATH/archive.db or postgresql://USER@HOST:PORT/DB "
         "[default: $FIELDVAULT_ARCHIVE_URL, else archive.db in --data]")]
LimitOpt = Annotated[int | None, typer.Option(
    "--limit", min=0, help="Show at most N rows; 0 = all [default: all with --json, "
    f"else the first {TABLE_ROWS}, with a note when some are left out]", show_default=False)]
EXTRA = {"allow_extra_args": True, "ignore_unknown_options": True}
FIELDS_HELP = "Card fields as --field VALUE: " + ", ".join(
    "--" + f.replace("_", "-") for f in CUSTOMER_EDITABLE_FIELDS)


def _archive(data: Path, url: str | None) -> Archive:
    """The archive the command names, or one error line saying how to reach it."""
    from .archive import ArchiveError, StorageError
    from .rules import open_archive

    try:
        return open_archive(data, url=url)
    except ArchiveError as exc:
        fail(exc.message)
    except StorageError as exc:
        fail(str(exc))


def _run(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    """Call into the archive, turning its refusals into one-line CLI errors."""
    from pydantic import ValidationError

    from .archive import ArchiveError, StorageError

    try:
        return fn(*args, **kwargs)
    except ArchiveError as exc:
        fail(exc.message)
    except StorageError as exc:
        fail(str(exc))
    except ValidationError as exc:
        fail(validation_message(exc))


@app.command()
def init(data: DataOpt, as_json: JsonOpt = False, archive_url: ArchiveOpt = None) -> None:
    """Create (or migrate) the archive (--archive, or archive.db in --data) and the
    server's keys in --data. Safe to run again."""
    from .keys import load_or_create_box_key, load_or_create_signing_key, public_key_b64
    from .rules import init_archive

    os.umask(0o077)  # every file of the archive is the server's alone
    archive = _run(init_archive, data, url=archive_url)
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = load_or_create_signing_key(data)
    load_or_create_box_key(data)
    out = {"data": str(data.resolve()), "archive": archive.describe(),
           "archive_epoch": archive.epoch, "server_sign_public_key": public_key_b64(key)}
    show(out, as_json)


@app.command()
def serve(
    data: DataOpt,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8700,
    replica: Annotated[str | None, typer.Option(
        help="Where Litestream streams the archive: file:///PATH, "
             "s3://BUCKET/PATH?endpoint=URL&region=R, or `none` "
             "[default: file://DATA/replica]")] = None,
    hr_inbox: Annotated[Path | None, typer.Option(
        help="Folder the HR system drops departure files (CSV/JSON) into.")] = None,
    workers: Annotated[int, typer.Option(
        min=1, max=64, help="API worker processes (stateless; background jobs run in one).")] = 1,
    archive_url: ArchiveOpt = None,
) -> None:
    """Run the sync API. A SQLite archive is continuously replicated by Litestream; a
    PostgreSQL archive is backed up with the database's own tools (docs/OPERATIONS.md)."""
    from . import replication
    from .archive import ArchiveError, datadir
    from .archive.sqlite import ARCHIVE_FILE
    from .archive.url import parse_archive_url

    # Files created from here on (by us, Litestream and SQLite) are the server's alone.
    os.umask(0o077)
    try:
        target = parse_archive_url(archive_url, data)
        if target.kind == "sqlite":
            if target.path is not None and target.path.resolve() != (data / ARCHIVE_FILE).resolve():
                fail(f"serve keeps a SQLite archive in --data (Litestream replicates "
                     f"DATA/{ARCHIVE_FILE}): use --data {target.path.parent} instead of --archive")
            datadir.check_ready(data, ARCHIVE_FILE)
        elif not data.is_dir():
            fail(f"no data folder {data} for the server's keys: run "
                 f"`fieldvault-server init --data {data} --archive URL`")
        datadir.secure_data_dir(data)
    except ArchiveError as exc:
        fail(exc.message)
    _archive(data, archive_url).close()
    if target.kind == "postgresql":
        typer.echo("NOTE: PostgreSQL archive: Litestream does not apply; back it up with "
                   "base backups and WAL archiving (docs/OPERATIONS.md).", err=True)
    elif os.environ.get(_UNDER_LITESTREAM) != "1":
        try:
            spec = replication.parse_replica(replica, data)
            if spec.enabled:
                position = replication.preflight(spec)
                config = replication.write_config(data, spec)
            else:
                replication.write_config_disabled(data)
        except replication.ReplicationError as exc:
            fail(str(exc))
        except OSError as exc:  # e.g. the disk filled up since the start-up check
            fail(f"cannot write the replication config in {data}: {exc.strerror or exc}")
        if not spec.enabled:
            typer.echo("WARNING: replication is disabled (--replica none): a lost disk loses "
                       "the archive. Never run production like this.", err=True)
        else:
            if spec.scheme == "file" and str(data.resolve()) in spec.url:
                typer.echo(f"NOTE: replicating to {spec.redacted()}, on the same disk as the "
                           "archive. Production wants another disk or S3: --replica URL.", err=True)
            typer.echo(f"replicating archive to {spec.redacted()} "
                       f"(replica at txid {position['txid']})", err=True)
            raise typer.Exit(_serve_under_litestream(config, data, host, port, hr_inbox, workers))
    # Imported only here: the process that execs Litestream need not pay for them.
    import uvicorn

    from .app import create_app
    from .settings import Settings

    settings = Settings(data=data, host=host, port=port, hr_inbox=hr_inbox,
                        archive_url=archive_url)
    if os.environ.get(_UNDER_LITESTREAM) == "1":
        _stop_without_litestream()
    if workers == 1:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="info",
                    access_log=False, timeout_graceful_shutdown=5)
        return
    # Each worker builds its own app from the environment (Settings reads FIELDVAULT_*):
    # nothing is shared between them but the archive.
    os.environ.update(settings.as_environment())
    os.environ[MULTIPROC_ENV] = str(_fresh_metrics_dir(data))
    uvicorn.run("server.app:app_from_environment", factory=True, workers=workers, host=host,
                port=port, log_level="info", access_log=False, timeout_graceful_shutdown=5)


_UNDER_LITESTREAM = "FIELDVAULT_UNDER_LITESTREAM"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # server.metrics reads it (not imported here: start-up)


def _fresh_metrics_dir(data: Path) -> Path:
    """DATA/metrics, emptied: the workers' shared counters start from zero at each start."""
    import shutil

    folder = data / "metrics"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(mode=0o700)
    return folder


def _stop_without_litestream() -> None:
    """The API runs as Litestream's child. Should Litestream die (killed, OOM), the API
    would go on taking writes that nobody replicates while /healthz still reads the
    replica as healthy: watch the parent, and stop the API gracefully when it is gone."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        sys.stderr.write("error: Litestream exited, so the API stops: no write may go "
                         "unreplicated. Start `fieldvault-server serve` again.\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's graceful shutdown

    threading.Thread(target=watch, name="litestream-watch", daemon=True).start()


def _serve_under_litestream(config: Path, data: Path, host: str, port: int,
                            hr_inbox: Path | None, workers: int) -> int:
    """Become `litestream replicate -exec API`: Litestream runs the API as its child
    and, when it is stopped (SIGTERM/Ctrl-C), stops the API and then replicates the
    last writes before exiting. exec (not a wrapper process) so that exactly one
    signal reaches Litestream: a second one would cut its final sync short."""
    from . import replication

    child = [sys.executable, "-m", "server.cli", "serve", "--data", str(data), "--host", host,
             "--port", str(port), "--workers", str(workers)]
    if hr_inbox is not None:
        child += ["--hr-inbox", str(hr_inbox)]
    env = {**replication.litestream_env(), _UNDER_LITESTREAM: "1"}
    binary = replication.litestream_binary()
    sys.stdout.flush()
    sys.stderr.flush()
    args = [binary, "replicate", "-config", str(config), "-exec", shlex.join(child)]
    replication.tee_stderr(data / replication.LOG_FILE)
    os.execve(binary, args, env)  # noqa: S606 - fixed binary, no shell
    return 1  # not reached


backup_app = cli_app(help="Replication of the archive (Litestream).")
app.add_typer(backup_app, name="backup")


@backup_app.command("status")
def backup_status(data: DataOpt, as_json: JsonOpt = False, archive_url: ArchiveOpt = None) -> None:
    """Replica location, latest replicated position and time, lag and errors."""
    from . import replication
    from .archive.url import parse_archive_url
    from .settings import Settings

    if _run(parse_archive_url, archive_url, data).kind == "postgresql":
        show({"healthy": None, "backend": "postgresql", "replica": None, "errors": [],
              "note": "Litestream replicates SQLite archives only. Back a PostgreSQL archive "
                      "up with the database's own tools (base backup + WAL archiving, "
                      "point-in-time recovery), then run `fieldvault-server new-epoch` after "
                      "any restore: see docs/OPERATIONS.md."}, as_json)
        return
    status = replication.backup_status(data, Settings().replica_max_lag_s)
    show(status, as_json)
    if not status.get("healthy"):
        raise typer.Exit(1)


@app.command()
def restore(
    data: DataOpt,
    replica: Annotated[str, typer.Option("--replica", help="file:///PATH or s3://BUCKET/PATH?...")],
    timestamp: Annotated[str | None, typer.Option(
        help="Restore the state as of this ISO time (UTC), e.g. 2026-11-25T10:00:00Z.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing archive.")] = False,
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """Restore the archive from its replica (latest, or to a point in time)."""
    from schema.clock import iso, parse_iso

    from . import replication
    from .rules import init_archive

    try:
        spec = replication.parse_replica(replica, data)
        if not spec.enabled:
            fail("give the replica to restore from: --replica file:///PATH or s3://...")
        when = iso(parse_iso(timestamp)).replace(".000000Z", "Z") if timestamp else None
        result = replication.restore(data, spec, when, force)
    except ValueError:
        fail(f"--timestamp {timestamp!r} is not an ISO time such as 2026-11-25T10:00:00Z")
    except replication.ReplicationError as exc:
        fail(str(exc))
    result["archive_epoch"] = _run(init_archive, data).start_new_epoch(
        f"restored from {spec.redacted()}" + (f" as of {when}" if when else ""))
    show(result, as_json)


@app.command("new-epoch")
def new_epoch(
    data: DataOpt,
    note: Annotated[str, typer.Option("--note", help="Why, for the audit log (e.g. the restore).")],
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """Mark the archive as restored: agents reconcile what it may have lost before
    pulling again. Run it after restoring a PostgreSQL archive (Litestream restores
    do it themselves)."""
    archive = _archive(data, archive_url)
    show({"archive_epoch": _run(archive.start_new_epoch, note)}, as_json)


audit_app = cli_app(help="The hash-chained audit log.")
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(data: DataOpt, as_json: JsonOpt = False, archive_url: ArchiveOpt = None) -> None:
    """Check the whole chain; exit 1 naming the first broken entry."""
    verdict = _archive(data, archive_url).audit_verify()
    out = {"ok": verdict.ok, "entries": verdict.entries, "first_broken": verdict.first_broken,
           "problem": verdict.problem}
    if as_json:
        emit_json(out)
    elif verdict.ok:
        typer.echo(f"audit chain intact: {verdict.entries} entries")
    if not verdict.ok:
        if not as_json:
            typer.echo(f"error: audit entry {verdict.first_broken} is broken: {verdict.problem}",
                       err=True)
        raise typer.Exit(1)


@audit_app.command("list")
def audit_list(
    data: DataOpt,
    limit: LimitOpt = None,
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """The audit entries, oldest first; with --limit N (or in a table) the most recent N."""
    archive = _archive(data, archive_url)
    show_rows(archive.audit_entries, archive.audit_count, as_json=as_json, limit=limit,
              columns=["seq", "at", "actor", "action", "subject", "details"],
              noun="audit entries (the most recent)")


@rep_app.command("add")
def rep_add(
    data: DataOpt,
    name: Annotated[str, typer.Option("--name", help="Rep's display name.")],
    manager: Annotated[str | None, typer.Option(help="Manager rep (id or name).")] = None,
    tier: Annotated[str, typer.Option(help="senior, mid or junior.")] = "mid",
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """Add a sales rep."""
    rep = _run(_archive(data, archive_url).add_rep, name, manager, tier)
    show(rep, as_json)


@rep_app.command("list")
def rep_list(data: DataOpt, limit: LimitOpt = None, as_json: JsonOpt = False,
             archive_url: ArchiveOpt = None) -> None:
    """List reps with their customer and device counts."""
    archive = _archive(data, archive_url)
    show_rows(archive.list_reps, lambda: archive.counts()["reps"], as_json=as_json, limit=limit,
              columns=["id", "name", "tier", "manager_id", "customers", "devices", "active"],
              noun="reps")


@app.command("enroll-code")
def enroll_code(
    rep: Annotated[str, typer.Argument(help="Rep id or name.")],
    data: DataOpt,
    ttl: Annotated[str, typer.Option(help="How long the code stays valid, e.g. 30m, 24h.")] = "24h",
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """Create a one-time enrollment code for a rep's laptop."""
    try:
        lifetime: timedelta = parse_duration(ttl)
    except ValueError as exc:
        fail(str(exc))
    code, expires = _run(_archive(data, archive_url).create_enroll_code, rep, lifetime)
    show({"id": code, "code": code, "rep": rep, "expires_at": expires}, as_json)


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
    card = _run(CustomerCreate.model_validate, {**fields, "name": name})
    show(_run(_archive(data, archive_url).add_customer, card, owner, "admin"), as_json)


@customer_app.command("import")
def customer_import(
    file: Annotated[Path, typer.Argument(help="CSV with a header of card field names "
                                         "(and optionally `owner`).")],
    data: DataOpt,
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """Import customers from CSV; one bad row imports nothing."""
    count = _run(_archive(data, archive_url).import_csv, file)
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
    archive = _archive(data, archive_url)
    _run(archive.count_customers, owner)  # an unknown --owner fails before anything is printed
    _export(archive, "customers", {"owner": owner}, lambda: show_rows(
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
    archive = _archive(data, archive_url)
    card = _run(archive.get_customer, customer)
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

    patch = _run(CustomerPatch.model_validate, field_args(ctx.args, CUSTOMER_EDITABLE_FIELDS))
    show(_run(_archive(data, archive_url).edit_customer, customer, patch, by), as_json)


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
    row = _run(_archive(data, archive_url).assign, customer, None if rep == "pool" else rep, reason, "admin")
    show(row, as_json)


@visit_app.command("list")
def visit_list(
    data: DataOpt,
    rep: Annotated[str | None, typer.Option(help="Author rep id or name.")] = None,
    customer: Annotated[str | None, typer.Option(help="Customer id or card number.")] = None,
    limit: LimitOpt = None,
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """List visit records in the archive, oldest first."""
    archive = _archive(data, archive_url)
    _run(archive.count_visits, rep, customer)  # unknown --rep/--customer fail up front
    _export(archive, "visits", {"rep": rep, "customer": customer}, lambda: show_rows(
        lambda n: archive.iter_visits(rep, customer, n), lambda: archive.count_visits(rep, customer),
        as_json=as_json, limit=limit, noun="visits",
        columns=["id", "customer_id", "rep_id", "started_at", "purpose", "status", "summary"]))


def _export(archive: Archive, what: str, filters: dict[str, str | None],
            print_rows: Callable[[], int]) -> None:
    """Print a listing of customer data and log in the audit chain how many rows left."""
    count = 0
    try:
        count = print_rows()
    finally:
        archive.record_export(what, count, filters)


@device_app.command("list")
def device_list(
    data: DataOpt,
    rep: Annotated[str | None, typer.Option(help="Only this rep's devices.")] = None,
    limit: LimitOpt = None,
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """List enrolled devices."""
    archive = _archive(data, archive_url)
    _run(archive.list_devices, rep, 0)  # an unknown --rep fails before anything is printed
    show_rows(lambda n: archive.list_devices(rep, n), lambda: len(archive.list_devices(rep)),
              as_json=as_json, limit=limit, noun="devices",
              columns=["id", "rep_name", "name", "state", "last_seen_at", "revoked_at",
                       "wipe_receipt_at"])


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
    out = _run(_archive(data, archive_url).revoke, rep, reason, reassign_to, effective_at, by, "cli")
    show(out, as_json)


@app.command("departure-report")
def departure_report(
    rep: Annotated[str, typer.Argument(help="Revoked rep (id or name).")],
    data: DataOpt, as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """HR: when and by whom, wipe status of each device, customers reassigned, visits kept."""
    report = _run(_archive(data, archive_url).departure_report, rep)
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


policy_app = cli_app(help="Offline grace policy, delivered in leases.")
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
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """Change the offline grace policy; devices get it with their next lease."""
    show(_run(_archive(data, archive_url).set_policy, offline_block_hours, offline_wipe_days, require_pin),
         as_json)


@policy_app.command("show")
def policy_show(data: DataOpt, as_json: JsonOpt = False, archive_url: ArchiveOpt = None) -> None:
    """The offline grace policy in force."""
    show(_archive(data, archive_url).policy(), as_json)


@app.command("hr-token")
def hr_token(
    data: DataOpt,
    name: Annotated[str, typer.Option("--name", help="Which HR system uses the token.")],
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """Create a bearer token for the HR API (shown once; stored hashed)."""
    token = _run(_archive(data, archive_url).create_hr_token, name)
    show({"id": name, "name": name, "token": token}, as_json)


@app.command()
def conflicts(data: DataOpt, limit: LimitOpt = None, as_json: JsonOpt = False,
              archive_url: ArchiveOpt = None) -> None:
    """Card fields where a rep's edit lost to a newer server value (the rep's value is kept here)."""
    archive = _archive(data, archive_url)
    show_rows(archive.conflicts, lambda: archive.counts()["conflicts"], as_json=as_json,
              limit=limit, noun="conflicts", columns=["id", "card_no", "customer_name", "field",
                                                      "server_value", "rep_value", "rep_id", "at"])


@app.command()
def quarantine(data: DataOpt, limit: LimitOpt = None, as_json: JsonOpt = False,
               archive_url: ArchiveOpt = None) -> None:
    """Operations held for review instead of being merged (e.g. visits to reassigned customers)."""
    archive = _archive(data, archive_url)
    show_rows(archive.quarantine, lambda: archive.counts()["quarantine"], as_json=as_json,
              limit=limit, noun="quarantined operations",
              columns=["id", "kind", "entity_id", "rep_id", "reason", "at"])


def main() -> None:
    run_app(app)


if __name__ == "__main__":
    main()
