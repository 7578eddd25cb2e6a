"""`fieldvault`'s entry point: `fieldvault sync` without typer, anything else through
the typer app (agent/cli.py).

A sync with nothing new is what a timer runs every few minutes, and most of its time
was start-up: importing typer and building the whole command tree (every command's
options, inspected from its signature) cost ~60 ms of a ~0.4 s no-op sync. Here a
sync whose arguments are only `--home DIR` and `--json` runs `sync_command` directly;
any other argument (`--help`, a typo, an option added later) goes to the typer app,
which stays the reference for parsing, help and usage errors, and whose `sync`
command runs the same `sync_command`. tests/test_startup.py checks both paths.
"""

from __future__ import annotations

import sys
from pathlib import Path


def plain_sync_args(args: list[str]) -> tuple[Path | None, bool] | None:
    """(home or None for the default, as_json) when `args` (after `sync`) are only
    `--home DIR`, `--home=DIR` and `--json`, as click would read them; else None."""
    home: Path | None = None
    as_json = False
    rest = iter(args)
    for arg in rest:
        if arg == "--json":
            as_json = True
        elif arg == "--home":
            value = next(rest, None)
            if not value or value.startswith("-"):
                return None  # let click say what is wrong
            home = Path(value)
        elif arg.startswith("--home=") and len(arg) > len("--home="):
            home = Path(arg[len("--home="):])
        else:
            return None
    return home, as_json


def sync_command(home: Path, as_json: bool) -> None:
    """`fieldvault sync`: send local changes up, bring assignments down. Exit 2 when the
    server is unreachable, 3 when this device was revoked (its local copy is then wiped)."""
    from schema.output import emit_json, fail

    from . import service
    from .cli_core import EXIT_REVOKED, config_of, pin_of, server_errors
    from .keystore import KeyError_, VaultWiped
    from .progress import sync_bar, wanted
    from .store import StoreError

    config = config_of(home)
    try:
        with sync_bar(wanted(as_json)) as progress:
            outcome = service.sync(home, config, pin_of(home), progress)
    except service.Revoked as exc:
        tail = "" if exc.delivered else "; the wipe receipt will be sent at the next `fieldvault sync`"
        fail(str(exc) + tail, EXIT_REVOKED)
    except service.SyncFailed as exc:
        with server_errors(exc.stage):
            raise exc.cause from None
    except (StoreError, KeyError_) as exc:
        fail(str(exc), EXIT_REVOKED if isinstance(exc, VaultWiped) else 1)
    report = outcome.report
    if as_json:
        emit_json(outcome.as_dict())
        return
    res = ", ".join(f"{n} {s}" for s, n in sorted(report.results.items())) or "nothing to send"
    lines = [f"pushed {report.pushed} ({res}); pulled {report.pulled_customers} customers, "
             f"{report.pulled_visits} visits; evicted {report.evicted}"]
    if outcome.needs_attention:
        lines.append(f"{outcome.needs_attention} change(s) need attention: see `fieldvault status`")
    if outcome.returned or outcome.pool_warnings:
        lines.append(f"{outcome.returned} returned by your manager, {outcome.pool_warnings} "
                     "pool warning(s): see `fieldvault status`")
    sys.stdout.write("".join(line + "\n" for line in lines))


def _sync_fast(home: Path | None, as_json: bool) -> None:
    """The typer-less `fieldvault sync`, failing as run_app would: a full disk is one line."""
    from schema.output import exit_if_disk_full

    from .home import default_home

    try:
        sync_command(home if home is not None else default_home(), as_json)
    except Exception as exc:
        exit_if_disk_full(exc)
        raise


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["sync"] and (plain := plain_sync_args(argv[1:])) is not None:
        _sync_fast(*plain)
        raise SystemExit(0)
    from .cli import main as typer_main

    typer_main()


if __name__ == "__main__":
    main()
