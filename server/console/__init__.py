"""The staff console at /console: server-rendered pages over the same Archive methods
as the staff API (see README.md in this folder for how to add a page).

`install(app)` mounts it: every module in `server/console/pages/` with a `router`
is included (its `MENU` entries join the menu), the static files are served under
/console/static, every /console response carries SECURITY_HEADERS, and refusals under
/console are pages, not JSON."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schema.web import SECURITY_HEADERS, Pages

from ..archive import ArchiveError
from . import pages as pages_pkg
from .kit import HERE, PREFIX, Refusal, SignInNeeded, gettext_of, render
from .menu import N_, Entry

_STATUS = {"invalid": 400, "not_found": 404, "conflict": 409, "forbidden": 403,
           "unavailable": 503}


def page_modules() -> list[Any]:
    """Every page module, by name (each owns its routes, templates and menu entries)."""
    return [importlib.import_module(f"{pages_pkg.__name__}.{m.name}")
            for m in sorted(pkgutil.iter_modules(pages_pkg.__path__), key=lambda m: m.name)]


def install(app: FastAPI) -> None:
    app.state.console_pages = Pages(HERE / "templates", HERE / "locale")
    menu: list[Entry] = []
    for module in page_modules():
        app.include_router(module.router, prefix=PREFIX, include_in_schema=False)
        menu.extend(getattr(module, "MENU", ()))
    app.state.console_menu = sorted(menu, key=lambda e: (e.order, e.path))
    app.mount(PREFIX + "/static", StaticFiles(directory=HERE / "static"), name="console-static")

    app.add_middleware(ConsoleHeaders)
    _pages_for_errors(app)


class ConsoleHeaders:
    """SECURITY_HEADERS on every /console response (pages, refusals, static files).
    Plain ASGI: the API's requests pass straight through, untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == PREFIX or path.startswith(PREFIX + "/")):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _console(request: Request) -> bool:
    return request.url.path.startswith(PREFIX + "/") or request.url.path == PREFIX


def _pages_for_errors(app: FastAPI) -> None:
    """Under /console a refusal is a page in the reader's language; elsewhere the API's
    JSON handlers answer as before."""
    previous = dict(app.exception_handlers)

    def error_page(request: Request, status: int, message: str, detail: str = "") -> Response:
        return render(request, "error.html", code=status, message=message, detail=detail)

    @app.exception_handler(SignInNeeded)
    async def _sign_in(request: Request, exc: SignInNeeded) -> Response:
        return RedirectResponse(f"{PREFIX}/sign-in?next={quote(exc.path)}", status_code=303)

    @app.exception_handler(Refusal)
    async def _refused(request: Request, exc: Refusal) -> Response:
        return error_page(request, exc.status, gettext_of(request)(exc.message) % exc.values
                          if exc.values else gettext_of(request)(exc.message))

    def chained(kind: type[Exception], page: Callable[[Request, Any], Response]) -> None:
        before = previous.get(kind)

        async def handler(request: Request, exc: Any) -> Any:
            if _console(request) or before is None:
                return page(request, exc)
            return await before(request, exc)

        app.add_exception_handler(kind, handler)

    chained(ArchiveError, lambda r, e: error_page(
        r, _STATUS.get(e.kind, 400), gettext_of(r)(N_("The archive refused this:")), e.message))
    chained(RequestValidationError, lambda r, e: error_page(
        r, 422, gettext_of(r)(N_("Some fields of this form are missing or invalid."))))
    chained(StarletteHTTPException, lambda r, e: error_page(
        r, e.status_code, gettext_of(r)(N_("Page not found.") if e.status_code == 404
                                         else N_("This request was refused."))))
