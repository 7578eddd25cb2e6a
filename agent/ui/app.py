"""The local web app: one rep, one laptop, 127.0.0.1 only.

Who may talk to it: the browser that opened the launch URL. Its one-time token is
exchanged for an HttpOnly, SameSite=Strict session cookie; every other request
without that cookie gets 401. The Host header must name us (DNS rebinding), every
POST carries the session's CSRF token, and every answer the strict security headers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from schema import web

from . import attach, routes_customers, routes_day, routes_sync, routes_visits
from .context import HERE, LAUNCH_PATH, SESSION_COOKIE, UI, _

# Pages that show what happened even when the vault cannot be opened.
STATE_FREE = ("/static/", "/lang", "/sync/state", "/sync/now")


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

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        # Never a stack on a page: the rep's work is saved or it was refused before.
        response = _refusal(ui, request, 500, "internal", _(
            "Something went wrong on this page. Your saved work is safe; go back and try again."))
        for k, v in web.SECURITY_HEADERS.items():
            response.headers[k] = v
        return response

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

    for module in (routes_day, routes_customers, routes_visits, routes_sync):
        app.include_router(module.router)
    attach.install(app)
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
            ui.enforce_lease()
            return ui.render(request, "wiped.html" if state == "wiped" else "blocked.html",
                             status_code=200 if request.method == "GET" else 409,
                             lease=_lease(ui), revoked=ui.revoked())
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
