"""Daily visit plans (每日拜访计划) on every backend: a rep's plan.submit through real
pushes, the manager's approve and return reaching the rep's pull, plan against actual,
and the company's time zone deciding which day a visit belongs to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schema.clock import ManualClock, iso
from schema.models import CustomerCreate, OpResult
from server.archive import Device
from server.archive.engine import UniqueViolation
from server.archive.errors import ArchiveError, Conflict, Forbidden, NotFound
from server.rules import Archive

from ..harness import op
from .kit import T0, Stores, at, enroll_device, ops, visit_create

# T0 is Monday 2026-03-02 09:00 UTC.
TODAY, TOMORROW = "2026-03-02", "2026-03-03"


@dataclass
class World:
    archive: Archive
    clock: ManualClock
    stores: Stores
    a: Device  # Rep A, under Boss (the manager `mgr`'s team)
    b: Device  # Rep B, in nobody's team

    def push(self, device: Device, *wire: dict[str, Any]) -> list[OpResult]:
        return self.archive.push(device, ops(*wire))

    def card(self, owner: Device, name: str) -> dict[str, Any]:
        return self.archive.add_customer(CustomerCreate(name=name), owner.rep_id)


@pytest.fixture
def world(archive: Archive, clock: ManualClock, stores: Stores) -> World:
    archive.add_rep("Boss", None, "senior")
    a = archive.add_rep("Rep A", "Boss", "mid")["id"]
    b = archive.add_rep("Rep B", None, "mid")["id"]
    archive.add_staff("mgr", "manager", "Boss", "manager password 1")
    archive.add_staff("root", "admin")
    archive.add_staff("office", "verifier")
    return World(archive, clock, stores, enroll_device(archive, a), enroll_device(archive, b))


def plan_op(day: str, *items: dict[str, Any], entity: str | None = None) -> dict[str, Any]:
    return op("plan.submit", entity or day, {"day": day, "items": list(items)})


def item(customer: dict[str, Any], purpose: str = "order", time: str | None = None) -> dict[str, Any]:
    return {"customer_id": customer["id"], "purpose": purpose, "time": time}


def test_submit_resubmit_and_the_refusals_a_rep_sees(world: World) -> None:
    c1, c2 = world.card(world.a, "客户一 Ltd"), world.card(world.a, "Two Co")
    theirs = world.card(world.b, "Not Mine Co")
    (first,) = world.push(world.a, plan_op(TOMORROW, item(c1, "order", "09:30"), item(c2, "service")))
    assert (first.status, first.rev, first.entity_id) == ("accepted", 1, TOMORROW)
    pid = f"{world.a.rep_id}:{TOMORROW}"
    refused = world.push(
        world.a,
        plan_op(TOMORROW, item(c1), item(theirs)),  # another rep's customer
        plan_op("2026-02-28", item(c1)),  # before yesterday
        plan_op("2026-05-02", item(c1)),  # 61 days ahead
        plan_op(TOMORROW, item(c1), entity="2026-03-04"),  # the op names another day
        plan_op("2026-02-30", item(c1)),
    )
    assert [r.status for r in refused] == ["rejected"] * 5
    assert theirs["card_no"] in (refused[0].reason or "") and "Not Mine Co" in (refused[0].reason or "")
    assert "2026-03-01 to 2026-05-01" in (refused[1].reason or "")
    assert "2026-03-01 to 2026-05-01" in (refused[2].reason or "")
    # a refused submission changed nothing; yesterday is still allowed
    assert world.archive.show_plan(pid)["rev"] == 1
    assert world.push(world.a, plan_op("2026-03-01", item(c1)))[0].status == "accepted"

    (again,) = world.push(world.a, plan_op(TOMORROW, item(c2, "collection")))
    assert (again.status, again.rev) == ("accepted", 2)
    plan = world.archive.show_plan(pid, by="mgr")
    assert (plan["status"], [i["customer_id"] for i in plan["items"]]) == ("submitted", [c2["id"]])

    world.archive.approve_plan(pid, "mgr", "good route")
    (locked,) = world.push(world.a, plan_op(TOMORROW, item(c1)))
    assert locked.status == "rejected"
    assert locked.reason == f"the plan for {TOMORROW} is approved; ask your manager to return it"
    world.archive.return_plan(pid, "mgr", "add Two Co in the afternoon")
    (fixed,) = world.push(world.a, plan_op(TOMORROW, item(c1), item(c2, time="15:00")))
    assert (fixed.status, fixed.rev) == ("accepted", 5)
    with world.stores.read() as s:
        revisions = s.plan_revisions(pid)
        assert [(r["rev"], r["snapshot"]["status"], r["author"]) for r in revisions] == [
            (1, "submitted", world.a.rep_id), (2, "submitted", world.a.rep_id),
            (3, "approved", "staff:mgr"), (4, "returned", "staff:mgr"),
            (5, "submitted", world.a.rep_id)]
        assert revisions[3]["snapshot"]["comment"] == "add Two Co in the afternoon"
        row = s.plan(pid)
        assert row is not None and row["comment"] == "" and row["reviewed_by"] is None
        assert row["items"][1] == {"customer_id": c2["id"], "purpose": "order", "time": "15:00"}


def test_approve_and_return_reach_the_reps_pull(world: World) -> None:
    c1 = world.card(world.a, "Pull Co")
    other = world.card(world.b, "B Co")
    world.push(world.b, plan_op(TOMORROW, item(other)))
    world.push(world.a, plan_op(TOMORROW, item(c1)))
    pid = f"{world.a.rep_id}:{TOMORROW}"
    page = world.archive.pull(world.a.rep_id, 0, 1000)
    assert [(p["id"], p["status"], p["rev"]) for p in page.plans] == [(pid, "submitted", 1)]
    assert page.pool_rules == {"return_days": {"A": 90, "B": 90, "C": 90}, "warn_days": 7,
                               "grace_days": 3}
    cursor = page.last_seq

    approved = world.archive.approve_plan(pid, "mgr", "ok")
    assert (approved["status"], approved["reviewed_by"], approved["rev"]) == ("approved", "mgr", 2)
    page = world.archive.pull(world.a.rep_id, cursor, 1000)
    assert [(p["status"], p["comment"]) for p in page.plans] == [("approved", "ok")]
    assert (page.customers, page.visits, page.evicted) == ([], [], [])
    world.archive.return_plan(pid, "mgr", "visit Pull Co before noon")
    page = world.archive.pull(world.a.rep_id, page.last_seq, 1000)
    assert [(p["status"], p["comment"]) for p in page.plans] == [("returned",
                                                                    "visit Pull Co before noon")]
    # only the rep's own plans, with a page per feed row like any change
    assert {p["rep_id"] for p in world.archive.pull(world.b.rep_id, 0, 1000).plans} == {world.b.rep_id}
    paged = [world.archive.pull(world.a.rep_id, n, 1) for n in range(0, page.last_seq)]
    assert {p["status"] for pg in paged for p in pg.plans} == {"returned"}  # as it is now

    actions = [e for e in world.archive.audit_entries() if e["action"].startswith("plan.")]
    assert [(e["action"], e["actor"], e["subject"]) for e in actions] == [
        ("plan.approve", "staff:mgr", pid), ("plan.return", "staff:mgr", pid)]


def test_who_may_review_and_what_a_review_needs(world: World) -> None:
    world.push(world.a, plan_op(TOMORROW, item(world.card(world.a, "A Co"))))
    world.push(world.b, plan_op(TOMORROW, item(world.card(world.b, "B Co"))))
    mine, theirs = f"{world.a.rep_id}:{TOMORROW}", f"{world.b.rep_id}:{TOMORROW}"
    with pytest.raises(Forbidden) as err:
        world.archive.approve_plan(theirs, "mgr")
    assert err.value.code == "outside_team"
    with pytest.raises(Forbidden) as err:
        world.archive.approve_plan(mine, "office")
    assert err.value.code == "forbidden"
    with pytest.raises(Forbidden):
        world.archive.show_plan(theirs, by="mgr")
    with pytest.raises(NotFound):
        world.archive.approve_plan(f"{world.a.rep_id}:2026-03-09", "mgr")
    with pytest.raises(ArchiveError) as err:
        world.archive.return_plan(mine, "mgr", "   ")
    assert err.value.code == "comment_required"
    world.archive.return_plan(mine, "root", "too few visits")  # an admin reviews anyone's
    with pytest.raises(Conflict):
        world.archive.approve_plan(mine, "mgr")  # returned: the rep submits it again
    with pytest.raises(Conflict):
        world.archive.return_plan(mine, "mgr", "again")
    assert world.archive.show_plan(mine)["rev"] == 2  # nothing written by a refusal

    # listings: a manager sees their team only, whatever they ask for
    assert [p["id"] for p in world.archive.list_plans()] == sorted([mine, theirs])
    assert [p["id"] for p in world.archive.list_plans(by="mgr")] == [mine]
    with pytest.raises(Forbidden):
        world.archive.list_plans(by="mgr", rep="Rep B")
    assert [p["id"] for p in world.archive.list_plans(manager="mgr", status="returned")] == [mine]
    world.archive.add_rep("Boss B", None, "senior")
    world.archive.add_rep("Rep C", "Boss B", "mid")
    world.archive.add_staff("mgr-b", "manager", "Boss B")
    with pytest.raises(Forbidden) as err:  # naming another manager's team: refused, as for
        world.archive.list_plans(by="mgr", manager="mgr-b")  # approvals and disputes
    assert err.value.code == "outside_team"
    assert world.archive.list_plans(status="approved") == []
    assert world.archive.list_plans(day="2026-03-04") == []
    with pytest.raises(ArchiveError):
        world.archive.list_plans(status="done")


def test_plan_against_actual_done_missed_open_and_unplanned(world: World) -> None:
    c1, c2, c3 = (world.card(world.a, n) for n in ("One Co", "Two Co", "Three Co"))
    world.push(world.a, plan_op(TODAY, item(c1, "order", "10:00"), item(c2, "service"),
                                item(c1, "collection", "16:00")))
    world.clock.set(T0 + timedelta(hours=5))  # 14:00
    void = visit_create(c2["id"], started_at=at(timedelta(hours=2)))
    results = world.push(
        world.a,
        visit_create(c1["id"], started_at=at(timedelta(hours=1))),  # 10:00, planned
        visit_create(c3["id"], started_at=at(timedelta(hours=3)), purpose="service"),  # unplanned
        void, op("visit.void", void["entity_id"], {"reason": "wrong customer"}),
    )
    assert {r.status for r in results} == {"accepted"}
    pid = f"{world.a.rep_id}:{TODAY}"

    so_far = world.archive.show_plan(pid)
    assert [i["result"] for i in so_far["items"]] == ["done", "open", "open"]
    assert so_far["items"][0]["visited_at"] == "10:00"
    assert {k: so_far["actual"][k] for k in ("planned", "done", "missed", "open", "unplanned")} == {
        "planned": 3, "done": 1, "missed": 0, "open": 2, "unplanned": 1}
    assert [v["customer"] for v in so_far["actual"]["unplanned_visits"]] == ["Three Co"]

    world.clock.set(T0 + timedelta(days=1))  # the day is over
    after = world.archive.show_plan(rep="Rep A", day=TODAY, by="mgr")
    assert [i["result"] for i in after["items"]] == ["done", "missed", "missed"]
    assert (after["actual"]["adherence"], after["actual"]["missed"]) == (0.3333, 2)


def test_the_company_time_zone_decides_the_day(world: World) -> None:
    with pytest.raises(ArchiveError) as err:
        world.archive.set_policy(None, None, None, timezone="Mars/Olympus")
    assert err.value.code == "invalid_policy"
    assert world.archive.set_policy(None, None, None, timezone="Asia/Shanghai")["timezone"] == (
        "Asia/Shanghai")
    assert world.archive.policy()["timezone"] == "Asia/Shanghai"
    cust = world.card(world.a, "深夜 Co")
    # 15:30 UTC is 23:30 in Shanghai on 03-02; 16:30 UTC is 00:30 on 03-03.
    late, after_midnight = (datetime(2026, 3, 2, h, 30, tzinfo=UTC) for h in (15, 16))
    world.clock.set(after_midnight)
    world.push(world.a, visit_create(cust["id"], started_at=iso(late)),
               visit_create(cust["id"], started_at=iso(after_midnight)))
    monday = world.archive.daily_report("Rep A", TODAY)
    tuesday = world.archive.daily_report("Rep A", TOMORROW)
    assert [v["time"] for v in monday["visits"]] == ["23:30"]
    assert [v["time"] for v in tuesday["visits"]] == ["00:30"]
    assert monday["timezone"] == "Asia/Shanghai"
    # It is 03-03 in Shanghai: 03-02 is yesterday (allowed), 03-01 is not, though in
    # UTC it is still 03-02.
    (ok, refused) = world.push(world.a, plan_op(TODAY, item(cust)), plan_op("2026-03-01", item(cust)))
    assert (ok.status, refused.status) == ("accepted", "rejected")
    assert "Asia/Shanghai" in (refused.reason or "")
    assert [i["result"] for i in world.archive.show_plan(f"{world.a.rep_id}:{TODAY}")["items"]] == [
        "done"]


# --- the store ----------------------------------------------------------------------------


def test_store_plans_and_revisions(stores: Stores) -> None:
    def plan(rep: str, day: str, status: str = "submitted") -> dict[str, Any]:
        return {"id": f"{rep}:{day}", "rep_id": rep, "day": day, "rev": 1, "status": status,
                "items": [{"customer_id": "c" * 8, "purpose": "order", "time": None}],
                "comment": "", "submitted_at": at(), "reviewed_by": None, "reviewed_at": None}

    with stores.write() as s:
        for rep in ("rep_x", "rep_y"):
            s.insert_rep({"id": rep, "name": rep, "manager_id": None, "tier": "mid", "active": 1,
                          "created_at": at()})
        rows = [plan("rep_x", "2026-03-02"), plan("rep_x", "2026-03-03", "approved"),
                plan("rep_y", "2026-03-02")]
        for row in rows:
            s.insert_plan(row)
            s.insert_plan_revision(row, "rep", at())
    with stores.read() as s:
        assert s.plan("rep_x:2026-03-02") == rows[0]
        assert s.plan("nope") is None
        assert [p["id"] for p in s.plans(None)] == ["rep_x:2026-03-03", "rep_x:2026-03-02",
                                                    "rep_y:2026-03-02"]
        assert [p["id"] for p in s.plans(["rep_x"], limit=1)] == ["rep_x:2026-03-03"]
        assert [p["id"] for p in s.plans(["rep_x", "rep_y"], status="submitted")] == [
            "rep_x:2026-03-02", "rep_y:2026-03-02"]
        assert [p["id"] for p in s.plans(None, day="2026-03-03")] == ["rep_x:2026-03-03"]
        assert s.plans([]) == []
        assert sorted(p["id"] for p in s.plans_by_ids(["rep_y:2026-03-02", "rep_x:2026-03-02", "x"])) == [
            "rep_x:2026-03-02", "rep_y:2026-03-02"]
        assert [r["snapshot"] for r in s.plan_revisions("rep_x:2026-03-03")] == [rows[1]]
    with stores.write() as s:
        changed = {**rows[0], "rev": 2, "status": "returned", "comment": "more"}
        s.update_plan(changed)
        s.insert_plan_revision(changed, "staff:m", at())
    with pytest.raises(UniqueViolation), stores.write() as s:
        s.insert_plan({**rows[0], "id": "other"})  # one plan per rep and day
    with stores.read() as s:
        assert s.plan("rep_x:2026-03-02") == changed
        assert [r["rev"] for r in s.plan_revisions("rep_x:2026-03-02")] == [1, 2]
    with stores.write() as s:
        assert s.metas(["timezone", "pool.warn_days"]) == {}
        s.set_meta("pool.warn_days", "5")
        assert s.metas(["timezone", "pool.warn_days"]) == {"pool.warn_days": "5"}
