"""Customers (客户) as a manager sees them (their team's and the pool's): a filtered list
paged by card number, a card with its owners and visits, assign, lock (key account),
and distributing the pool's customers with the plan shown before it is applied."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from ...rules.access import StaffMember
from ..kit import PREFIX, archive_of, call, done_note, page_require, redirect, render
from ..menu import N_, Entry

router = APIRouter()
MENU = [Entry("/customers", N_("Customers"), "customer.read", order=20),
        Entry("/distribute", N_("Distribute"), "customer.distribute", order=22)]
Reader = Annotated[StaffMember, page_require("customer.read")]
Assigner = Annotated[StaffMember, page_require("customer.assign")]
Locker = Annotated[StaffMember, page_require("customer.lock")]
Dealer = Annotated[StaffMember, page_require("customer.distribute")]
PAGE = 50
NOTES = {"assigned": N_("Customer assigned."), "locked": N_("Customer locked as a key account."),
         "unlocked": N_("Customer unlocked."), "distributed": N_("Customers distributed: %(n)s.")}


def _flag(value: str) -> bool | None:
    return {"yes": True, "no": False}.get(value)


@router.get("/customers")
async def customers(request: Request, who: Reader, owner: str = "", grade: str = "",
                    pool: str = "", locked: str = "", days: str = "", after: str = "") -> Response:
    archive = archive_of(request)
    not_visited = int(days) if days.isdigit() else None
    rows = await call(archive.customers_page, who.name, owner=owner or None, grade=grade or None,
                      in_pool=_flag(pool), locked=_flag(locked), not_visited_days=not_visited,
                      after=after, limit=PAGE)
    reps = await call(archive.team_reps, who.name)
    filters = {"owner": owner, "grade": grade, "pool": pool, "locked": locked, "days": days}
    query = "&".join(f"{k}={v}" for k, v in filters.items() if v)
    return render(request, "customers.html", rows=rows, reps=reps, filters=filters,
                  more=len(rows) == PAGE, query=query)


@router.get("/customers/{ref}")
async def card(request: Request, who: Reader, ref: str) -> Response:
    archive = archive_of(request)
    file = await call(archive.customer_file, ref, by=who.name)
    reps = await call(archive.team_reps, who.name)
    names = {r["id"]: r["name"] for r in reps}
    return render(request, "customer.html", file=file, reps=reps, names=names,
                  note=done_note(request, NOTES))


@router.post("/customers/{ref}/assign")
async def assign(request: Request, who: Assigner, ref: str,
                 rep: Annotated[str, Form(max_length=200)],
                 reason: Annotated[str, Form(max_length=500)]) -> Response:
    row = await call(archive_of(request).assign_customer, ref, rep or None, reason, by=who.name)
    return redirect(f"{PREFIX}/customers/{row.get('card_no', ref)}?done=assigned")


@router.post("/customers/{ref}/lock")
async def lock(request: Request, who: Locker, ref: str,
               lock: Annotated[str, Form(pattern="^(lock|unlock)$")],
               reason: Annotated[str, Form(max_length=500)] = "") -> Response:
    archive = archive_of(request)
    if lock == "lock":
        await call(archive.lock_customer, ref, by=who.name, reason=reason or "key account")
    else:
        await call(archive.unlock_customer, ref, by=who.name,
                   reason=reason or "no longer a key account")
    return redirect(f"{PREFIX}/customers/{ref}?done={lock}ed")


@router.get("/distribute")
async def distribute_form(request: Request, who: Dealer) -> Response:
    return render(request, "distribute.html", plan=None, note=done_note(request, NOTES))


@router.post("/distribute")
async def distribute(request: Request, who: Dealer,
                     confirm: Annotated[str, Form(pattern="^(preview|apply)$")] = "preview",
                     team: Annotated[str, Form(max_length=200)] = "") -> Response:
    """The pool's customers dealt over a team: first the plan (a dry run, nothing
    written), then the same call applied once the manager confirms it."""
    target = team or who.name
    archive = archive_of(request)
    if confirm == "preview":
        plan = await call(archive.distribute, who.name, None, to_team=target, dry_run=True)
        return render(request, "distribute.html", plan=plan, team=target)
    done = await call(archive.distribute, who.name, None, to_team=target)
    return redirect(f"{PREFIX}/distribute?done=distributed&n={sum(done['assigned'].values())}")
