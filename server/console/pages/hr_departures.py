"""HR's departure flow: pick the rep, when (now or a date), where their customers go
(a successor, their manager, their team, the pool); a preview that writes nothing
("23 customers: 8 to 李伟, 8 to 张敏, 7 to 王芳"); confirm; then the departure report,
printable (the console's print stylesheet drops the menus and forms)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from ...rules.access import StaffMember
from ..kit import PREFIX, archive_of, call, done_note, gettext_of, page_require, redirect, render
from ..menu import N_, Entry
from ..ops_terms import term_of

router = APIRouter()
MENU = [Entry("/hr/departures", N_("Departures"), "departure.manage", order=61)]
HR = Annotated[StaffMember, page_require("departure.manage")]
NOTES = {"recorded": N_("Departure recorded."), "scheduled": N_("Departure scheduled.")}
Rep = Annotated[str, Form(min_length=1, max_length=200)]
Mode = Annotated[str, Form(min_length=1, max_length=200)]
When = Annotated[str, Form(max_length=40)]
Reason = Annotated[str, Form(min_length=1, max_length=500)]


def effective(when: str) -> str | None:
    """A datetime-local field (no zone: taken as UTC, as the form says), or now."""
    when = when.strip()
    return when or None


def reassign(mode: str, successor: str) -> str:
    return successor if mode == "successor" else mode


def summary(request: Request, preview: dict[str, Any]) -> str:
    """"23 customers: 8 to 李伟, 8 to 张敏, 7 to 王芳" in the reader's language."""
    _ = gettext_of(request)
    shares = [_("%(count)d to %(name)s") % {"count": t["count"], "name": t["name"]}
              for t in preview["to"]]
    if preview["to_pool"]:
        shares.append(_("%(count)d to the pool") % {"count": preview["to_pool"]})
    if not shares:
        return _("%(n)d customers: nothing to reassign.") % {"n": preview["customers"]}
    return _("%(n)d customers: %(shares)s") % {"n": preview["customers"],
                                                "shares": _(", ").join(shares)}


async def _form(request: Request, who: StaffMember, **extra: Any) -> Response:
    people = await call(archive_of(request).people, who.name)
    gone = await call(archive_of(request).departures_list, who.name)
    return render(request, "hr_departures.html", reps=[p for p in people if p["active"]],
                  departures=gone, term=term_of(request), note=done_note(request, NOTES), **extra)


@router.get("/hr/departures")
async def departures(request: Request, who: HR) -> Response:
    return await _form(request, who, preview=None, ask=None)


@router.post("/hr/departures/preview")
async def preview(request: Request, who: HR, rep: Rep, mode: Mode, reason: Reason,
                  successor: Annotated[str, Form(max_length=200)] = "",
                  effective_at: When = "") -> Response:
    target = reassign(mode, successor)
    seen = await call(archive_of(request).departure_preview, rep, target, who.name,
                      effective(effective_at))
    ask = {"rep": rep, "reassign_to": target, "reason": reason, "effective_at": effective_at}
    return await _form(request, who, preview=seen, summary=summary(request, seen), ask=ask)


@router.post("/hr/departures")
async def confirm(request: Request, who: HR, rep: Rep, reassign_to: Mode, reason: Reason,
                  effective_at: When = "") -> Response:
    done = await call(archive_of(request).depart, rep, reason, reassign_to,
                      effective(effective_at), who.name, "console")
    kind = "scheduled" if done["status"] == "scheduled" else "recorded"
    return redirect(f"{PREFIX}/hr/departures/{quote(done['rep_id'])}?done={kind}")


@router.get("/hr/departures/{rep}")
async def report(request: Request, who: HR, rep: str) -> Response:
    data = await call(archive_of(request).departure_report_for, rep, who.name)
    return render(request, "hr_departure_report.html", report=data, term=term_of(request),
                  note=done_note(request, NOTES))
