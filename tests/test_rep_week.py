"""End to end, the acceptance of issue 11: a rep's week, with real processes.

A real `fieldvault-server serve`, two reps' laptops (the real `fieldvault` CLI on real
SQLCipher vaults), staff accounts made with `fieldvault-server user add/token`, the
staff API over HTTP with their bearer tokens, and the server CLI. What each person
sees at each step is asserted: the manager (a staff account on the rep row that
heads a team of two), rep A (李伟), rep B (张敏), the call-back office, and a manager
of another team who must see none of it.

Time, without sleeping and without moving any clock forward:
- The company's time zone is UTC+14 and the reps' laptops run at UTC-10, exactly a
  day behind. The day rep A plans as "today" on the laptop is therefore already over
  in the company's time, so the server's plan against actual can say `missed` at the
  real time (a plan is accepted for the company's yesterday). A's visits of that
  company day are typed in with their times (`--started-at`), as a rep who logs the
  day's visits in the evening does.
- Cards are made on archives opened on a ManualClock days in the past; the one that
  drifts to the pool is made 100 days back, with its last visit 95 days back, so the
  real-time `jobs run` finds it due. `serve` runs the jobs once at start-up: that card
  is seeded only after that first round has run (seen by the pool warning it records
  for a card of another team).
- The laptop's clock cannot be set from the `fieldvault` CLI, so the warning inside
  the window ("returns in 5 days") is read through the agent's library with an
  injected clock; the CLI's `status` shows the warning at the real time, when the
  deadline has passed but the return has not happened yet.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from schema.clock import ManualClock, iso, parse_iso
from schema.enums import Grade
from schema.models import CustomerCreate, PushRequest
from server.rules import open_archive
from server.rules.callback import bucket

from . import harness
from .harness import AGENT, ServerProcess, device_rows, init_server, new_id, op, run, server_cli

pytestmark = pytest.mark.slow

COMPANY_TZ = "Etc/GMT-14"  # UTC+14 (the Etc names count the other way)
LAPTOP_TZ = "FVT+10"  # POSIX: UTC-10, 24 hours behind the company
PASSWORD = "plum blossom ledger 2026"


def at(day: date, hhmm: str) -> str:
    """A moment of the company's calendar day `day`, as an ISO time."""
    return iso(datetime.combine(day, clock_time.fromisoformat(hhmm), ZoneInfo(COMPANY_TZ)))


def laptop(home: Path, *args: str, check: bool = True) -> Any:
    """`fieldvault ARGS --json` on a laptop whose clock runs at LAPTOP_TZ."""
    proc = run([AGENT, *args, "--home", str(home), "--json"], check=check,
               env={"TZ": LAPTOP_TZ})
    return json.loads(proc.stdout) if proc.returncode == 0 else proc


def unpicked_id(seed: str) -> str:
    """A visit id the call-back sample (20%) never picks: the seeded history stays out
    of the verifier's queue whatever ids a run draws."""
    for n in range(1000):
        candidate = hashlib.sha256(f"{seed} {n}".encode()).hexdigest()[:32]
        if bucket(candidate) >= 20:
            return candidate
    raise AssertionError("no id outside the sample")


@dataclass
class Week:
    server: ServerProcess
    data: Path
    now: datetime  # when the set-up ran (real time)
    day: date  # the planned day: the laptops' today, the company's yesterday
    a: str  # 李伟's rep id
    b: str  # 张敏's rep id
    home_a: Path
    home_b: Path
    cards: dict[str, dict[str, Any]]  # by short name
    old_visits: list[str]  # 李伟's visits to the drifting card, 99 and 95 days ago
    tokens: dict[str, str]

    def api(self, user: str) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, timeout=30,
                            headers={"Authorization": f"Bearer {self.tokens[user]}"})


