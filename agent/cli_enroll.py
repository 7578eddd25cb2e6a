"""`fieldvault enroll` itself, without typer: run by the typer-less entry point
(agent/cli_main.py) for an enrollment asked for with `--json` (scripts, the bench:
issue 10, where importing typer and building the command tree was ~0.1 s of an
enrollment), and by the typer app's `enroll` command for everything else."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .keystore import KeyError_

if TYPE_CHECKING:
    from .home import AgentConfig


def enroll_command(home: Path, server: str, code: str, insecure: bool, name: str | None,
                   no_sync: bool, as_json: bool) -> None:
    """`fieldvault enroll`: enroll this laptop once, with a code from your admin; then a
    first sync brings the rep's customers and visits down. Exit 2 when enrolled but that
    sync failed."""
    from schema.output import emit_json, fail

    from .cli_core import EXIT_OFFLINE, vault
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
        report, problem = _first_sync(home, config, as_json)
        out["first_sync"] = report
    if as_json:
        emit_json(out)
    else:
        import typer

        from schema.output import show

        show({k: v for k, v in out.items() if k != "first_sync"}, False)
        if out.get("first_sync"):
            report = out["first_sync"]
            typer.echo(f"first sync: pulled {report['pulled_customers']} customers, "
                       f"{report['pulled_visits']} visits")
    if problem:
        fail(f"enrolled, but the first sync failed ({problem}); your enrollment stands: "
             "run `fieldvault sync` when the server is reachable", EXIT_OFFLINE)


def _first_sync(home: Path, config: AgentConfig,
                as_json: bool) -> tuple[dict[str, Any] | None, str | None]:
    """The first sync after enrollment, as `fieldvault sync` runs it (the lease is brand
    new, so no check-in first): its report, or why it failed."""
    from schema.output import disk_full

    from . import sync as sync_mod
    from . import wipe
    from .cli_core import pin_of
    from .progress import sync_bar, wanted
    from .store import Store, StoreError
    from .transport import Offline, ServerRefused, UntrustedResponse

    transport = sync_mod.open_transport(home, config)
    try:
        pin = pin_of(home)
        store = Store.open(home, config.rep_id, pin=pin)
        try:
            with sync_bar(wanted(as_json)) as progress:
                # The search index is built after this command reports, by a detached
                # process (agent/search_index.py); searches scan until it is ready.
                report = sync_mod.sync(store, transport, progress, build_index=False).as_dict()
            ready = store.search_index_ready()
        finally:
            store.close()
        report["search_index"] = "ready" if ready else "building"
        if not ready:
            from .search_index import build_detached

            build_detached(home, pin)
        return report, None
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
