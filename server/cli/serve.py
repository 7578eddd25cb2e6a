"""Running the server and keeping the archive: init, serve, backup status, restore,
new-epoch, migrate-archive."""

from __future__ import annotations

import os
import shlex
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from schema.output import (
    cli_app,
    emit_json,
    fail,
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


@app.command()
def init(data: DataOpt, as_json: JsonOpt = False, archive_url: ArchiveOpt = None) -> None:
    """Create (or migrate) the archive (--archive, or archive.db in --data) and the
    server's keys in --data. Safe to run again."""
    from ..keys import load_or_create_box_key, load_or_create_signing_key, public_key_b64
    from ..rules import init_archive

    os.umask(0o077)  # every file of the archive is the server's alone
    archive = call(init_archive, data, url=archive_url)
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
    from .. import replication
    from ..archive import ArchiveError, datadir
    from ..archive.sqlite import ARCHIVE_FILE
    from ..archive.url import parse_archive_url

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
    archive_at(data, archive_url).close()
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

    from ..app import create_app
    from ..settings import Settings

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
    from .. import replication

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


def _attachments(data: Path, archive_url: str | None) -> dict[str, Any] | None:
    """The attachments the archive records and the blob folder beside it holds: the
    folder is not in the database's replica, so it is backed up with it (OPERATIONS.md)."""
    from ..archive.errors import ArchiveError, StorageError
    from ..rules import open_archive

    try:
        archive = open_archive(data, url=archive_url)
    except (ArchiveError, StorageError):
        return None
    try:
        totals: dict[str, Any] = archive.attachment_totals()
    finally:
        archive.close()
    return {**totals, "folder": str(archive.blobs.root)}


@backup_app.command("status")
def backup_status(data: DataOpt, as_json: JsonOpt = False, archive_url: ArchiveOpt = None) -> None:
    """Replica location, latest replicated position and time, lag and errors."""
    from .. import replication
    from ..archive.url import parse_archive_url
    from ..settings import Settings

    if call(parse_archive_url, archive_url, data).kind == "postgresql":
        show({"healthy": None, "backend": "postgresql", "replica": None, "errors": [],
              "attachments": _attachments(data, archive_url),
              "note": "Litestream replicates SQLite archives only. Back a PostgreSQL archive "
                      "up with the database's own tools (base backup + WAL archiving, "
                      "point-in-time recovery), then run `fieldvault-server new-epoch` after "
                      "any restore: see docs/OPERATIONS.md."}, as_json)
        return
    status = replication.backup_status(data, Settings().replica_max_lag_s)
    status["attachments"] = _attachments(data, archive_url)
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

    from .. import replication
    from ..rules import init_archive

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
    result["archive_epoch"] = call(init_archive, data).start_new_epoch(
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
    archive = archive_at(data, archive_url)
    show({"archive_epoch": call(archive.start_new_epoch, note)}, as_json)


@app.command("migrate-archive")
def migratearchive_at(
    data: DataOpt,
    to_url: Annotated[str, typer.Option(
        "--to", envvar="FIELDVAULT_MIGRATE_TO", show_default=False,
        help="The new, empty archive: postgresql://USER@HOST:PORT/DB or sqlite:///PATH "
             "[or $FIELDVAULT_MIGRATE_TO, which keeps a password out of process listings]")],
    from_url: Annotated[str | None, typer.Option(
        "--from", envvar="FIELDVAULT_MIGRATE_FROM", show_default=False,
        help="The archive to copy [default: $FIELDVAULT_MIGRATE_FROM, else archive.db "
             "in --data]")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Copy the whole archive (history, audit chain, devices, leases, epoch) into a new,
    empty database, all or nothing, and verify it there. Stop the server first; then
    serve with --archive set to the new one and the same --data (its keys)."""
    from ..rules.moving import migrate_archive as migrate

    bar = _CopyProgress()
    try:
        out = call(migrate, data, from_url, to_url, progress=bar.update)
    finally:
        bar.stop()
    if as_json:
        emit_json(out)
        return
    show({k: v for k, v in out.items() if k not in ("tables", "sequences")}, False)
    show([{"table": t, "rows": n} for t, n in out["tables"].items()], False,
         columns=("table", "rows"))


class _CopyProgress:
    """A rich progress bar on stderr (when it is a terminal), started at the first row
    copied, so a refusal before the copy is still one error line."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.task: Any = None

    def update(self, table: str, done: int, total: int) -> None:
        if self.bar is None:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            console = Console(stderr=True)
            self.bar = Progress(TextColumn("{task.description:<28}"), BarColumn(),
                                MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                                disable=not console.is_terminal, transient=True)
            self.bar.start()
            self.task = self.bar.add_task("copying", total=total)
        self.bar.update(self.task, description=f"copying {table}", completed=done, total=total)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()

