"""The company's rules on the rep's laptop (issue 11): returned and approved visits,
refused changes with their reasons, pool warnings worked out offline, daily plans made
offline, and the pool's need for the network.

A real server process, a real enrolled SQCipher vault and real `fieldvault` runs. What
the archive's reviewers and jobs would send (a returned visit, an approved plan, the
pool rules, a held duplicate) is fed into the vault exactly where a pull or a push
answer lands in agent/sync.py (Store.apply_changes, Store.apply_results); the same
flows against the merged server are in tests/test_agent_rules_e2e.py.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from agent import plans as agent_plans
from agent import store as agent_store
from schema import models
from schema.clock import ManualClock, iso
from schema.enums import OpStatus
from schema.models import CustomerCreate, OpResult, PlanSubmitOp

from . import harness
from .harness import AGENT, ServerProcess, agent_cli, free_port, init_server, run

pytestmark = pytest.mark.slow

RULES = {"return_days": {"A": 30, "B": 90, "C": 90}, "warn_days": 7, "grace_days": 3}


@dataclass
class Laptop:
    data: Path
    home: Path
    rep_id: str
    cards: list[dict[str, Any]]  # as the archive made them: id, card_no, name


@pytest.fixture(scope="module")
def laptop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Laptop]:
    root = tmp_path_factory.mktemp("agent-rules")
    data = root / "server"
    init_server(data)
    server = ServerProcess(data).start()
    try:
        arch = harness.archive(data)
        rep = arch.add_rep("李伟")["id"]
        cards = [arch.add_customer(CustomerCreate(name=name, phone=f"021-6322 45{n:02d}"), rep)
                 for n, name in enumerate(["上海华联超市", "杭州青禾食品", "Harbor Point Logistics",
                                           "Sunrise Bakery", "Evergreen Office", "ACME Tools"])]
        home = root / "agent"
        harness.lib_enroll(data, home, server.url, rep)
        harness.lib_sync(home)
        yield Laptop(data, home, rep, cards)
    finally:
        server.stop()


def feed(home: Path, customers: list[dict[str, Any]] | None = None,
         visits: list[dict[str, Any]] | None = None, plans: list[dict[str, Any]] | None = None,
         pool_rules: dict[str, Any] | None = None) -> None:
    """Records as a pull page brings them, applied where agent/sync.py applies them."""
    with harness.open_store(home) as store:
        store.apply_changes(customers or [], visits or [], [], store.get_state("cursor") or "",
                            store.get_state("archive_epoch") or "", plans or [], pool_rules)


def answer(home: Path, op_id: str, status: OpStatus, entity_id: str, reason: str | None = None,
           rev: int | None = None) -> None:
    """The server's answer to a pushed operation, recorded as agent/sync.py records it."""
    with harness.open_store(home) as store:
        store.apply_results([OpResult(op_id=op_id, status=status, entity_id=entity_id,
                                      reason=reason, rev=rev)])


def text(home: Path, *args: str, check: bool = True) -> str:
    """A `fieldvault` command's plain (not --json) output."""
    return run([AGENT, *args, "--home", str(home)], check=check).stdout


def pending(home: Path) -> list[dict[str, Any]]:
    with harness.open_store(home) as store:
        # data and evidence come as raw JSON fragments: compare what they say
        return [{**op, **{k: orjson.loads(orjson.dumps(op[k])) for k in ("data", "evidence") if k in op}}
                for op in store.pending_ops(1000)]


def one_error_line(proc: Any) -> str:
    assert proc.returncode != 0
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: "), proc.stderr
    return str(proc.stderr[len("error: "):].strip())


def device_visit(home: Path, visit_id: str) -> dict[str, Any]:
    with harness.open_store(home) as store:
        return store.get_visit(visit_id)


def device_card(home: Path, ref: str) -> dict[str, Any]:
    with harness.open_store(home) as store:
        return store.get_customer(ref)


# --- review on the laptop ----------------------------------------------------------


