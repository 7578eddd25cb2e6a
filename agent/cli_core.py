"""What `fieldvault` commands share that needs no typer: the exit codes, the agent's
config, the PIN, opening the vault, and one line per way a talk with the server fails.

Kept apart from cli_base (the typer options) so that `fieldvault sync`, which a timer
runs every few minutes, and `fieldvault enroll --json` can be dispatched without
building the typer app (agent/cli_main.py). tests/test_startup.py keeps typer out of
those paths.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from schema.output import fail, validation_message

from . import wipe
from .home import AgentConfig, ConfigDamaged
from .keystore import KeyError_, VaultWiped, needs_pin

if TYPE_CHECKING:
    from .store import Store

EXIT_OFFLINE = 2
EXIT_REVOKED = 3


def config_of(home: Path) -> AgentConfig:
    if (home / wipe.WIPED_MARKER).exists():
        fail(f"{home} was revoked and wiped; nothing is left here. Ask your admin "
             "for a new enrollment if you still work for the company", EXIT_REVOKED)
    try:
        config = AgentConfig.load(home)
    except ConfigDamaged as exc:
        fail(str(exc))
    if config is None:
        fail(f"{home} is not enrolled: run `fieldvault enroll --server URL --code CODE`")
    return config


def pin_of(home: Path) -> str | None:
    """The rep's PIN when the vault needs one: $FIELDVAULT_PIN, else asked on a terminal."""
    pin = os.environ.get("FIELDVAULT_PIN")
    if pin:
        return pin
    try:
        needed = needs_pin(home)
    except KeyError_:
        return None  # a damaged keyring: opening the vault says so
    if needed and sys.stdin.isatty():
        import typer  # only to ask: a timer's sync has no terminal

        return str(typer.prompt("FieldVault PIN", hide_input=True))
    return None


@contextmanager
def server_errors(what: str) -> Iterator[None]:
    """One line and the documented exit code for each way a talk with the server fails."""
    from .transport import Offline, ServerRefused, UntrustedResponse

    try:
        yield
    except Offline as exc:  # ServerUnavailable too: the server cannot store data now
        fail(f"{exc}; your data is kept on this laptop, sync again later", EXIT_OFFLINE)
    except ServerRefused as exc:
        # Never exit 3 here, even for a 403: 3 means the local copy was wiped, and
        # nothing was (a revocation that leads to a wipe is handled by the caller).
        fail(f"server refused the {what}: {exc.message}")
    except UntrustedResponse as exc:
        fail(str(exc))


@contextmanager
def vault(home: Path) -> Iterator[Store]:
    """The open vault; a refusal inside the block (StoreError, a bad field) ends the
    command with its one line."""
    from .store import Store, StoreError

    config = config_of(home)
    try:
        store = Store.open(home, config.rep_id, pin=pin_of(home))
    except VaultWiped as exc:
        fail(str(exc), EXIT_REVOKED)
    except (StoreError, KeyError_) as exc:
        fail(str(exc))
    try:
        yield store
    except StoreError as exc:
        fail(str(exc))
    except validation_error() as exc:  # evaluated only when something was raised
        fail(validation_message(exc))
    finally:
        store.close()


def validation_error() -> type[Exception]:
    from pydantic import ValidationError

    return ValidationError
