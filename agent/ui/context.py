"""What every page of the local UI shares: the agent home, the open vault, the
renderer, the launch token and the sessions (the UI object routes reach through
`request.app.state.ui`)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse

from schema import web
from schema.clock import Clock, SystemClock

from .. import service
from ..home import AgentConfig

if TYPE_CHECKING:
    from ..runner import Runner
    from ..store import Store

HERE = Path(__file__).parent
SESSION_COOKIE = "fv_session"
LAUNCH_PATH = "/launch"


def _(text: str) -> str:
    """Marks a string for extraction; it is translated where it is shown."""
    return text


class UI:
    """What the pages share: the agent home, the open vault (one connection, one lock:
    sqlite serialises writers anyway), the page renderer, sessions and the runner."""

    def __init__(self, home: Path, config: AgentConfig, port: int, clock: Clock | None = None,
                 tz: tzinfo | None = None, pin: str | None = None) -> None:
        self.home = home
        self.config = config
        self.port = port
        self.clock = clock or SystemClock()
        self.tz = tz or datetime.now().astimezone().tzinfo
        self.pin = pin
        self.pages = web.Pages(HERE / "templates", HERE / "locale", self.tz)
        self.csrf_key = web.new_secret().encode()
        self.launch_token = web.new_secret()
        self._launch_digest: str | None = web.token_digest(self.launch_token)
        self._sessions: set[str] = set()
        self.allowed_hosts = [f"127.0.0.1:{port}", f"localhost:{port}"]
        self._store: Store | None = None
        self.lock = threading.RLock()
        self.runner: Runner | None = None

    # --- the launch token and sessions ------------------------------------------------

    @property
    def launch_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{LAUNCH_PATH}?token={quote(self.launch_token)}"

    def exchange(self, token: str | None) -> str | None:
        """A new session id for the launch token, once; None for anything else."""
        import hmac

        if not token or self._launch_digest is None:
            return None
        if not hmac.compare_digest(web.token_digest(token), self._launch_digest):
            return None
        self._launch_digest = None  # one-time
        session = web.new_secret()
        self._sessions.add(web.token_digest(session))
        return session

    def session_ok(self, session: str | None) -> bool:
        return bool(session) and web.token_digest(session or "") in self._sessions

    # --- the vault --------------------------------------------------------------------

    def state(self) -> str:
        return service.device_state(self.home, self.clock)

    @contextmanager
    def store(self) -> Iterator[Store]:
        """The open vault, under the lock."""
        from ..store import Store

        with self.lock:
            if self._store is None:
                self._store = Store.open(self.home, self.config.rep_id, self.clock, self.pin)
            yield self._store

    def revoked(self) -> bool:
        """Wiped on the company's order (not by a lapsed lease)."""
        from ..wipe import WIPED_MARKER

        return (self.home / WIPED_MARKER).exists()

    def enforce_lease(self) -> None:
        """Past a deadline, what opening the vault enforces (the lease secret dropped
        when blocked, the vault destroyed when past the wipe deadline) happens now,
        not at the next CLI command."""
        from ..keystore import KeyError_
        from ..store import Store, StoreError

        if self.revoked():
            return
        try:
            Store.open(self.home, self.config.rep_id, self.clock, self.pin).close()
        except (KeyError_, StoreError):
            pass

    def close_store(self) -> None:
        with self.lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    def pending_count(self) -> int | None:
        """Changes waiting to go up (None when the vault is closed or gone)."""
        if self.state() != "active":
            return None
        try:
            with self.store() as store:
                return store.outbox_counts().get("pending", 0)
        except Exception:  # a vault that will not open now: the page says so elsewhere
            return None

    def saved(self) -> None:
        """A change was saved: the runner syncs it soon, in the background."""
        if self.runner is not None:
            self.runner.poke()

    # --- rendering --------------------------------------------------------------------

    def locale(self, request: Request) -> str:
        return web.negotiate(request.cookies.get(web.LOCALE_COOKIE),
                             request.headers.get("accept-language"))

    def gettext(self, request: Request) -> Callable[[str], str]:
        return self.pages.gettext(self.locale(request)).gettext

    def render(self, request: Request, name: str, status_code: int = 200,
               **ctx: Any) -> HTMLResponse:
        session = request.cookies.get(SESSION_COOKIE, "")
        html = self.pages.render(
            self.locale(request), name, request=request, path=request.url.path,
            csrf_field=web.CSRF_FIELD,
            csrf=web.csrf_token(self.csrf_key, session) if session else "",
            rep_name=self.config.rep_name, rep_id=self.config.rep_id,
            sync_state=self.runner.snapshot() if self.runner else {},
            **ctx)
        return HTMLResponse(html, status_code=status_code)




def ui_of(request: Request) -> UI:
    ui: UI = request.app.state.ui
    return ui