def test_a_returned_visit_needs_attention_and_an_edit_submits_it_again(laptop: Laptop) -> None:
    home, card = laptop.home, laptop.cards[0]
    visit = agent_cli(home, "visit", "log", "--customer", card["card_no"], "--purpose", "order",
                      "--summary", "订货 200 件")
    harness.lib_sync(home)
    # the manager returns it; the next pull brings it back with the comment
    returned = {**device_visit(home, visit["id"]), "rev": 2, "status": "returned",
                "review_comment": "缺少订单金额, 请补充", "reviewed_by": "王经理",
                "reviewed_at": iso(datetime.now(UTC))}
    feed(home, visits=[returned])

    out = text(home, "status")
    assert "needs attention: 1 returned visit" in out
    assert (f"returned: visit {visit['id'][-12:]} 上海华联超市 ({card['card_no']}): "
            "缺少订单金额, 请补充 (王经理)") in out
    assert agent_cli(home, "status")["attention"]["counts"]["returned_visits"] == 1
    (item,) = agent_cli(home, "visit", "list", "--attention")
    assert (item["state"], item["id"], item["reason"], item["by"]) == (
        "returned", visit["id"], "缺少订单金额, 请补充", "王经理")
    # the digits the status line shows find the visit
    shown = agent_cli(home, "visit", "show", visit["id"][-12:])
    assert (shown["status"], shown["review_comment"]) == ("returned", "缺少订单金额, 请补充")

    edited = agent_cli(home, "visit", "edit", visit["id"], "--outcome", "订单金额 ¥48,000")
    assert edited["status"] == "submitted"  # submitted again, here and (with the op) there
    (op,) = pending(home)
    assert (op["kind"], op["base_rev"]) == ("visit.update", 2)
    assert op["data"] == {"outcome": "订单金额 ¥48,000", "status": "submitted"}
    assert agent_cli(home, "visit", "list", "--attention") == []
    assert harness.lib_sync(home).results == {"accepted": 1}


def test_an_approved_visit_is_read_only_with_one_clear_line(laptop: Laptop) -> None:
    home, card = laptop.home, laptop.cards[1]
    visit = agent_cli(home, "visit", "log", "--customer", card["card_no"], "--purpose",
                      "collection", "--summary", "收款 ¥12,000")
    harness.lib_sync(home)
    feed(home, visits=[{**device_visit(home, visit["id"]), "rev": 2, "status": "approved",
                        "reviewed_by": "王经理", "reviewed_at": iso(datetime.now(UTC)),
                        "callback": "verified", "callback_note": "客户确认已付款"}])
    refusal = f"visit {visit['id']} is approved: read-only. Ask your manager to correct it."
    assert one_error_line(agent_cli(home, "visit", "edit", visit["id"], "--summary", "x",
                                    check=False)) == refusal
    assert one_error_line(agent_cli(home, "visit", "void", visit["id"], "--reason", "mistake",
                                    check=False)) == refusal
    assert pending(home) == []  # nothing queued
    out = text(home, "visit", "show", visit["id"])
    assert "status: approved" in out and "callback: verified" in out
    assert "callback_note: 客户确认已付款" in out


def test_refused_changes_show_with_the_servers_reason(laptop: Laptop) -> None:
    home, first = laptop.home, laptop.cards[0]
    copy = agent_cli(home, "customer", "add", "--name", "华联超市 (copy)", "--phone",
                     "021-6322 4500")
    (op,) = pending(home)
    reason = (f"same phone as {first['card_no']}, owned by 李伟: held for review "
              "(who develops, serves)")
    answer(home, op["op_id"], OpStatus.quarantined, copy["id"], reason)

    rows = agent_cli(home, "visit", "list", "--attention")
    (held,) = [r for r in rows if r["state"] == "quarantined"]
    assert (held["kind"], held["id"], held["customer"], held["reason"]) == (
        "customer.create", copy["id"], "华联超市 (copy) (new card)", reason)
    out = text(home, "status")
    assert f"quarantined: customer.create {copy['id'][-12:]} 华联超市 (copy) (new card): {reason}" in out
    # still kept for the rep, never sent again
    assert pending(home) == [] and agent_cli(home, "status")["outbox"]["quarantined"] == 1


# --- the pool (公海) clock, offline ------------------------------------------------


