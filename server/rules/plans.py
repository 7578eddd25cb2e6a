"""Daily visit plans (每日拜访计划): the rep plans a day offline and submits it; the
manager approves it or returns it with a comment; after the day (or so far today)
the plan is held against the visits actually made.

One plan per rep and day, id `<rep_id>:<day>`; the day is a calendar day in the
company's time zone (rules/days.py). Every change is a new revision (append-only)
and a feed row addressed to the rep, so the laptop sees the plan's status and the
manager's comment at its next pull.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from schema.clock import iso
from schema.enums import PlanStatus
from schema.models import PlanSubmit
from schema.records import to_record

from ..archive.errors import ArchiveError, Conflict, NotFound
from ..archive.store import Store
from . import access, audit, days
from .access import StaffMember

# How far from the company's today a plan's day may be. Yesterday still, for a plan
# made late in the evening and synced the next morning; further back it would only
# be a record of what was done, dressed as a plan.
DAYS_BACK = 1
DAYS_AHEAD = 60
MAX_COMMENT = 2000


class Refused(Exception):
    """A rep's plan the archive will not take; the message is the reason the rep sees."""


def plan_id(rep_id: str, day: str) -> str:
    return f"{rep_id}:{day}"


def _save(store: Store, row: dict[str, Any], author: str, at: str, insert: bool) -> None:
    """Write the plan's new state, its revision and the rep's feed row."""
    if insert:
        store.insert_plan(row)
    else:
        store.update_plan(row)
    store.insert_plan_revision(row, author, at)
    store.append_feed(row["rep_id"], "plan", row["id"], "")


def submit(store: Store, now: datetime, rep_id: str, day_text: str, data: PlanSubmit) -> int:
    """Take the rep's plan for `day_text` (the op's entity_id); returns its revision.

    A first submission creates the plan; a submitted or returned plan has its items
    replaced and is submitted again; an approved plan is refused (the manager returns
    it first). Every customer must be the rep's now. Raises Refused with the reason."""
    if data.day != day_text:
        raise Refused(f"the plan is for {data.day} but the operation names {day_text}")
    tz = days.zone(store)
    try:
        day = days.parse_day(data.day)
    except ArchiveError as exc:
        raise Refused(exc.message) from None
    today = days.today(now, tz)
    first, last = today - timedelta(days=DAYS_BACK), today + timedelta(days=DAYS_AHEAD)
    if not first <= day <= last:
        raise Refused(f"a plan can be made for {first} to {last} (company time, {tz.key}); "
                      f"{day} is outside that")
    _check_customers(store, rep_id, [i.customer_id for i in data.items])
    pid = plan_id(rep_id, data.day)
    old = store.plan(pid)
    if old is not None and old["status"] == PlanStatus.approved:
        raise Refused(f"the plan for {data.day} is approved; ask your manager to return it")
    at = iso(now)
    row: dict[str, Any] = {
        "id": pid, "rep_id": rep_id, "day": data.day, "rev": (old["rev"] if old else 0) + 1,
        "status": PlanStatus.submitted.value, "items": [to_record(i) for i in data.items],
        # A new submission has not been reviewed: the last review's comment stays in
        # the revisions.
        "comment": "", "submitted_at": at, "reviewed_by": None, "reviewed_at": None}
    _save(store, row, rep_id, at, insert=old is None)
    return int(row["rev"])


def _check_customers(store: Store, rep_id: str, ids: list[str]) -> None:
    found = {c["id"]: c for c in store.customers_by_ids(list(dict.fromkeys(ids)))}
    for cid in ids:
        card = found.get(cid)
        if card is None:
            raise Refused(f"customer {cid} in the plan is not in the archive "
                          "(a new card held for review?): take it out of the plan")
        if card["owner_rep_id"] != rep_id:
            raise Refused(f"customer {card['card_no']} {card['name']} is not assigned to you: "
                          "take it out of the plan")


