"""The daily report (每日销售报告) and the weekly team progress on every backend: exact
figures from a known week of work, who may read them, and CSV exports (admin only,
in the audit chain, UTF-8 with a BOM)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from schema.clock import ManualClock, iso
from schema.models import CustomerCreate
from server.archive import Device
from server.archive.errors import ArchiveError, Forbidden, NotFound
from server.rules import Archive, pool, reports
from server.rules.policies import PoolPolicy, read, write
from server.rules.reports import DAILY_COLUMNS, WEEKLY_COLUMNS

from ..harness import customer_create, op
from .kit import T0, Stores, at, customer_row, enroll_device, ops, rep_row, visit_create

# T0 is Monday 2026-03-02 09:00 UTC: the first day of ISO week 2026-W10.
MONDAY = "2026-03-02"


def h(hours: float) -> str:
    """T0's day at `hours` o'clock (UTC, the default company zone)."""
    return at(timedelta(hours=hours - 9))


@dataclass
class Week:
    archive: Archive
    clock: ManualClock
    stores: Stores
    a: Device
    b: Device
    cards: dict[str, dict[str, Any]]
    visits: dict[str, str]  # name -> visit id


def _review(stores: Stores, visit_id: str, **changes: Any) -> None:
    """The review and call-back outcome of a visit, as the office records them (their
    own rules are tested with them; here they are only the report's input)."""
    with stores.write() as s:
        row = s.visit(visit_id)
        assert row is not None
        row.update(changes)
        s.update_visit(row)


@pytest.fixture
def week(archive: Archive, clock: ManualClock, stores: Stores) -> Week:
    archive.add_rep("Boss", None, "senior")
    archive.add_rep("Boss Two", None, "senior")
    a = enroll_device(archive, archive.add_rep("Rep A", "Boss", "mid")["id"])
    b = enroll_device(archive, archive.add_rep("Rep B", "Boss", "mid")["id"])
    c = enroll_device(archive, archive.add_rep("Rep C", "Boss Two", "mid")["id"])
    archive.add_staff("mgr", "manager", "Boss", "manager password 1")
    archive.add_staff("other", "manager", "Boss Two", "manager password 2")
    archive.add_staff("root", "admin")
    archive.add_staff("office", "verifier")
    with stores.write() as s:  # grade C customers return after 10 days, warned 7 before
        write(s, PoolPolicy, {"return_days_c": 10, "warn_days": 7})

    def card(name: str, owner: Device | None, grade: str = "B") -> dict[str, Any]:
        return archive.add_customer(CustomerCreate(name=name, grade=grade),
                                    owner.rep_id if owner else None)

    cards = {n: card(n, a) for n in ("One Co", "Two Co", "三号 Co", "Four Co")}
    cards |= {"Drift Co": card("Drift Co", a, "C"), "Key Co": card("Key Co", a, "C"),
              "Five Co": card("Five Co", b), "Six Co": card("Six Co", b),
              "Claimed Co": card("Claimed Co", None), "C Co": card("C Co", c)}
    with stores.write() as s:
        key = s.customer(cards["Key Co"]["id"])
        assert key is not None
        s.update_customer({**key, "locked": 1})  # a key account: never nearing the pool
        claimed = s.customer(cards["Claimed Co"]["id"])
        assert claimed is not None
        s.update_customer({**claimed, "owner_rep_id": b.rep_id, "owned_since": h(12),
                           "ownership_source": "claimed"})
        s.insert_ownership(claimed["id"], None, b.rep_id, "claimed", "claimed from the pool",
                           b.rep_id, h(12))
    developed = customer_create("新客户 Ltd", grade="B")
    assert archive.push(a, ops(developed))[0].status == "accepted"

    def plan(*names: str) -> dict[str, Any]:
        return op("plan.submit", MONDAY, {"day": MONDAY, "items": [
            {"customer_id": cards[n]["id"], "purpose": p, "time": None}
            for n, p in zip(names, ("order", "collection", "service"), strict=False)]})

    pid = f"{a.rep_id}:{MONDAY}"
    archive.push(a, ops(plan("One Co", "Two Co")))
    archive.return_plan(pid, "mgr", "add Four Co")
    archive.push(a, ops(plan("One Co", "Two Co", "Four Co")))
    archive.approve_plan(pid, "mgr", "ok, go")

    def visit(name: str, when: str, purpose: str, **data: Any) -> dict[str, Any]:
        return visit_create(cards[name]["id"], started_at=when, purpose=purpose, **data)

    clock.set(T0 + timedelta(days=2, hours=1))  # Wednesday 10:00
    v = {"v1": visit("One Co", h(10), "order", summary="=SUM(A1) 200 units",
                     outcome="签约 200 units", competitors="Rival Co cut prices 5%"),
         "v2": visit("Two Co", h(11), "collection", summary="collected invoice 42",
                     outcome="paid 10,000"),
         "v3": visit("三号 Co", h(13), "complaint", summary="late delivery",
                     feedback="delivery was late twice"),
         "v4": visit("Four Co", h(14), "service", summary="maintenance"),
         "v6": visit("Five Co", h(10.5), "order"),
         "v7": visit("Six Co", h(24 + 10), "complaint", summary="broken part"),
         "v8": visit("Six Co", h(48 + 9), "service", summary="replaced the part"),
         "v9": visit("C Co", h(12), "order")}
    mine = ["v1", "v2", "v3", "v4"]
    results = (archive.push(a, ops(*(v[k] for k in mine),
                                   op("visit.void", v["v4"]["entity_id"], {"reason": "duplicate"})))
               + archive.push(b, ops(v["v6"], v["v7"], v["v8"])) + archive.push(c, ops(v["v9"])))
    assert {r.status for r in results} == {"accepted"}
    ids = {k: w["entity_id"] for k, w in v.items()}
    _review(stores, ids["v1"], status="approved", review_comment="good order", reviewed_by="mgr")
    _review(stores, ids["v2"], status="approved", callback="disputed",
            callback_note="customer says nothing was paid")
    _review(stores, ids["v6"], status="approved")
    clock.set(T0 + timedelta(days=7, hours=3))  # the next Monday, 12:00
    return Week(archive, clock, stores, a, b, cards, ids)


def test_daily_report_figures(week: Week) -> None:
    report = week.archive.daily_report("Rep A", MONDAY, by="mgr")
    assert (report["rep_name"], report["date"], report["timezone"]) == ("Rep A", MONDAY, "UTC")
    assert report["visit_count"] == 3  # the void one does not count
    assert report["by_purpose"] == {"new_development": 0, "market_research": 0, "collection": 1,
                                    "service": 0, "complaint": 1, "order": 1, "other": 0}
    assert [(o["customer"], o["outcome"]) for o in report["outcomes"]] == [
        ("One Co", "签约 200 units"), ("Two Co", "paid 10,000")]
    assert [(c["time"], c["customer"], c["summary"]) for c in report["complaints_handled"]] == [
        ("13:00", "三号 Co", "late delivery")]
    assert [c["outcome"] for c in report["collections"]] == ["paid 10,000"]
    assert [n["competitors"] for n in report["competitor_news"]] == ["Rival Co cut prices 5%"]
    assert [n["feedback"] for n in report["customer_news"]] == ["delivery was late twice"]
    plan = report["plan"]
    assert {k: plan[k] for k in ("status", "planned", "done", "missed", "open", "unplanned",
                                 "adherence")} == {
        "status": "approved", "planned": 3, "done": 2, "missed": 1, "open": 0, "unplanned": 1,
        "adherence": 0.6667}
    assert [(i["customer"], i["result"]) for i in plan["items"]] == [
        ("One Co", "done"), ("Two Co", "done"), ("Four Co", "missed")]
    assert [(c["on"], c["by"], c["comment"]) for c in report["manager_comments"]] == [
        ("visit", "mgr", "good order"), ("plan", "mgr", "add Four Co"), ("plan", "mgr", "ok, go")]
    assert [(v["customer"], v["planned"]) for v in report["visits"]] == [
        ("One Co", True), ("Two Co", True), ("三号 Co", False)]
    assert week.archive.daily_report("Rep B", MONDAY)["plan"] is None


def test_weekly_report_figures(week: Week) -> None:
    report = week.archive.weekly_report("mgr", "2026-W10", by="mgr")
    assert (report["team"], report["from"], report["to"]) == ("mgr", MONDAY, "2026-03-08")

    def figures(row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(row[k] for k in ("new_customers", "developed", "claimed", "visits",
                                      "effective_visits", "effective_rate", "order_visits",
                                      "collection_visits", "disputed_visits", "abnormal_customers"))

    assert [(r["rep_name"], figures(r)) for r in report["reps"]] == [
        ("Rep A", (1, 1, 0, 3, 1, 0.3333, 1, 1, 1, 3)),
        ("Rep B", (1, 0, 1, 3, 1, 0.3333, 1, 0, 0, 0))]
    assert figures(report["total"]) == (2, 1, 1, 6, 2, 0.3333, 2, 1, 1, 3)
    assert sorted((n["customer"], n["source"]) for n in report["new_customers"]) == [
        ("Claimed Co", "claimed"), ("新客户 Ltd", "developed")]
    assert [(x["customer"], x["reason"]) for x in report["abnormal"]] == [
        ("Two Co", "disputed_visit"), ("三号 Co", "complaint_without_follow_up"),
        ("Drift Co", "nearing_pool_return")]
    drift = report["abnormal"][2]
    assert drift["detail"] == "no visit since 2026-03-02: returns to the pool on 2026-03-12"
    # the week before: nothing happened
    empty = week.archive.weekly_report("mgr", "2026-W09")
    assert figures(empty["total"]) == (0, 0, 0, 0, 0, None, 0, 0, 0, 0)


def test_who_may_read_reports(week: Week) -> None:
    refusals = [
        (lambda: week.archive.daily_report("Rep C", MONDAY, by="mgr"), Forbidden, "outside_team"),
        (lambda: week.archive.daily_report("Rep A", MONDAY, by="office"), Forbidden, "forbidden"),
        (lambda: week.archive.weekly_report("other", "2026-W10", by="mgr"), Forbidden,
         "outside_team"),
        (lambda: week.archive.weekly_report("root", "2026-W10"), ArchiveError, "not_a_manager"),
        (lambda: week.archive.weekly_report("nobody", "2026-W10"), NotFound, "unknown_manager"),
        (lambda: week.archive.weekly_report("mgr", "2026-10"), ArchiveError, "invalid_week"),
        (lambda: week.archive.daily_report("Rep A", "2026-3-2"), ArchiveError, "invalid_date"),
    ]
    for call, kind, code in refusals:
        with pytest.raises(kind) as err:
            call()
        assert err.value.code == code  # type: ignore[attr-defined]
    assert week.archive.weekly_report("other", "2026-W10", by="root")["total"]["visits"] == 1


def test_csv_exports_are_for_admins_and_own_team_managers_and_audited(week: Week) -> None:
    def exports() -> list[dict[str, Any]]:
        return [e for e in week.archive.audit_entries() if e["action"] == "export.report"]

    for who, code in (("office", "forbidden"), ("other", "outside_team")):  # a verifier;
        with pytest.raises(Forbidden) as err:  # a manager of another team
            week.archive.export_report("daily", "Rep A", MONDAY, by=who)
        assert err.value.code == code, who
    assert exports() == []  # a refused export leaves nothing, not even a record

    text, count = week.archive.export_report("daily", "Rep A", MONDAY, by="root")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text[1:])))
    assert tuple(rows[0]) == DAILY_COLUMNS and count == len(rows) - 1 == 4
    table = [dict(zip(DAILY_COLUMNS, r, strict=True)) for r in rows[1:]]
    assert [(r["customer"], r["plan"]) for r in table] == [
        ("One Co", "done"), ("Two Co", "done"), ("三号 Co", "unplanned"), ("Four Co", "missed")]
    assert table[0]["summary"] == "'=SUM(A1) 200 units"  # never a formula in Excel
    assert table[1]["callback"] == "disputed" and table[0]["time"] == "10:00"

    text, count = week.archive.export_report("weekly", "mgr", "2026-W10")
    rows = list(csv.reader(io.StringIO(text[1:])))
    assert tuple(rows[0]) == WEEKLY_COLUMNS and count == 3
    assert [r[2] for r in rows[1:]] == ["Rep A", "Rep B", "total"]
    assert rows[3][WEEKLY_COLUMNS.index("effective_rate")] == "0.3333"
    assert [(e["actor"], e["details"]["report"], e["details"]["count"]) for e in exports()] == [
        ("staff:root", "daily", 4), ("admin", "weekly", 3)]
    # the same report twice is the same text
    assert week.archive.export_report("weekly", "mgr", "2026-W10")[0] == text