def test_pool_warnings_follow_the_rules_by_grade_lock_and_local_visits(laptop: Laptop) -> None:
    home = laptop.home
    t0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
    cards = {c["name"]: device_card(home, c["id"]) for c in laptop.cards[2:6]}
    drifting, locked, visited, grade_a = (cards[n] for n in (
        "Harbor Point Logistics", "Sunrise Bakery", "Evergreen Office", "ACME Tools"))
    served = {"owned_since": iso(t0 - timedelta(days=400)), "last_served_at": iso(t0)}
    feed(home, customers=[
        {**drifting, **served, "grade": "B"}, {**locked, **served, "grade": "B", "locked": 1},
        {**visited, **served, "grade": "B"},
        {**grade_a, **served, "grade": "A", "last_served_at": iso(t0 + timedelta(days=55))},
    ], pool_rules=RULES)
    # A visit on the laptop counts even when the card itself says otherwise (a later card
    # revision pulled before that visit reached the archive); a voided one does not.
    late = iso(t0 + timedelta(days=50))
    visit = models.Visit(id="v" * 32, rev=1, customer_id=visited["id"], rep_id=laptop.rep_id,
                         started_at=late, purpose="service", summary="checked stock",
                         created_at=late, updated_at=late).model_dump(mode="json")
    void = {**visit, "id": "w" * 32, "customer_id": drifting["id"], "status": "void",
            "void_reason": "wrong customer"}
    feed(home, visits=[visit, void])
    feed(home, customers=[{**drifting, **served, "grade": "B"},
                          {**visited, **served, "grade": "B"}])

    def warnings(day: float) -> dict[str, str]:
        with harness.open_store(home) as store:
            store.clock = ManualClock(t0 + timedelta(days=day))
            return {w["name"]: w["message"] for w in store.pool_deadlines()
                    if w["name"] in cards}

    assert warnings(82.9) == {"ACME Tools": f"ACME Tools ({grade_a['card_no']}) returns to "
                              "the pool in 3 days unless visited"}
    on_day_83 = warnings(83)  # 90 days, warned 7 days before: from day 83 on
    assert on_day_83["Harbor Point Logistics"] == (
        f"Harbor Point Logistics ({drifting['card_no']}) returns to the pool in 7 days "
        "unless visited")
    assert "Sunrise Bakery" not in on_day_83 and "Evergreen Office" not in on_day_83
    assert warnings(89.5)["Harbor Point Logistics"].endswith("in 1 day unless visited")
    assert "past its pool deadline (2026-04-05)" in warnings(91)["Harbor Point Logistics"]
    assert "Evergreen Office" in warnings(50 + 83)  # its clock starts at the local visit


def test_status_and_customer_show_warn_before_the_pool(laptop: Laptop) -> None:
    home = laptop.home
    card = device_card(home, laptop.cards[5]["id"])  # ACME Tools, grade A in the test above
    now = datetime.now(UTC)
    feed(home, customers=[{**card, "grade": "B", "owned_since": iso(now - timedelta(days=300)),
                           "last_served_at": iso(now - timedelta(days=85))}],
         pool_rules={**RULES, "return_days": {"A": 90, "B": 90, "C": 90}})
    message = f"ACME Tools ({card['card_no']}) returns to the pool in 5 days unless visited"
    shown = text(home, "customer", "show", card["card_no"])
    assert f"pool_warning: {message}" in shown
    assert f"  pool: {message}" in text(home, "status")
    shown = agent_cli(home, "customer", "show", card["card_no"])
    due = datetime.fromisoformat(shown["returns_to_pool_at"])
    assert abs(due - (now + timedelta(days=5))) < timedelta(seconds=1)
    # a locked card says so instead, and warns nobody
    feed(home, customers=[{**card, "locked": 1, "last_served_at": iso(now - timedelta(days=85))}])
    shown = agent_cli(home, "customer", "show", card["card_no"])
    assert shown["pool"].startswith("locked") and "pool_warning" not in shown
    assert message not in text(home, "status")


# --- daily plans (每日拜访计划), offline -------------------------------------------