def _seed_cards(data: Path, when: datetime, owner: str,
                cards: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Cards made by the office at `when` (an archive on a ManualClock)."""
    back = open_archive(data, ManualClock(when))
    try:
        return {key: back.add_customer(CustomerCreate(**fields), owner)
                for key, fields in cards.items()}
    finally:
        back.close()


def _seed_drifting_card(data: Path, now: datetime, rep: str) -> tuple[dict[str, Any], list[str]]:
    """A card of `rep` made 100 days ago on an old laptop of theirs, visited 99 and 95
    days ago (both approved by the manager back then), never since."""
    clock = ManualClock(now - timedelta(days=100))
    back = open_archive(data, clock)
    try:
        code, _ = back.create_enroll_code(rep, timedelta(hours=1))
        old = back.enroll(code, "李伟's old laptop", new_id()[:32].encode(), new_id()[:32].encode())
        card = back.add_customer(CustomerCreate(
            name="嘉兴纺织机械有限公司", phone="0573-8221 6600", decision_maker="沈总",
            industry="纺织机械", area="南湖区", grade=Grade.B, notes="沈总只在周三见客"), rep)
        visits = []
        for days_ago, summary in ((99, "初次拜访, 介绍新款络筒机"), (95, "报价单已送达")):
            started = now - timedelta(days=days_ago)
            clock.set(started + timedelta(hours=1))
            vid = unpicked_id(summary)
            ops = PushRequest.model_validate({"ops": [op("visit.create", vid, {
                "customer_id": card["id"], "started_at": iso(started), "ended_at": None,
                "purpose": "service", "summary": summary}, at=iso(started))]}).ops
            assert back.push(old, list(ops))[0].status == "accepted"
            back.approve_visit(vid, "wang")
            visits.append(vid)
        return card, visits
    finally:
        back.close()


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Week]:
    root = tmp_path_factory.mktemp("week")
    data = root / "server"
    init_server(data)
    assert server_cli(data, "policy", "set", "--timezone", COMPANY_TZ)["timezone"] == COMPANY_TZ
    arch = harness.archive(data)
    arch.add_rep("王经理", None, "senior")
    a = arch.add_rep("李伟", "王经理", "mid")["id"]
    b = arch.add_rep("张敏", "王经理", "junior")["id"]
    arch.add_rep("赵经理", None, "senior")
    arch.add_rep("陈刚", "赵经理", "mid")
    now = datetime.now(UTC)
    cards = _seed_cards(data, now - timedelta(days=5), a, {
        "order": {"name": "杭州青禾食品有限公司", "phone": "0571-8858 2210",
                  "decision_maker": "陈经理", "area": "西湖区", "grade": "A"},
        "service": {"name": "宁波港务集团", "phone": "0574-2769 1000", "area": "北仑区"},
        "missed": {"name": "绍兴黄酒酿造厂", "phone": "0575-8513 3311", "area": "越城区"},
        "complaint": {"name": "温州瓯江鞋业", "phone": "0577-8899 0101", "area": "鹿城区"},
    })
    cards |= _seed_cards(data, now - timedelta(days=5), b, {
        "b_own": {"name": "湖州安吉竹业", "phone": "0572-5123 4567", "area": "安吉县"}})
    # Another team's card, due for a warning (not a return): the sign that serve's
    # first round of jobs has run.
    _seed_cards(data, now - timedelta(days=85), "陈刚", {"sentinel": {"name": "金华火腿厂"}})

    password = root / "password"
    password.write_text(PASSWORD + "\n")
    password.chmod(0o600)
    tokens = {}
    for name, role, rep in (("wang", "manager", "王经理"), ("vera", "verifier", None)):
        args = ["user", "add", "--name", name, "--role", role, "--password-file", str(password)]
        made = server_cli(data, *args, *(["--rep", rep] if rep else []))
        assert (made["name"], made["role"]) == (name, role)
        tokens[name] = server_cli(data, "user", "token", name, "--name", "week")["token"]
    arch.add_staff("zhao", "manager", "赵经理")
    tokens["zhao"] = arch.create_staff_token("zhao", "week")

    server = ServerProcess(data).start()
    try:
        for _ in range(400):  # bounded: serve's first round of jobs runs at start-up
            if arch.pool_warnings():
                break
            assert server.proc is not None and server.proc.poll() is None
            time.sleep(0.05)
        assert [w["name"] for w in arch.pool_warnings()] == ["金华火腿厂"]
        drifting, old_visits = _seed_drifting_card(data, now, a)
        cards["drifting"] = drifting
        home_a, home_b = root / "li", root / "zhang"
        harness.lib_enroll(data, home_a, server.url, a)
        harness.lib_enroll(data, home_b, server.url, b)
        day = (datetime.now(UTC) - timedelta(hours=10)).date()  # today at LAPTOP_TZ
        yield Week(server, data, now, day, a, b, home_a, home_b, cards, old_visits, tokens)
    finally:
        server.stop()


def test_a_reps_week(week: Week) -> None:
    visits = plan_the_day_and_visit_offline(week)
    review_return_and_fix(week, visits)
    call_back_and_dispute(week, visits)
    drift_to_the_pool_and_claim(week)
    plan_against_actual_and_reports(week, visits)


def plan_the_day_and_visit_offline(week: Week) -> dict[str, str]:
    """Monday: 李伟 plans three customers, visits two of them and one he had not
    planned, all on the laptop; 张敏 makes one visit. Nothing reaches the office
    before they sync."""
    a, b, cards, d = week.home_a, week.home_b, week.cards, week.day
    first = laptop(a, "sync")
    assert first["pulled_customers"] == 5 and first["pulled_visits"] == 2
    assert laptop(b, "sync")["pulled_customers"] == 1

    for key, purpose, hhmm in (("order", "order", "09:00"), ("service", "service", "10:30"),
                               ("missed", "collection", "14:00")):
        laptop(a, "plan", "add", "--date", d.isoformat(), "--customer", cards[key]["card_no"],
               "--purpose", purpose, "--time", hhmm)
    plan = laptop(a, "plan", "submit", "--date", d.isoformat())
    assert (plan["status"], [i["time"] for i in plan["items"]]) == (
        "submitted", ["09:00", "10:30", "14:00"])

    def log(home: Path, key: str, purpose: str, hhmm: str, summary: str, *extra: str) -> str:
        return str(laptop(home, "visit", "log", "--customer", cards[key]["card_no"],
                          "--purpose", purpose, "--summary", summary,
                          "--started-at", at(d, hhmm), *extra)["id"])

    visits = {
        "order": log(a, "order", "order", "09:10", "下单200箱青梅酒", "--planned",
                     "--outcome", "签订采购单 PO-1187"),
        # No negotiation result: the manager will send it back for one.
        "service": log(a, "service", "service", "10:40", "检修2号装船机", "--planned"),
        "complaint": log(a, "complaint", "complaint", "16:00", "处理延迟发货投诉",
                         "--outcome", "补发并减免运费", "--feedback", "希望固定每周二送货",
                         "--competitors", "温州某鞋材厂报价低5%"),
        "b_own": log(b, "b_own", "market_research", "11:00", "了解竹制品出口需求"),
    }
    assert laptop(a, "status")["outbox"]["pending"] == 4  # the plan and three visits, queued
    with week.api("wang") as wang:
        assert wang.get("/v1/staff/approvals").json() == {"visits": []}
    assert laptop(a, "sync")["results"] == {"accepted": 4}
    assert laptop(b, "sync")["results"] == {"accepted": 1}
    return visits


def review_return_and_fix(week: Week, visits: dict[str, str]) -> None:
    """The manager approves the plan and one visit, returns another with a comment; the
    comment reaches the laptop, the rep fixes the visit, and it is approved."""
    plan_id = f"{week.a}:{week.day.isoformat()}"
    with week.api("wang") as wang, week.api("zhao") as zhao:
        waiting = wang.get("/v1/staff/plans", params={"status": "submitted"}).json()["plans"]
        assert [(p["id"], p["rep_name"], p["planned"]) for p in waiting] == [(plan_id, "李伟", 3)]
        assert zhao.get("/v1/staff/plans").json() == {"plans": []}
        approved = wang.post(f"/v1/staff/plans/{plan_id}/approve", json={"comment": "按计划执行"})
        assert (approved.status_code, approved.json()["status"]) == (200, "approved")

        queue = wang.get("/v1/staff/approvals").json()["visits"]
        assert sorted((v["rep_name"], v["customer_name"], v["status"]) for v in queue) == [
            ("张敏", "湖州安吉竹业", "submitted"), ("李伟", "宁波港务集团", "submitted"),
            ("李伟", "杭州青禾食品有限公司", "submitted"), ("李伟", "温州瓯江鞋业", "submitted")]
        assert zhao.get("/v1/staff/approvals").json() == {"visits": []}
        harness.assert_json_error(zhao.post(f"/v1/staff/visits/{visits['order']}/approve",
                                            json={}), 403, "outside_team")
        ok = wang.post(f"/v1/staff/visits/{visits['order']}/approve", json={})
        assert (ok.status_code, ok.json()["status"], ok.json()["reviewed_by"]) == (
            200, "approved", "staff:wang")
    returned = server_cli(week.data, "visit", "return", visits["service"], "--by", "wang",
                          "--comment", "请写明洽谈结果")
    assert returned["status"] == "returned"

    synced = laptop(week.home_a, "sync")
    assert (synced["returned"], synced["needs_attention"]) == (1, 0)
    status = laptop(week.home_a, "status")
    assert [(v["id"], v["reason"], v["by"]) for v in status["attention"]["returned_visits"]] == [
        (visits["service"], "请写明洽谈结果", "staff:wang")]
    assert status["attention"]["returned_plans"] == []
    listed = laptop(week.home_a, "visit", "list", "--attention")
    assert [(r["id"], r["state"], r["reason"]) for r in listed] == [
        (visits["service"], "returned", "请写明洽谈结果")]
    local_plan = laptop(week.home_a, "plan", "show", "--date", week.day.isoformat())
    assert (local_plan["status"], local_plan["comment"]) == ("approved", "按计划执行")
    refused = laptop(week.home_a, "visit", "edit", visits["order"], "--outcome", "x", check=False)
    assert refused.returncode == 1 and refused.stderr.startswith("error: ")
    assert "approved: read-only" in refused.stderr

    laptop(week.home_a, "visit", "edit", visits["service"], "--outcome", "客户同意下季度增购")
    assert laptop(week.home_a, "sync")["results"] == {"accepted": 1}
    assert laptop(week.home_a, "visit", "list", "--attention") == []
    with week.api("wang") as wang:
        shown = wang.get(f"/v1/staff/visits/{visits['service']}").json()
        assert (shown["status"], shown["outcome"]) == ("submitted", "客户同意下季度增购")
        assert [(h["status"], h["author"]) for h in shown["history"]] == [
            ("submitted", week.a), ("returned", "staff:wang"), ("submitted", week.a)]
        for key, comment in (("service", "谢谢补充"), ("b_own", "")):
            done = wang.post(f"/v1/staff/visits/{visits[key]}/approve", json={"comment": comment})
            assert done.json()["status"] == "approved", done.text
        left = wang.get("/v1/staff/approvals").json()["visits"]
        assert [v["id"] for v in left] == [visits["complaint"]]  # not reviewed this week


def call_back_and_dispute(week: Week, visits: dict[str, str]) -> None:
    """Every order is called back; the rep does not know a call is coming; the customer
    contradicts the record, the dispute reaches the manager and then the rep."""
    order = visits["order"]
    expected = {order} | {v for k, v in visits.items() if k != "order" and bucket(v) < 20}
    with week.api("vera") as vera:
        queue = vera.get("/v1/staff/callbacks").json()["visits"]
    assert {c["id"] for c in queue} == expected
    (call,) = [c for c in queue if c["id"] == order]
    assert (call["customer_name"], call["phone"], call["decision_maker"], call["purpose"],
            call["summary"], call["callback_reason"], call["started_at"]) == (
        "杭州青禾食品有限公司", "0571-8858 2210", "陈经理", "order", "下单200箱青梅酒", "purpose",
        at(week.day, "09:10"))
    assert {c["id"] for c in server_cli(week.data, "verify", "queue", "--by", "vera")} == expected

    laptop(week.home_a, "sync")
    before = laptop(week.home_a, "visit", "show", order)
    assert (before["status"], before["callback"], before["callback_note"]) == ("approved", None, "")

    disputed = server_cli(week.data, "visit", "verify", order, "--result", "disputed",
                          "--note", "客户说只订了120箱", "--by", "vera")
    assert (disputed["callback"], disputed["callback_by"]) == ("disputed", "staff:vera")
    with week.api("wang") as wang, week.api("zhao") as zhao:
        assert [d["id"] for d in wang.get("/v1/staff/disputes").json()["visits"]] == [order]
        assert zhao.get("/v1/staff/disputes").json() == {"visits": []}
        figures = wang.get("/v1/staff/callbacks/figures").json()["reps"]
        assert [(f["rep_name"], f["called"], f["disputed"], f["share_disputed"])
                for f in figures if f["called"]] == [("李伟", 1, 1, 1.0)]
    assert [d["id"] for d in server_cli(week.data, "disputes", "--manager", "wang")] == [order]
    assert server_cli(week.data, "disputes", "--manager", "zhao") == []

    laptop(week.home_a, "sync")
    after = laptop(week.home_a, "visit", "show", order)
    assert (after["status"], after["callback"], after["callback_note"]) == (
        "approved", "disputed", "客户说只订了120箱")


def drift_to_the_pool_and_claim(week: Week) -> None:
    """The customer 李伟 left unvisited: warned on his laptop, returned by the jobs,
    evicted at his next sync, browsed and claimed by 张敏, who then has its full card
    and every visit 李伟 made there."""
    card = week.cards["drifting"]
    due = week.now - timedelta(days=95) + timedelta(days=90)  # last visit + 90 days
    # Inside the warning window (7 days), through the agent's library with a clock.
    # The vault opens on the real clock (the lease knows the last server time); only
    # the attention rules then read the injected one.
    for days_before, warned in ((5, True), (8, False)):
        with harness.open_store(week.home_a) as store:
            # An hour past the whole day: the seeded times may differ from `week.now`
            # by milliseconds, and days left are counted up (ceil).
            store.clock = ManualClock(due - timedelta(days=days_before) + timedelta(hours=1))
            found = [w for w in store.attention()["pool_warnings"]
                     if w["customer_id"] == card["id"]]
        if warned:
            (warning,) = found
            assert warning["days_left"] == 5
            assert warning["message"] == (f"嘉兴纺织机械有限公司 ({card['card_no']}) returns to "
                                          "the pool in 5 days unless visited")
        else:
            assert found == []
    # At the real time, past the deadline and before the return: `fieldvault status`.
    said = run([AGENT, "status", "--home", str(week.home_a)], env={"TZ": LAPTOP_TZ}).stdout
    assert "needs attention: 1 pool warning" in said
    assert (f"pool: 嘉兴纺织机械有限公司 ({card['card_no']}) is past its pool deadline "
            f"({due.date().isoformat()})") in said

    jobs = server_cli(week.data, "jobs", "run")
    assert (jobs["returned"], jobs["returned_cards"], jobs["warned"]) == (1, [card["card_no"]], 0)
    evicted = laptop(week.home_a, "sync")
    assert evicted["evicted"] >= 1 and evicted["pool_warnings"] == 0
    assert card["id"] not in device_rows(week.home_a)[0]

    page = laptop(week.home_b, "pool", "list", "--search", "纺织")
    (entry,) = page["customers"]
    assert entry == {"id": card["id"], "card_no": card["card_no"], "name": "嘉兴纺织机械有限公司",
                     "industry": "纺织机械", "area": "南湖区", "grade": "B",
                     "in_pool_since": entry["in_pool_since"]}
    assert "0573" not in json.dumps(page, ensure_ascii=False)
    claimed = laptop(week.home_b, "pool", "claim", card["card_no"])
    assert (claimed["card_no"], claimed["claims_left_today"]) == (card["card_no"], 4)

    shown = laptop(week.home_b, "customer", "show", card["card_no"])
    assert (shown["owner_rep_id"], shown["phone"], shown["decision_maker"], shown["notes"]) == (
        week.b, "0573-8221 6600", "沈总", "沈总只在周三见客")
    assert sorted((v["id"], v["rep_id"], v["status"]) for v in shown["visits"]) == sorted(
        (v, week.a, "approved") for v in week.old_visits)
    history = server_cli(week.data, "customer", "show", card["card_no"])["ownership_history"]
    assert [(h["source"], h["to_rep_id"]) for h in history] == [
        ("assigned", week.a), ("pool", None), ("claimed", week.b)]


def plan_against_actual_and_reports(week: Week, visits: dict[str, str]) -> None:
    """The day as the office sees it afterwards: the plan against what was done, 李伟's
    daily report and the team's weekly progress."""
    d, cards = week.day, week.cards
    plan = server_cli(week.data, "plan", "show", f"{week.a}:{d.isoformat()}", "--by", "wang")
    assert [(i["customer"], i["result"], i["visit_id"], i["visited_at"]) for i in plan["items"]] \
        == [("杭州青禾食品有限公司", "done", visits["order"], "09:10"),
            ("宁波港务集团", "done", visits["service"], "10:40"),
            ("绍兴黄酒酿造厂", "missed", None, None)]
    actual = plan["actual"]
    assert {k: actual[k] for k in ("planned", "done", "missed", "open", "unplanned",
                                   "adherence")} == {
        "planned": 3, "done": 2, "missed": 1, "open": 0, "unplanned": 1, "adherence": 0.6667}
    assert [(u["visit_id"], u["customer"], u["time"]) for u in actual["unplanned_visits"]] == [
        (visits["complaint"], "温州瓯江鞋业", "16:00")]

    daily = server_cli(week.data, "report", "daily", "--rep", "李伟", "--date", d.isoformat())
    assert (daily["visit_count"], daily["timezone"]) == (3, COMPANY_TZ)
    assert {p: n for p, n in daily["by_purpose"].items() if n} == {
        "order": 1, "service": 1, "complaint": 1}
    assert [(o["customer"], o["outcome"]) for o in daily["outcomes"]] == [
        ("杭州青禾食品有限公司", "签订采购单 PO-1187"), ("宁波港务集团", "客户同意下季度增购"),
        ("温州瓯江鞋业", "补发并减免运费")]
    assert [(c["visit_id"], c["time"]) for c in daily["complaints_handled"]] == [
        (visits["complaint"], "16:00")]
    assert daily["collections"] == []
    assert [n["competitors"] for n in daily["competitor_news"]] == ["温州某鞋材厂报价低5%"]
    assert [n["feedback"] for n in daily["customer_news"]] == ["希望固定每周二送货"]
    assert {k: daily["plan"][k] for k in ("status", "planned", "done", "missed", "unplanned")} \
        == {"status": "approved", "planned": 3, "done": 2, "missed": 1, "unplanned": 1}
    assert sorted((c["on"], c["comment"]) for c in daily["manager_comments"]) == [
        ("plan", "按计划执行"), ("visit", "谢谢补充")]
    assert [(v["visit_id"], v["status"], v["callback"], v["planned"]) for v in daily["visits"]] \
        == [(visits["order"], "approved", "disputed", True),
            (visits["service"], "approved", _callback(visits["service"]), True),
            (visits["complaint"], "submitted", _callback(visits["complaint"]), False)]

    name = f"{d.isocalendar().year}-W{d.isocalendar().week:02d}"
    weekly = server_cli(week.data, "report", "weekly", "--team", "wang", "--week", name)
    by_rep = {r["rep_name"]: r for r in weekly["reps"]}
    assert set(by_rep) == {"李伟", "张敏"}
    # The claim happened at the real time: the company's next day, this week unless
    # the planned day was a Sunday.
    claimed_at = server_cli(week.data, "customer", "show", cards["drifting"]["card_no"]
                            )["ownership_history"][-1]["at"]
    claim_day = parse_iso(claimed_at).astimezone(ZoneInfo(COMPANY_TZ)).date()
    claim_week = f"{claim_day.isocalendar().year}-W{claim_day.isocalendar().week:02d}"
    claims = 1 if claim_week == name else 0
    figures = ("visits", "effective_visits", "effective_rate", "order_visits",
               "collection_visits", "disputed_visits", "abnormal_customers", "new_customers",
               "claimed", "developed")
    # 李伟: the order approved but disputed, the fixed service visit approved (effective),
    # the complaint not yet reviewed.
    assert {k: by_rep["李伟"][k] for k in figures} == {
        "visits": 3, "effective_visits": 1, "effective_rate": 0.3333, "order_visits": 1,
        "collection_visits": 0, "disputed_visits": 1, "abnormal_customers": 1,
        "new_customers": 0, "claimed": 0, "developed": 0}
    assert {k: by_rep["张敏"][k] for k in figures} == {
        "visits": 1, "effective_visits": 1, "effective_rate": 1.0, "order_visits": 0,
        "collection_visits": 0, "disputed_visits": 0, "abnormal_customers": 0,
        "new_customers": claims, "claimed": claims, "developed": 0}
    assert {k: weekly["total"][k] for k in figures} == {
        "visits": 4, "effective_visits": 2, "effective_rate": 0.5, "order_visits": 1,
        "collection_visits": 0, "disputed_visits": 1, "abnormal_customers": 1,
        "new_customers": claims, "claimed": claims, "developed": 0}
    assert [(x["rep_name"], x["customer"], x["reason"]) for x in weekly["abnormal"]] == [
        ("李伟", "杭州青禾食品有限公司", "disputed_visit")]
    if not claims:  # the claim is in the next week's report
        later = server_cli(week.data, "report", "weekly", "--team", "wang", "--week", claim_week)
        assert [(g["customer"], g["rep_name"], g["source"]) for g in later["new_customers"]] == [
            ("嘉兴纺织机械有限公司", "张敏", "claimed")]
    else:
        assert [(g["customer"], g["rep_name"], g["source"]) for g in weekly["new_customers"]] == [
            ("嘉兴纺织机械有限公司", "张敏", "claimed")]


def _callback(visit_id: str) -> str | None:
    """A visit other than an order or collection waits for a call when the sample drew it."""
    return "pending" if bucket(visit_id) < 20 else None
