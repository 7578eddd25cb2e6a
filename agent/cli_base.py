"""What every `fieldvault` command group shares: the common options, opening the
vault, and turning each way a command can fail into one line and its exit code.

Light by rule (tests/test_startup.py): the vault store, the models and the HTTP
client are imported inside the helpers that need them. What needs no typer lives in
cli_core (re-exported here): the typer-less `fieldvault sync` uses it too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from schema.output import TABLE_ROWS, fail, validation_message

from .cli_core import (
    EXIT_OFFLINE,
    EXIT_REVOKED,
    config_of,
    pin_of,
    server_errors,
    validation_error,
    vault,
)
from .home import default_home

__all__ = ["EXIT_OFFLINE", "EXIT_REVOKED", "EXTRA", "HomeOpt", "JsonOpt", "LimitOpt", "config_of",
           "pin_of", "server_errors", "validate", "validation_error", "vault"]

HomeOpt = Annotated[Path, typer.Option("--home", help="Agent home "
                                       "[default: $FIELDVAULT_HOME or ~/.fieldvault]",
                                       default_factory=default_home, show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
LimitOpt = Annotated[int | None, typer.Option(
    "--limit", min=0, help="Show at most N rows; 0 = all [default: all with --json, "
    f"else the first {TABLE_ROWS}, with a note when some are left out]", show_default=False)]
EXTRA = {"allow_extra_args": True, "ignore_unknown_options": True}


def validate(model: Any, data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except validation_error() as exc:
        fail(validation_message(exc))