def test_a_daily_plan_made_offline_submitted_returned_and_approved(laptop: Laptop) -> None:
    home = laptop.home
    # cards without a visit today (the visits above were logged on the first two)
    first, second, third = laptop.cards[3], laptop.cards[4], laptop.cards[2]
    today = datetime.now().astimezone().date().isoformat()
    plan = ["plan", "add", "--date", today]
    agent_cli(home, *plan, "--customer", first["card_no"], "--purpose", "order", "--time", "09:30")
    agent_cli(home, *plan, "--customer", second["id"], "--purpose", "service")
    shown = agent_cli(home, *plan, "--customer", second["card_no"], "--purpose", "collection",
                      "--time", "14:00")  # again: its purpose and time change
    assert shown["status"] == "draft"
    assert [(i["customer_id"], i["purpose"], i["time"]) for i in shown["items"]] == [
        (first["id"], "order", "09:30"), (second["id"], "collection", "14:00")]
    for args, says in [
        (("--customer", "FV999999", "--purpose", "order"), "no customer 'FV999999' on this device"),
        (("--customer", first["card_no"], "--purpose", "order", "--time", "25:00"), "HH:MM"),
    ]:
        assert says in one_error_line(agent_cli(home, *plan, *args, check=False))
    assert "is over" in one_error_line(agent_cli(
        home, "plan", "add", "--date", "2020-01-06", "--customer", first["card_no"],
        "--purpose", "order", check=False))
    assert "not a day" in one_error_line(agent_cli(
        home, "plan", "add", "--date", "2026-02-30", "--customer", first["card_no"],
        "--purpose", "order", check=False))
    assert agent_plans.PLAN_MAX_ITEMS == models.PLAN_MAX_ITEMS

    submitted = agent_cli(home, "plan", "submit", "--date", today)
    assert submitted["status"] == "submitted" and "sync" in submitted
    (op,) = [o for o in pending(home) if o["kind"] == "plan.submit"]
    wire = PlanSubmitOp.model_validate(op)  # exactly what the server will parse
    assert (wire.entity_id, wire.op_id) == (today, submitted["op_id"])
    assert [i.model_dump(mode="json") for i in wire.data.items] == [
        {"customer_id": first["id"], "purpose": "order", "time": "09:30"},
        {"customer_id": second["id"], "purpose": "collection", "time": "14:00"}]

    # the day goes on: one planned customer visited, one unplanned visit
    agent_cli(home, "visit", "log", "--customer", first["card_no"], "--purpose", "order",
              "--summary", "as planned")
    agent_cli(home, "visit", "log", "--customer", third["card_no"], "--purpose", "service",
              "--summary", "passing by")
    actual = agent_cli(home, "plan", "show", "--date", today)["actual"]
    assert [i["customer_id"] for i in actual["done"]] == [first["id"]]
    assert [i["customer_id"] for i in actual["open"]] == [second["id"]]
    unplanned = {i["customer_id"] for i in actual["unplanned"]}
    assert third["id"] in unplanned and not unplanned & {first["id"], second["id"]}

    # the archive takes it, the manager returns it with a comment
    plan_id = f"{laptop.rep_id}:{today}"
    answer(home, op["op_id"], OpStatus.accepted, today, rev=1)
    record = {"id": plan_id, "rep_id": laptop.rep_id, "day": today, "rev": 2,
              "status": "returned", "items": wire.model_dump(mode="json")["data"]["items"],
              "comment": "先去杭州青禾收款", "submitted_at": iso(datetime.now(UTC)),
              "reviewed_by": "王经理", "reviewed_at": iso(datetime.now(UTC))}
    feed(home, plans=[record])
    shown = agent_cli(home, "plan", "show", "--date", today)
    assert (shown["status"], shown["comment"], shown["reviewed_by"]) == (
        "returned", "先去杭州青禾收款", "王经理")
    assert f"returned: plan for {today}: 先去杭州青禾收款 (王经理)" in text(home, "status")

    agent_cli(home, *plan, "--customer", second["card_no"], "--purpose", "collection",
              "--time", "08:30")
    assert agent_cli(home, "plan", "show", "--date", today)["unsubmitted_changes"] is True
    again = agent_cli(home, "plan", "submit", "--date", today)
    (op,) = [o for o in pending(home) if o["kind"] == "plan.submit"]
    assert op["base_rev"] == 2 and again["status"] == "submitted"
    # a pull of the old returned state meanwhile does not undo the submission on its way
    feed(home, plans=[record])
    assert agent_cli(home, "plan", "show", "--date", today)["status"] == "submitted"

    answer(home, op["op_id"], OpStatus.accepted, today, rev=3)
    feed(home, plans=[{**record, "rev": 4, "status": "approved", "comment": "好"}])
    assert agent_cli(home, "plan", "show", "--date", today)["status"] == "approved"
    refusal = f"the plan for {today} is approved: read-only. Ask your manager to change it."
    for args in (plan + ["--customer", third["card_no"], "--purpose", "order"],
                 ["plan", "remove", "--date", today, "--customer", first["card_no"]],
                 ["plan", "submit", "--date", today]):
        assert one_error_line(agent_cli(home, *args, check=False)) == refusal
    assert [o for o in pending(home) if o["kind"] == "plan.submit"] == []

    # after the day: the second customer was missed
    with harness.open_store(home) as store:
        store.clock = ManualClock(datetime.now(UTC) + timedelta(days=1))
        actual = store.plan_show(today)["actual"]
    assert [i["customer_id"] for i in actual["done"]] == [first["id"]]
    assert [i["customer_id"] for i in actual["missed"]] == [second["id"]]
    assert third["id"] in {i["customer_id"] for i in actual["unplanned"]}


