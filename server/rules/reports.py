"""The daily report per rep (每日销售报告) and the weekly progress per team, derived
from the archive: nothing here is stored, so a report always agrees with the visits.

Days and weeks are the company's (rules/days.py). Void visits never count. Figures
are plain counts and ratios rounded to 4 places, so a report is the same on every
backend and every run.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from schema.clock import iso, parse_iso
from schema.enums import CallbackStatus, Grade, OwnershipSource, PlanStatus, VisitPurpose, VisitStatus

from ..archive.store import Store
from . import days, plans, policies, pool

PURPOSES = tuple(p.value for p in VisitPurpose)
# A complaint (客诉) is followed up when the customer is visited again within this.
FOLLOW_UP = timedelta(days=3)


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


# --- daily --------------------------------------------------------------------------------


def daily(store: Store, now: datetime, rep: dict[str, Any], day: date) -> dict[str, Any]:
    """One rep's day: visits by purpose, outcomes, complaints handled, collections,
    competitor and customer news, the plan against actual, the managers' comments."""
    tz = days.zone(store)
    start, end = days.span(day, 1, tz)
    visits = store.visits_between([rep["id"]], start, end)
    plan = store.plan(plans.plan_id(rep["id"], day.isoformat()))
    actual = plans.versus_actual(store, now, tz, rep["id"], day, plan["items"] if plan else [])
    planned = {i["visit_id"] for i in actual["items"] if i["visit_id"]}

    def brief(v: dict[str, Any], *fields: str) -> dict[str, Any]:
        return {"visit_id": v["id"], "time": days.local_time(v["started_at"], tz),
                "card_no": v["card_no"], "customer": v["customer_name"],
                **{f: v[f] for f in fields}}

    by_purpose = Counter(v["purpose"] for v in visits)
    comments = [{"on": "visit", "id": v["id"], "customer": v["customer_name"],
                 "by": v["reviewed_by"], "status": v["status"], "comment": v["review_comment"]}
                for v in visits if v["review_comment"]]
    if plan:
        comments += _plan_comments(store, plan["id"])
    return {
        "rep_id": rep["id"], "rep_name": rep["name"], "date": day.isoformat(),
        "timezone": tz.key,
        "visit_count": len(visits),
        "by_purpose": {p: by_purpose.get(p, 0) for p in PURPOSES},
        "outcomes": [brief(v, "purpose", "outcome") for v in visits if v["outcome"]],
        "complaints_handled": [brief(v, "summary", "outcome") for v in visits
                               if v["purpose"] == VisitPurpose.complaint],
        "collections": [brief(v, "summary", "outcome") for v in visits
                        if v["purpose"] == VisitPurpose.collection],
        "competitor_news": [brief(v, "competitors") for v in visits if v["competitors"].strip()],
        "customer_news": [brief(v, "feedback") for v in visits if v["feedback"].strip()],
        "plan": None if plan is None else {
            "id": plan["id"], "status": plan["status"], "rev": plan["rev"],
            **{k: actual[k] for k in ("planned", "done", "missed", "open", "unplanned",
                                      "adherence")},
            "items": actual["items"]},
        "manager_comments": comments,
        "visits": [{**brief(v, "purpose", "status", "callback", "summary", "outcome", "feedback",
                            "competitors", "review_comment"),
                    "planned": v["id"] in planned} for v in visits],
    }


def _plan_comments(store: Store, plan_id: str) -> list[dict[str, Any]]:
    """Every review comment the plan received (a return's comment survives the
    resubmission that clears it from the plan)."""
    out = []
    for r in store.plan_revisions(plan_id):
        snap = r["snapshot"]
        if snap["status"] != PlanStatus.submitted and snap["comment"]:
            out.append({"on": "plan", "id": plan_id, "customer": "", "by": snap["reviewed_by"],
                        "status": snap["status"], "comment": snap["comment"]})
    return out


# --- weekly -------------------------------------------------------------------------------


