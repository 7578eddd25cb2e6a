"""The local web app: one rep, one laptop, 127.0.0.1 only.

Who may talk to it: the browser that opened the launch URL. Its one-time token is
exchanged for an HttpOnly, SameSite=Strict session cookie; every other request
without that cookie gets 401. The Host header must name us (DNS rebinding), every
POST carries the session's CSRF token, and every answer the strict security headers.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

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
# Pages that show what happened even when the vault cannot be opened.
STATE_FREE = ("/static/", "/lang", "/sync/state", "/sync/now")


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


def _refusal(ui: UI, request: Request, status: int, code: str, message: str) -> Response:
    """A refusal as JSON for fetch() callers, else as a small page."""
    text = ui.gettext(request)(message)
    if "application/json" in request.headers.get("accept", "") or request.url.path.startswith("/api"):
        return JSONResponse({"error": code, "message": text}, status_code=status)
    return ui.render(request, "refused.html", status_code=status, message=text)


def create_app(ui: UI) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ui = ui

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await _guarded(ui, request, call_next)
        for k, v in web.SECURITY_HEADERS.items():
            response.headers[k] = v
        return response

    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.get(LAUNCH_PATH)
    def launch(request: Request, token: str = "") -> Response:
        session = ui.exchange(token)
        if session is None:
            return _refusal(ui, request, 401, "launch_token", _(
                "This link was already used or is wrong: start FieldVault again with "
                "`fieldvault ui` and open the address it prints."))
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="strict",
                            path="/")
        return response

    from . import routes_customers, routes_day, routes_sync, routes_visits

    for module in (routes_day, routes_customers, routes_visits, routes_sync):
        app.include_router(module.router)
    return app


async def _guarded(ui: UI, request: Request,
                   call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    if not web.host_allowed(request.headers.get("host"), ui.allowed_hosts):
        return JSONResponse({"error": "bad_host", "message": "wrong Host header"}, status_code=421)
    path = request.url.path
    if path == LAUNCH_PATH or path.startswith("/static/"):
        return await call_next(request)
    session = request.cookies.get(SESSION_COOKIE)
    if not ui.session_ok(session):
        return _refusal(ui, request, 401, "no_session", _(
            "Open FieldVault from the address `fieldvault ui` printed: this browser has no "
            "session."))
    if request.method not in ("GET", "HEAD"):
        token = request.headers.get(web.CSRF_HEADER)
        if token is None and request.headers.get("content-type", "").startswith(
                ("application/x-www-form-urlencoded", "multipart/form-data")):
            token = await _form_token(request)
        if not web.csrf_ok(ui.csrf_key, session or "", token):
            return _refusal(ui, request, 403, "csrf", _(
                "This form is out of date or did not come from FieldVault: reload the page "
                "and try again."))
    if not path.startswith(STATE_FREE):
        state = ui.state()
        if state in ("wiped", "blocked", "none"):
            ui.close_store()
            return ui.render(request, "wiped.html" if state == "wiped" else "blocked.html",
                             status_code=200 if request.method == "GET" else 409,
                             lease=_lease(ui))
    return await call_next(request)


async def _form_token(request: Request) -> str | None:
    """The CSRF field of a form body. The body is read (and so cached for the route)
    and parsed on a copy of the request: a stream read here would leave none below."""
    body = await request.body()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async with Request(request.scope, receive).form() as form:
        value = form.get(web.CSRF_FIELD)
    return value if isinstance(value, str) else None


def _lease(ui: UI) -> dict[str, Any]:
    from .. import keystore

    try:
        return keystore.status(ui.home, ui.clock).as_dict()
    except Exception:  # a damaged or removed keyring: the screen says what it can
        return {}
