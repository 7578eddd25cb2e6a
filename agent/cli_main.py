"""`fieldvault`'s entry point: `fieldvault sync` and `fieldvault enroll ... --json`
without typer, anything else through the typer app (agent/cli.py).

A sync with nothing new is what a timer runs every few minutes, and most of its time
was start-up: importing typer and building the whole command tree (every command's
options, inspected from its signature) cost ~60 ms of a ~0.4 s no-op sync. Here a
sync whose arguments are only `--home DIR` and `--json` runs `sync_command` directly;
any other argument (`--help`, a typo, an option added later) goes to the typer app,
which stays the reference for parsing, help and usage errors, and whose `sync`
command runs the same `sync_command` (agent/cli_sync.py). tests/test_startup.py
checks both paths. The same for an enrollment asked for with `--json` and only the
options `enroll` has (agent/cli_enroll.py): a fresh laptop's first sync is timed
from the command's start (issue 10), and typer was ~0.1 s of it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


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


# `enroll`'s options as click reads them: those taking a value, and the flags.
_ENROLL_VALUES = ("--home", "--server", "--code", "--name")
_ENROLL_FLAGS = ("--insecure", "--no-sync", "--json")


def plain_enroll_args(args: list[str]) -> dict[str, Any] | None:
    """`enroll_command`'s arguments when `args` (after `enroll`) are only `enroll`'s
    options (`--opt VALUE` or `--opt=VALUE`, a repeated one's last value winning, as in
    click), with `--server`, `--code` and `--json` given; else None (typer decides)."""
    values: dict[str, str] = {}
    flags: set[str] = set()
    rest = iter(args)
    for arg in rest:
        name, eq, inline = arg.partition("=")
        if arg in _ENROLL_FLAGS:
            flags.add(arg)
        elif name in _ENROLL_VALUES:
            value = inline if eq else next(rest, None)
            if not value or value.startswith("-"):
                return None  # let click say what is wrong
            values[name] = value
        else:
            return None
    if "--json" not in flags or "--server" not in values or "--code" not in values:
        return None
    home = values.get("--home")
    return {"home": Path(home) if home is not None else None, "server": values["--server"],
            "code": values["--code"], "insecure": "--insecure" in flags,
            "name": values.get("--name"), "no_sync": "--no-sync" in flags, "as_json": True}


def _fast(command: Callable[[], None]) -> None:
    """A typer-less command, failing as run_app would: a full disk is one line."""
    from schema.output import exit_if_disk_full

    try:
        command()
    except Exception as exc:
        exit_if_disk_full(exc)
        raise


def _enroll_fast(args: dict[str, Any]) -> None:
    from .cli_enroll import enroll_command
    from .home import default_home

    home = args.pop("home")
    _fast(lambda: enroll_command(home if home is not None else default_home(), **args))


def _sync_fast(home: Path | None, as_json: bool) -> None:
    """The typer-less `fieldvault sync`, failing as run_app would: a full disk is one line."""
    from .cli_sync import sync_command
    from .home import default_home

    _fast(lambda: sync_command(home if home is not None else default_home(), as_json))


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["sync"] and (plain := plain_sync_args(argv[1:])) is not None:
        _sync_fast(*plain)
        raise SystemExit(0)
    if argv[:1] == ["enroll"] and (enroll := plain_enroll_args(argv[1:])) is not None:
        _enroll_fast(enroll)
        raise SystemExit(0)
    from .cli import main as typer_main

    typer_main()


if __name__ == "__main__":
    main()
