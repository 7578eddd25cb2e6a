"""Start the local UI (and, for `fieldvault run`, the background sync) on 127.0.0.1."""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..home import AgentConfig
from ..runner import Runner, Schedule, Service

if TYPE_CHECKING:
    from .context import UI


def bind(port: int) -> socket.socket:
    """A listening socket on loopback only (port 0: any free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(64)
    sock.set_inheritable(True)
    return sock


def background_services(home: Path, ui: UI, runner: Runner) -> list[Service]:
    """What else `fieldvault run` keeps going beside the sync thread. The attachment
    inbox watcher (agent/inbox.py) is added here: it gets the home, the UI (to offer
    what it took in) and the runner (to sync after it)."""
    from .attach import InboxService

    return [InboxService(ui)]


def build_missing_index(ui: UI) -> None:
    """A search index a first sync left to build (its builder killed, or never started)
    is built now, by a detached process: searches scan until it is ready."""
    from ..keystore import KeyError_
    from ..search_index import build_detached
    from ..store import StoreError

    try:
        with ui.store() as store:
            missing = not store.search_index_ready()
    except (KeyError_, StoreError):
        return  # not enrolled, blocked or wiped: the pages say so
    if missing:
        build_detached(ui.home, ui.pin)


def serve(home: Path, config: AgentConfig, port: int, open_browser: bool, auto: bool,
          pin: str | None, schedule: Schedule | None = None) -> None:
    import uvicorn

    from .app import create_app
    from .context import UI

    sock = bind(port)
    ui = UI(home, config, sock.getsockname()[1], pin=pin)
    runner = Runner(home, config, ui.clock, schedule, auto=auto, pin=pin,
                    before_wipe=ui.close_store, pending=ui.pending_count)
    ui.runner = runner
    if auto:
        for svc in background_services(home, ui, runner):
            runner.add_service(svc)
    app = create_app(ui)
    build_missing_index(ui)
    print(f"FieldVault is running at {ui.launch_url}", flush=True)  # noqa: T201 - the one line
    if open_browser:
        import webbrowser

        webbrowser.open(ui.launch_url)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                           lifespan="off"))
    runner.start()
    try:
        server.run(sockets=[sock])
    finally:
        runner.stop()
        ui.close_store()
        sys.stdout.flush()