# --- the store ----------------------------------------------------------------------------


def test_store_report_queries(week: Week) -> None:
    v, a, b = week.visits, week.a.rep_id, week.b.rep_id
    with week.stores.read() as s:
        monday = s.visits_between([a, b], h(0), h(24))
        assert [r["id"] for r in monday] == [v["v1"], v["v6"], v["v2"], v["v3"]]  # v4 is void
        assert monday[0]["customer_name"] == "One Co" and monday[0]["card_no"].startswith("FV")
        assert s.visits_between([a], h(10), h(11)) == [monday[0]]  # [start, end)
        assert s.visits_between([], h(0), h(200)) == []
        six = week.cards["Six Co"]["id"]
        assert [r["id"] for r in s.visits_to_customers([six], h(0), h(24 * 7))] == [v["v7"], v["v8"]]
        assert s.visits_to_customers([six], h(24 + 10.01), h(24 * 7))[0]["id"] == v["v8"]
        gains = s.ownership_gains([a, b], ["developed", "claimed"], h(0), h(24))
        assert [(g["name"], g["source"], g["to_rep_id"]) for g in gains] == [
            ("新客户 Ltd", "developed", a), ("Claimed Co", "claimed", b)]
        assert s.ownership_gains([a, b], ["claimed"], h(13), h(24)) == []