# --- the pool needs the network --------------------------------------------------------


def test_the_pool_needs_the_network(laptop: Laptop, tmp_path: Path) -> None:
    away = tmp_path / "away"  # the same laptop, its server out of reach
    shutil.copytree(laptop.home, away)
    config = json.loads((away / "config.json").read_text())
    (away / "config.json").write_text(json.dumps(
        {**config, "server_url": f"http://127.0.0.1:{free_port()}"}))
    before = pending(away)
    for args, what in ((("pool", "list"), "browsing the pool"),
                       (("pool", "claim", laptop.cards[0]["id"]), "claiming from the pool")):
        proc = agent_cli(away, *args, check=False)
        assert proc.returncode == 2, proc.stderr
        assert one_error_line(proc).startswith(f"{what} needs the network (cannot reach ")
    assert pending(away) == before  # nothing queued: a claim is never made offline


# --- ids -------------------------------------------------------------------------------


def test_ids_made_on_the_laptop_are_time_ordered_and_found_by_either_end(laptop: Laptop) -> None:
    """A laptop's ids start with their creation time (the archive's indexes on them grow
    at their end), so visits logged a moment apart share their first digits: the rep
    finds one by its last digits, or by enough of its first."""
    home, card = laptop.home, laptop.cards[2]
    first, second = (agent_cli(home, "visit", "log", "--customer", card["card_no"],
                               "--purpose", "service", "--summary", f"visit {n}")["id"]
                     for n in (1, 2))
    assert first < second and len(first) == len(second) == 32
    common = os.path.commonprefix([first, second])
    assert len(common) >= 4  # the same ~12 days
    for ref, summary in ((first[-8:], "visit 1"), (second[-8:], "visit 2"),
                         (second, "visit 2"), (first[:len(common) + 1], "visit 1")):
        assert agent_cli(home, "visit", "show", ref)["summary"] == summary, ref
    proc = agent_cli(home, "visit", "show", common, check=False)
    assert one_error_line(proc) == f"{common!r} matches several visits; give more of the id"
    harness.lib_sync(home)
    assert [op for op in pending(home) if op["entity_id"] in (first, second)] == []


def test_a_pending_edit_stays_on_top_of_its_creates_answer_found_by_its_index(
        laptop: Laptop) -> None:
    """The answer to a visit's creation carries the archive's row; the rep's later edit,
    still pending, is applied again on top. The lookup goes through the outbox_edits
    index: through outbox_state it read every pending op (quadratic in a long outbox)."""
    home, card = laptop.home, laptop.cards[3]
    visit = agent_cli(home, "visit", "log", "--customer", card["card_no"], "--purpose",
                      "service", "--summary", "回访 draft")
    agent_cli(home, "visit", "edit", visit["id"], "--outcome", "补充: 已送样品")
    create = next(op for op in pending(home) if op["entity_id"] == visit["id"]
                  and op["kind"] == "visit.create")
    archived = {**device_visit(home, visit["id"]), "rev": 1, "outcome": "", "status": "submitted"}
    with harness.open_store(home) as store:
        store.apply_results([OpResult(op_id=create["op_id"], status=OpStatus.accepted,
                                      entity_id=visit["id"], rev=1, record=archived)])
        plan = " ".join(str(r[-1]) for r in store.conn.execute(
            "EXPLAIN QUERY PLAN " + agent_store._PENDING_EDITS_SQL.format(",".join("?" * 500)),
            [f"v{i}" for i in range(500)]))  # a whole batch's lookup
    assert "outbox_edits" in plan and "outbox_state" not in plan, plan
    assert device_visit(home, visit["id"])["outcome"] == "补充: 已送样品"
    assert [op["kind"] for op in pending(home) if op["entity_id"] == visit["id"]] == [
        "visit.update"]
    harness.lib_sync(home)
    assert [op for op in pending(home) if op["entity_id"] == visit["id"]] == []
