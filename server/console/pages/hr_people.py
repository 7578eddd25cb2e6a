"""HR (人力资源): people and their laptops (state, last check-in, lease deadlines, wipe
order and receipt), and the tokens the HR system calls /v1/hr with."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from ...rules.access import StaffMember
from ..kit import PREFIX, archive_of, call, done_note, page_require, redirect, render
from ..menu import N_, Entry
from ..ops_terms import term_of

router = APIRouter()
MENU = [Entry("/hr/people", N_("People and laptops"), "departure.manage", order=60),
        Entry("/hr/tokens", N_("HR tokens"), "hr_token.manage", order=62)]
HR = Annotated[StaffMember, page_require("departure.manage")]
Tokens = Annotated[StaffMember, page_require("hr_token.manage")]
NOTES = {"revoked": N_("Token revoked: the HR system can no longer use it.")}
NO_STORE = {"Cache-Control": "no-store"}


@router.get("/hr/people")
async def people(request: Request, who: HR) -> Response:
    rows = await call(archive_of(request).people, who.name)
    return render(request, "hr_people.html", people=rows, term=term_of(request))


@router.get("/hr/tokens")
async def tokens(request: Request, who: Tokens) -> Response:
    rows = await call(archive_of(request).hr_tokens, who.name)
    return render(request, "hr_tokens.html", tokens=rows, issued=None,
                  note=done_note(request, NOTES))


@router.post("/hr/tokens")
async def issue(request: Request, who: Tokens,
                token_name: Annotated[str, Form(min_length=1, max_length=100)]) -> Response:
    archive = archive_of(request)
    token = await call(archive.issue_hr_token, token_name, who.name)
    rows = await call(archive.hr_tokens, who.name)
    # Shown this once, in this answer: never cached, never in a URL.
    response = render(request, "hr_tokens.html", tokens=rows,
                      issued={"name": token_name.strip(), "token": token})
    response.headers.update(NO_STORE)
    return response


@router.post("/hr/tokens/revoke")
async def revoke(request: Request, who: Tokens,
                 token_name: Annotated[str, Form(min_length=1, max_length=100)]) -> Response:
    await call(archive_of(request).revoke_hr_token, token_name, who.name)
    return redirect(f"{PREFIX}/hr/tokens?done=revoked")
