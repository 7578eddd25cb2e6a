"""`fieldvault`'s entry point: `fieldvault sync` without typer, anything else through
the typer app (agent/cli.py).

A sync with nothing new is what a timer runs every few minutes, and most of its time
was start-up: importing typer and building the whole command tree (every command's
options, inspected from its signature) cost ~60 ms of a ~0.4 s no-op sync. Here a
sync whose arguments are only `--home DIR` and `--json` runs `sync_command` directly;
any other argument (`--help`, a typo, an option added later) goes to the typer app,
which stays the reference for parsing, help and usage errors, and whose `sync`
command runs the same `sync_command` (agent/cli_sync.py). tests/test_startup.py
checks both paths.
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


def _sync_fast(home: Path | None, as_json: bool) -> None:
    """The typer-less `fieldvault sync`, failing as run_app would: a full disk is one line."""
    from schema.output import exit_if_disk_full

    from .cli_sync import sync_command
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
