"""What every `fieldvault-server` command module shares: the app, its groups, options and
the two ways a command reaches the archive (`archive_at`, `call`).

Start-up time counts for admin commands and `--help`: the archive (sqlite-utils, the
pydantic models), the web app and Litestream support are imported inside the commands
that use them, never here. tests/test_startup.py keeps it so.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from schema.fields import CUSTOMER_EDITABLE_FIELDS
from schema.output import (
    TABLE_ROWS,
    cli_app,
    fail,
    validation_message,
)

if TYPE_CHECKING:
    from ..rules import Archive


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


def archive_at(data: Path, url: str | None) -> Archive:
    """The archive the command names, or one error line saying how to reach it."""
    from ..archive import ArchiveError, StorageError
    from ..rules import open_archive

    try:
        return open_archive(data, url=url)
    except ArchiveError as exc:
        fail(exc.message)
    except StorageError as exc:
        fail(str(exc))


def call(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    """Call into the archive, turning its refusals into one-line CLI errors."""
    from pydantic import ValidationError

    from ..archive import ArchiveError, StorageError

    try:
        return fn(*args, **kwargs)
    except ArchiveError as exc:
        fail(exc.message)
    except StorageError as exc:
        fail(str(exc))
    except ValidationError as exc:
        fail(validation_message(exc))


def export(archive: Archive, what: str, filters: dict[str, str | None],
            print_rows: Callable[[], int]) -> None:
    """Print a listing of customer data and log in the audit chain how many rows left."""
    count = 0
    try:
        count = print_rows()
    finally:
        archive.record_export(what, count, filters)