# --- the pool's clock in the weekly report: one query, the Python rule's answer ---------------


def _nearing_by_hand(s: Any, rep_ids: list[str], as_of: str) -> set[tuple[str, str]]:
    """The rule as it was written over every card of the team, as the reference."""
    rules = read(s, PoolPolicy)
    out = set()
    for rep_id in rep_ids:
        for c in s.customers(rep_id):
            if c["locked"] or not pool.anchor(c):
                continue
            if iso(pool.due_at(rules, c) - timedelta(days=rules.warn_days)) <= as_of:
                out.add((rep_id, c["card_no"]))
    return out


def test_nearing_pool_return_is_the_pool_rule_in_one_query(stores: Stores) -> None:
    rep, mate, outsider = rep_row("Near Rep"), rep_row("Near Mate"), rep_row("Elsewhere")
    day = lambda n: at(timedelta(days=n))  # noqa: E731
    cards = [
        # grade A returns after 20 days, B after 40, C after 60; warned 7 days before
        customer_row("FV000101", rep["id"], grade="A", owned_since=day(0)),  # due 20, warned from 13
        customer_row("FV000102", rep["id"], grade="B", owned_since=day(0)),  # due 40: not
        customer_row("FV000103", rep["id"], grade="C", owned_since=day(-50)),  # due 10: near
        customer_row("FV000104", rep["id"], grade="C", owned_since=day(-50),
                     last_served_at=day(-1)),  # visited: due 59, not
        customer_row("FV000105", rep["id"], grade="A", owned_since=day(-90), locked=1),  # key
        customer_row("FV000106", mate["id"], grade="B", owned_since=day(5),
                     last_served_at=day(-30)),  # owned later than the visit: due 45, not
        customer_row("FV000107", mate["id"], grade="B", owned_since=day(-40),
                     last_served_at=day(-28)),  # due 12: near
        customer_row("FV000108", None, grade="A", owned_since=None),  # in the pool
        customer_row("FV000109", outsider["id"], grade="A", owned_since=day(-90)),  # not asked
        customer_row("FV000110", mate["id"], grade="A", owned_since=day(-7),
                     last_served_at=day(-7)),  # due 13: exactly at the cutoff of day 6
    ]
    with stores.write() as s:
        write(s, PoolPolicy, {"return_days_a": 20, "return_days_b": 40, "return_days_c": 60,
                              "warn_days": 7})
        for r in (rep, mate, outsider):
            s.insert_rep(r)
        for c in cards:
            s.insert_customer(c)
    team = [rep["id"], mate["id"]]
    with stores.read() as s:
        for n in (0, 6, 12.5, 40):
            as_of = day(n)
            found = reports._nearing_pool(s, team, as_of, ZoneInfo("UTC"))
            assert {(a["rep_id"], a["card_no"]) for a in found} == _nearing_by_hand(s, team, as_of)
        found = reports._nearing_pool(s, team, day(6), ZoneInfo("UTC"))
        assert sorted(a["card_no"] for a in found) == ["FV000103", "FV000107", "FV000110"]
        assert [a["detail"] for a in found if a["card_no"] == "FV000107"] == [
            "no visit since 2026-02-02: returns to the pool on 2026-03-14"]
        assert s.nearing_pool_return([], {"a": day(0)}, day(0)) == []
