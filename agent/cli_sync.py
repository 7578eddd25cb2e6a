"""`fieldvault sync` itself, without typer: run by the typer-less entry point
(agent/cli_main.py) for a plain `sync`, and by the typer app's `sync` command."""

from __future__ import annotations

import sys
from pathlib import Path


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
    if report.awaiting_verdict:
        lines.append(f"{report.awaiting_verdict} change(s) are safe on the server and still being "
                     "checked: their results come with a later sync")
    if outcome.needs_attention:
        lines.append(f"{outcome.needs_attention} change(s) need attention: see `fieldvault status`")
    if outcome.returned or outcome.pool_warnings:
        lines.append(f"{outcome.returned} returned by your manager, {outcome.pool_warnings} "
                     "pool warning(s): see `fieldvault status`")
    sys.stdout.write("".join(line + "\n" for line in lines))
