"""What every console page uses: who is signed in (`page_require`), CSRF on every
form, rendering a template in the reader's language with the role's menu, and the
refusals a page answers with.

A page route:

    Manager = Annotated[StaffMember, page_require("visit.review")]

    @router.get("/approvals")
    async def approvals(request: Request, who: Manager, archive: ArchiveDep) -> Response:
        rows = await run_in_threadpool(archive.review_page, who.name)
        return render(request, "approvals.html", rows=rows)

`page_require(action)` answers a request without a live session with a redirect to the
sign-in page, one whose role may not do `action` with a 403 page, and a POST (any
method but GET/HEAD) without this session's CSRF token with a 403 page, before the
route runs. The archive call then authorizes again (a manager's team), as for the API.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from schema.web import (
    CSRF_FIELD,
    CSRF_HEADER,
    LOCALE_COOKIE,
    Pages,
    csrf_ok,
    csrf_token,
    negotiate,
)

from ..rules import Archive
from ..rules.access import MATRIX, StaffMember
from ..rules.archive_console import ConsoleSession
from .menu import N_, Entry

PREFIX = "/console"
HERE = Path(__file__).parent
SESSION_COOKIE = "fv_console"
# Before sign-in there is no session to bind a CSRF token to: the sign-in form's token
# is bound to this random cookie instead (a page of another site can neither read nor
# set it, so it cannot post a sign-in as someone else: login CSRF).
PRE_COOKIE = "fv_console_pre"
SAFE_METHODS = frozenset({"GET", "HEAD"})

# The archive's codes shown on pages, in the reader's language (`word(code)` in templates).
WORDS = {
    "new_development": N_("New customer"), "market_research": N_("Market research"),
    "collection": N_("Collection"), "service": N_("Service"), "complaint": N_("Complaint"),
    "order": N_("Order"), "other": N_("Other"), "draft": N_("Draft"),
    "submitted": N_("Submitted"), "approved": N_("Approved"), "returned": N_("Returned"),
    "void": N_("Void"), "pending": N_("Pending"), "verified": N_("Verified"),
    "disputed": N_("Disputed"), "done": N_("Done"), "missed": N_("Missed"), "open": N_("Open"),
}

ROLE_NAMES = {"admin": N_("Admin"), "manager": N_("Manager"), "verifier": N_("Verifier"),
              "hr": N_("HR")}


class SignInNeeded(Exception):
    """No live session: the answer is the sign-in page, coming back here after."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


class Refusal(Exception):
    """A page-level refusal shown as a page: `message` is an English msgid (N_),
    translated when shown, formatted with `values`."""

    def __init__(self, status: int, message: str, **values: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.values = values


def archive_of(request: Request) -> Archive:
    return request.app.state.archive  # type: ignore[no-any-return]


def pages_of(request: Request) -> Pages:
    return request.app.state.console_pages  # type: ignore[no-any-return]


def locale_of(request: Request) -> str:
    return negotiate(request.cookies.get(LOCALE_COOKIE), request.headers.get("accept-language"))


def gettext_of(request: Request) -> Callable[[str], str]:
    """`_` for messages built in Python, in the reader's language."""
    return pages_of(request).gettext(locale_of(request)).gettext


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


async def session_of(request: Request) -> ConsoleSession | None:
    """The request's live session (looked up once per request)."""
    if not hasattr(request.state, "console_session"):
        token = request.cookies.get(SESSION_COOKIE, "")
        request.state.console_session = (
            await run_in_threadpool(archive_of(request).console_session, token) if token else None)
    return request.state.console_session  # type: ignore[no-any-return]


async def sent_csrf(request: Request) -> str | None:
    """The CSRF token a POST carries: the header, else the form field."""
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    if request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()  # cached by Starlette: Form() parameters read it again
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


class PageCheck:
    """The dependency behind `page_require`: the signed-in person, allowed `action`."""

    def __init__(self, action: str) -> None:
        if action not in MATRIX:
            raise ValueError(f"unknown action {action!r}")  # a typo fails at import time
        self.action = action

    async def __call__(self, request: Request) -> StaffMember:
        session = await session_of(request)
        if session is None:
            raise SignInNeeded(request.url.path if request.method in SAFE_METHODS else PREFIX + "/")
        if request.method not in SAFE_METHODS:
            token = await sent_csrf(request)
            if not csrf_ok(session.csrf_key.encode(), session.id, token):
                raise Refusal(403, N_("This form has expired or did not come from the console. "
                                      "Reload the page and try again."))
        if session.who.role not in MATRIX[self.action]:
            raise Refusal(403, N_("Your role may not open this page or do this."))
        return session.who


def page_require(action: str) -> Any:
    """`who: Annotated[StaffMember, page_require("visit.review")]` in a console route."""
    return Depends(PageCheck(action))


def menu_for(request: Request, who: StaffMember | None) -> list[dict[str, Any]]:
    if who is None:
        return []
    _ = gettext_of(request)
    entries: list[Entry] = request.app.state.console_menu
    here = request.url.path
    return [{"href": PREFIX + e.path, "label": _(e.label),
             "current": here == PREFIX + e.path or (e.path != "/" and here.startswith(PREFIX + e.path + "/"))}
            for e in entries if who.role in MATRIX[e.action]]


def render(request: Request, template: str, code: int = 200, **context: Any) -> HTMLResponse:
    """The template in the reader's language, with the layout's context: who is
    signed in, their menu, the CSRF token of their session."""
    session: ConsoleSession | None = getattr(request.state, "console_session", None)
    who = session.who if session else None
    _ = gettext_of(request)
    context.setdefault("csrf", csrf_token(session.csrf_key.encode(), session.id) if session else "")
    html = pages_of(request).render(
        locale_of(request), template, who=who, menu=menu_for(request, who), prefix=PREFIX,
        role_name=_(ROLE_NAMES[who.role.value]) if who else "", csrf_field=CSRF_FIELD,
        word=lambda code: _(WORDS[code]) if code in WORDS else (code or ""),
        here=quote(request.url.path + (f"?{request.url.query}" if request.url.query else "")),
        **context)
    return HTMLResponse(html, status_code=code)


def redirect(path: str) -> Response:
    """After a form: see the result with a GET (reloading does not post again)."""
    return RedirectResponse(path, status_code=303)


def safe_next(path: str | None) -> str:
    """Where to go after sign-in or a language switch: a console path, nothing else
    (no other site, no `//host`)."""
    if path and path.startswith(PREFIX) and not path.startswith("//") and "\\" not in path:
        return path
    return PREFIX + "/"


async def call(fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    """An Archive method off the event loop (it blocks on the database)."""
    return await run_in_threadpool(fn, *args, **kw)


def done_note(request: Request, notes: dict[str, str]) -> str:
    """The status message after a form (`?done=KEY&n=COUNT`), translated; '' for none."""
    message = notes.get(request.query_params.get("done", ""))
    if message is None:
        return ""
    n = request.query_params.get("n", "")
    return gettext_of(request)(message) % {"n": int(n) if n.isdigit() else 0}