def review(store: Store, now: str, who: StaffMember, pid: str, approve: bool,
           comment: str) -> dict[str, Any]:
    """Approve a submitted plan, or return a submitted or approved one with a comment.

    NotFound `unknown_plan`; Forbidden from access.authorize (a manager: their team
    only); ArchiveError `comment_required` / `invalid_comment`; Conflict
    `plan_not_reviewable` when the plan's status does not allow it."""
    row = plan_of(store, pid)
    access.authorize(store, who, "plan.review", row["rep_id"])
    comment = comment.strip()
    if len(comment) > MAX_COMMENT:
        raise ArchiveError("invalid_comment", f"a comment has at most {MAX_COMMENT} characters")
    status = row["status"]
    if approve and status != PlanStatus.submitted:
        raise Conflict("plan_not_reviewable", f"the plan {pid} is {status}: only a submitted "
                       "plan can be approved")
    if not approve:
        if not comment:
            raise ArchiveError("comment_required", "returning a plan needs a comment saying "
                               "what to change")
        if status == PlanStatus.returned:
            raise Conflict("plan_not_reviewable", f"the plan {pid} is already returned; the rep "
                           "submits it again")
    new = PlanStatus.approved if approve else PlanStatus.returned
    row.update(rev=row["rev"] + 1, status=new.value, comment=comment, reviewed_by=who.name,
               reviewed_at=now)
    _save(store, row, who.actor, now, insert=False)
    audit.append(store, now, who.actor, f"plan.{'approve' if approve else 'return'}", pid,
                 {"rep_id": row["rep_id"], "day": row["day"], "rev": row["rev"],
                  "comment": comment})
    return row


def plan_of(store: Store, pid: str) -> dict[str, Any]:
    row = store.plan(pid)
    if row is None:
        raise NotFound("unknown_plan", f"no plan {pid!r}: plan ids are REP_ID:YYYY-MM-DD, "
                       "see `fieldvault-server plan list`")
    return row


def listing(store: Store, reps: list[str] | None, status: str | None, day: str | None,
            limit: int | None) -> list[dict[str, Any]]:
    """Plans of `reps` (None: everyone's), newest day first, each with its rep's name
    and number of items."""
    if status is not None and status not in {s.value for s in PlanStatus}:
        raise ArchiveError("invalid_status", "status must be submitted, approved or returned")
    if day is not None:
        days.parse_day(day)
    rows = store.plans(reps, status, day, limit)
    names = store.rep_names()
    return [{**r, "rep_name": names.get(r["rep_id"], ""), "planned": len(r["items"])}
            for r in rows]


# --- plan against actual ----------------------------------------------------------------


def versus_actual(store: Store, now: datetime, tz: ZoneInfo, rep_id: str, day: date,
                  items: list[dict[str, Any]]) -> dict[str, Any]:
    """Each planned item `done` (a non-void visit by the rep to that customer on that
    company day), `missed` (the day is over without one) or `open` (not yet, today or
    later); the day's other visits are `unplanned`. Each visit counts for one item
    only: two items for one customer need two visits. adherence = done / planned."""
    start, end = days.span(day, 1, tz)
    visits = store.visits_between([rep_id], start, end)
    over = day < days.today(now, tz)
    cards = {c["id"]: c for c in store.customers_by_ids(list({i["customer_id"] for i in items}))}
    unused = list(visits)
    out_items = []
    for item in items:
        match = next((v for v in unused if v["customer_id"] == item["customer_id"]), None)
        card = cards.get(item["customer_id"], {})
        entry = {**item, "card_no": card.get("card_no", ""), "customer": card.get("name", ""),
                 "area": card.get("area", ""),
                 "result": "done" if match else "missed" if over else "open",
                 "visit_id": match["id"] if match else None,
                 "visited_at": days.local_time(match["started_at"], tz) if match else None}
        if match:
            unused.remove(match)
        out_items.append(entry)
    done = sum(1 for i in out_items if i["result"] == "done")
    return {
        "planned": len(items), "done": done,
        "missed": sum(1 for i in out_items if i["result"] == "missed"),
        "open": sum(1 for i in out_items if i["result"] == "open"),
        "unplanned": len(unused),
        "adherence": round(done / len(items), 4) if items else None,
        "items": out_items,
        "unplanned_visits": [{"visit_id": v["id"], "customer_id": v["customer_id"],
                              "card_no": v["card_no"], "customer": v["customer_name"],
                              "purpose": v["purpose"],
                              "time": days.local_time(v["started_at"], tz)} for v in unused],
    }


def detail(store: Store, now: datetime, row: dict[str, Any]) -> dict[str, Any]:
    """The plan with its rep's name and the plan against actual visits (so far)."""
    tz = days.zone(store)
    actual = versus_actual(store, now, tz, row["rep_id"], days.parse_day(row["day"]), row["items"])
    items = actual.pop("items")
    rep = store.rep(row["rep_id"])
    return {**row, "rep_name": rep["name"] if rep else "", "timezone": tz.key, "items": items,
            "actual": actual}


__all__ = ["Refused", "detail", "listing", "plan_id", "plan_of", "review", "submit",
           "versus_actual"]