def weekly(store: Store, now: datetime, team: str, rep_ids: list[str],
           monday: date) -> dict[str, Any]:
    """A team's week, per rep and in total: new customers (cards developed, claims from
    the pool), the effective visit rate (approved and not disputed, over all visits),
    order and collection visits, and abnormal customers: nearing the pool's return,
    with a disputed visit, or with a complaint not followed by a visit within 3 days."""
    tz = days.zone(store)
    start, end = days.span(monday, 7, tz)
    names = store.rep_names()
    visits = store.visits_between(rep_ids, start, end)
    gains = store.ownership_gains(rep_ids, [OwnershipSource.developed.value,
                                            OwnershipSource.claimed.value], start, end)
    # The pool's clock as the week stood at its end (or now, for the week under way);
    # a complaint's 3 days as of now, so one made on a Sunday is judged too.
    as_of = min(iso(now), end)
    abnormal = (_nearing_pool(store, rep_ids, as_of, tz)
                + [_abnormal(v, "disputed_visit", f"visit {v['id']} disputed on call-back: "
                             f"{v['callback_note']}".rstrip(": "))
                   for v in visits if v["callback"] == CallbackStatus.disputed]
                + _complaints_left(store, visits, iso(now), tz))
    for a in abnormal:
        a["rep_name"] = names.get(a["rep_id"], "")

    def figures(reps: set[str]) -> dict[str, Any]:
        mine = [v for v in visits if v["rep_id"] in reps]
        won = [g for g in gains if g["to_rep_id"] in reps]
        effective = sum(1 for v in mine if v["status"] == VisitStatus.approved
                        and v["callback"] != CallbackStatus.disputed)
        developed = sum(1 for g in won if g["source"] == OwnershipSource.developed)
        return {"new_customers": len(won), "developed": developed, "claimed": len(won) - developed,
                "visits": len(mine), "effective_visits": effective,
                "effective_rate": _ratio(effective, len(mine)),
                "order_visits": sum(1 for v in mine if v["purpose"] == VisitPurpose.order),
                "collection_visits": sum(1 for v in mine if v["purpose"] == VisitPurpose.collection),
                "disputed_visits": sum(1 for v in mine if v["callback"] == CallbackStatus.disputed),
                "abnormal_customers": len({a["customer_id"] for a in abnormal
                                           if a["rep_id"] in reps})}

    ordered = sorted(rep_ids, key=lambda r: (names.get(r, ""), r))
    return {
        "team": team, "week": days.week_name(monday), "from": monday.isoformat(),
        "to": (monday + timedelta(days=6)).isoformat(), "timezone": tz.key, "as_of": as_of,
        "reps": [{"rep_id": r, "rep_name": names.get(r, ""), **figures({r})} for r in ordered],
        "total": figures(set(rep_ids)),
        "new_customers": [{"customer_id": g["customer_id"], "card_no": g["card_no"],
                           "customer": g["name"], "rep_id": g["to_rep_id"],
                           "rep_name": names.get(g["to_rep_id"], ""), "source": g["source"],
                           "at": g["at"]} for g in gains],
        "abnormal": sorted(abnormal, key=lambda a: (a["rep_name"], a["card_no"], a["reason"])),
    }


def _abnormal(row: dict[str, Any], reason: str, detail: str) -> dict[str, Any]:
    return {"customer_id": row["customer_id"], "card_no": row["card_no"],
            "customer": row["customer_name"], "rep_id": row["rep_id"], "reason": reason,
            "detail": detail}


def _nearing_pool(store: Store, rep_ids: list[str], as_of: str,
                  tz: ZoneInfo) -> list[dict[str, Any]]:
    """The reps' unlocked customers within the warning days of their return to the pool
    (or past it): the pool clock runs from the last visit or, after a change of owner,
    from when the customer became the owner's. Due when anchor + return days - warn
    days <= as_of, asked of the store as anchor <= a cutoff per grade (one indexed query,
    not every card of the team through Python)."""
    rules = policies.read(store, policies.PoolPolicy)
    moment = parse_iso(as_of)

    def cutoff(grade: str) -> str:
        return iso(moment - timedelta(days=rules.return_days(grade) - rules.warn_days))

    cards = store.nearing_pool_return(
        rep_ids, {g.value.lower(): cutoff(g.value) for g in Grade}, cutoff(""))
    out = []
    for c in cards:
        due = pool.due_at(rules, c)
        out.append({"customer_id": c["id"], "card_no": c["card_no"], "customer": c["name"],
                    "rep_id": c["owner_rep_id"], "reason": "nearing_pool_return",
                    "detail": f"no visit since {days.day_of(pool.anchor(c), tz)}: returns to "
                              f"the pool on {due.astimezone(tz).date()}"})
    return out


