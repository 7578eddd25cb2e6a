"""The call-back queue (电话回访): one visit at a time with the customer's phone and
decision maker; verified or disputed with a note; then the next. And the verifier's
own throughput."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from ...rules.access import StaffMember
from ..kit import PREFIX, archive_of, call, done_note, page_require, redirect, render
from ..menu import N_, Entry

router = APIRouter()
MENU = [Entry("/callbacks", N_("Call-backs"), "callback.work", order=40)]
Caller = Annotated[StaffMember, page_require("callback.work")]
NOTES = {"verified": N_("Recorded as verified. Next visit:"),
         "disputed": N_("Recorded as disputed; the rep's manager sees it. Next visit:")}


@router.get("/callbacks")
async def queue(request: Request, who: Caller) -> Response:
    archive = archive_of(request)
    waiting = await call(archive.callback_queue, by=who.name, limit=1)
    throughput = await call(archive.callback_throughput, who.name)
    return render(request, "callbacks.html", visit=waiting[0] if waiting else None,
                  throughput=throughput, note=done_note(request, NOTES))


@router.post("/callbacks/{visit_id}")
async def record(request: Request, who: Caller, visit_id: str,
                 result: Annotated[str, Form(pattern="^(verified|disputed)$")],
                 note: Annotated[str, Form(max_length=1000)] = "") -> Response:
    await call(archive_of(request).record_callback, visit_id, result, note, by=who.name)
    return redirect(f"{PREFIX}/callbacks?done={result}")
