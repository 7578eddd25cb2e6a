"""Sign-in, sign-out and the language switch."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from schema.web import LOCALE_COOKIE, LOCALES, csrf_ok, csrf_token

from ...archive.errors import Forbidden
from ...rules.access import StaffMember
from ...rules.archive_console import SESSION_MAX
from ..kit import (
    PRE_COOKIE,
    PREFIX,
    SESSION_COOKIE,
    archive_of,
    gettext_of,
    is_https,
    page_require,
    redirect,
    render,
    safe_next,
)
from ..menu import N_

router = APIRouter()
Signed = Annotated[StaffMember, page_require("self.read")]

_SIGN_IN_PURPOSE = "console-sign-in"


def _sign_in_page(request: Request, pre: str, next_path: str, status: int = 200,
                  message: str = "", detail: str = "", name: str = "") -> Response:
    response = render(request, "sign_in.html", code=status, next=next_path, message=message,
                      detail=detail, user_name=name,
                      csrf=csrf_token(pre.encode(), _SIGN_IN_PURPOSE))
    response.set_cookie(PRE_COOKIE, pre, httponly=True, samesite="strict", secure=is_https(request),
                        path=PREFIX)
    return response


@router.get("/sign-in")
async def sign_in_form(request: Request, next: str = "") -> Response:
    pre = request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(32)
    return _sign_in_page(request, pre, safe_next(next))


@router.post("/sign-in")
async def sign_in(request: Request, name: Annotated[str, Form(max_length=200)],
                  password: Annotated[str, Form(max_length=1024)],
                  csrf_token: Annotated[str, Form(max_length=200)] = "",
                  next: Annotated[str, Form(max_length=2000)] = "") -> Response:
    _ = gettext_of(request)
    pre = request.cookies.get(PRE_COOKIE, "")
    if not pre or not csrf_ok(pre.encode(), _SIGN_IN_PURPOSE, csrf_token):
        return _sign_in_page(request, secrets.token_urlsafe(32), safe_next(next), 403,
                             _("This form has expired. Please sign in again."), name=name)
    try:
        token, _session = await run_in_threadpool(archive_of(request).console_sign_in, name, password)
    except Forbidden as exc:
        message = {
            "locked": N_("This account is locked after too many failed sign-ins. Try again "
                         "later, or ask an admin to set a new password."),
            "user_disabled": N_("This account is disabled."),
        }.get(exc.code, N_("Wrong user name or password."))
        detail = exc.message if exc.code == "locked" else ""
        return _sign_in_page(request, pre, safe_next(next), 403, _(message), detail, name)
    response = redirect(safe_next(next))
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict",
                        secure=is_https(request), path=PREFIX,
                        max_age=int(SESSION_MAX.total_seconds()))
    response.delete_cookie(PRE_COOKIE, path=PREFIX)
    return response


@router.post("/sign-out")
async def sign_out(request: Request, who: Signed) -> Response:
    await run_in_threadpool(archive_of(request).console_sign_out,
                            request.cookies.get(SESSION_COOKIE, ""))
    response = redirect(PREFIX + "/sign-in")
    response.delete_cookie(SESSION_COOKIE, path=PREFIX, httponly=True, samesite="strict",
                           secure=is_https(request))
    return response


@router.get("/language")
async def language(to: str, next: str = "") -> Response:
    """Remember the reader's language (a cookie; no data changes, so a GET link)."""
    response = redirect(safe_next(next))
    if to in LOCALES:
        response.set_cookie(LOCALE_COOKIE, to, samesite="strict", path=PREFIX,
                            max_age=365 * 24 * 3600)
    return response