def _complaints_left(store: Store, visits: list[dict[str, Any]], as_of: str,
                     tz: ZoneInfo) -> list[dict[str, Any]]:
    """Complaint visits whose 3 days have passed with no later visit to the customer."""
    due = [v for v in visits if v["purpose"] == VisitPurpose.complaint
           and iso(parse_iso(v["started_at"]) + FOLLOW_UP) <= as_of]
    if not due:
        return []
    later = store.visits_to_customers(
        list({v["customer_id"] for v in due}), min(v["started_at"] for v in due),
        iso(max(parse_iso(v["started_at"]) for v in due) + FOLLOW_UP + timedelta(microseconds=1)))
    out = []
    for v in due:
        limit = iso(parse_iso(v["started_at"]) + FOLLOW_UP)
        if not any(f["customer_id"] == v["customer_id"] and v["started_at"] < f["started_at"] <= limit
                   for f in later):
            out.append(_abnormal(v, "complaint_without_follow_up",
                                 f"complaint on {days.day_of(v['started_at'], tz)} not followed "
                                 "by a visit within 3 days"))
    return out


# --- CSV ----------------------------------------------------------------------------------

DAILY_COLUMNS = ("date", "rep", "time", "card_no", "customer", "purpose", "plan", "status",
                 "callback", "summary", "outcome", "feedback", "competitors", "review_comment")
WEEKLY_COLUMNS = ("week", "rep_id", "rep", "new_customers", "developed", "claimed", "visits",
                  "effective_visits", "effective_rate", "order_visits", "collection_visits",
                  "disputed_visits", "abnormal_customers")


def daily_rows(report: dict[str, Any]) -> tuple[tuple[str, ...], list[dict[str, Any]]]:
    """One row per visit of the day (plan `done` or `unplanned`), then one per planned
    item without a visit (`missed` or `open`), at its planned time."""
    head = {"date": report["date"], "rep": report["rep_name"]}
    rows = [{**head, **v, "plan": "done" if v["planned"] else "unplanned"}
            for v in report["visits"]]
    for item in (report["plan"] or {}).get("items", []):
        if item["result"] != "done":
            rows.append({**head, "time": item["time"] or "", "card_no": item["card_no"],
                         "customer": item["customer"], "purpose": item["purpose"],
                         "plan": item["result"]})
    return DAILY_COLUMNS, rows


def weekly_rows(report: dict[str, Any]) -> tuple[tuple[str, ...], list[dict[str, Any]]]:
    """One row per rep, then the team's total."""
    rows = [{"week": report["week"], "rep": r["rep_name"], **r} for r in report["reps"]]
    rows.append({"week": report["week"], "rep_id": "", "rep": "total", **report["total"]})
    return WEEKLY_COLUMNS, rows


# A cell a spreadsheet would read as a formula (=, +, -, @, or a control character
# first) is written with a leading apostrophe: the text a rep typed must never run
# in the office's Excel.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def to_csv(columns: tuple[str, ...], rows: list[dict[str, Any]]) -> str:
    """CSV text in a fixed column order. It starts with a UTF-8 byte order mark: Excel
    opens a CSV without one in the machine's legacy code page (GBK on a Chinese
    Windows, cp1252 elsewhere) and shows every Chinese name as mojibake."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return "\ufeff" + out.getvalue()


__all__ = ["DAILY_COLUMNS", "WEEKLY_COLUMNS", "daily", "daily_rows", "to_csv", "weekly",
           "weekly_rows"]
