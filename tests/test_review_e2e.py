"""End to end: visit review, call-back and quarantine review with a real `fieldvault-server
serve` process, the real `fieldvault` and `fieldvault-server` CLIs and the staff API.

A manager returns a visit with a comment; the rep's next `fieldvault sync` brings the
comment to the laptop; the rep's correction, synced, submits it again; the manager
approves it. The office calls back an order visit and disputes it; the dispute is on
the manager's list. Held operations and conflicts are decided from the CLI.
Set-up uses the libraries (tests/harness.py) to keep the run short.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from schema.models import CustomerCreate, CustomerPatch
from server.rules import Archive, init_archive

from . import harness
from .harness import ServerProcess, agent_cli, assert_json_error, server_cli

pytestmark = pytest.mark.slow


@dataclass
class World:
    server: ServerProcess
    data: Path
    archive: Archive
    rep: str  # 李伟, under the manager 王建国
    home: Path
    tokens: dict[str, str]

    def api(self, user: str) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, timeout=30,
                            headers={"Authorization": f"Bearer {self.tokens[user]}"})

    def customer(self, name: str, **fields: Any) -> dict[str, Any]:
        return self.archive.add_customer(CustomerCreate(name=name, **fields), self.rep)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("review")
    data = root / "srv"
    archive = init_archive(data)
    archive.add_rep("王建国")
    rep = archive.add_rep("李伟", manager="王建国")["id"]
    archive.add_rep("张敏")
    for name, role, rep_row in (("wang", "manager", "王建国"), ("zhang-lead", "manager", "张敏"),
                                ("vera", "verifier", None), ("root", "admin", None)):
        archive.add_staff(name, role, rep_row)
    tokens = {u: archive.create_staff_token(u) for u in ("wang", "zhang-lead", "vera", "root")}
    server = ServerProcess(data).start()
    try:
        harness.lib_enroll(data, root / "agent", server.url, rep)
        yield World(server, data, archive, rep, root / "agent", tokens)
    finally:
        server.stop()


def test_a_returned_visit_reaches_the_laptop_with_the_comment_and_comes_back_fixed(
        world: World) -> None:
    cust = world.customer("杭州青禾食品有限公司")
    agent_cli(world.home, "sync")
    visit = agent_cli(world.home, "visit", "log", "--customer", cust["card_no"], "--purpose",
                      "service", "--summary", "检修2号包装线")
    agent_cli(world.home, "sync")
    waiting = server_cli(world.data, "approvals", "--manager", "wang")
    assert [(v["id"], v["rep_name"], v["customer_name"]) for v in waiting] == [
        (visit["id"], "李伟", "杭州青禾食品有限公司")]

    returned = server_cli(world.data, "visit", "return", visit["id"], "--by", "wang",
                          "--comment", "请写明洽谈结果")
    assert (returned["status"], returned["reviewed_by"]) == ("returned", "staff:wang")
    assert agent_cli(world.home, "sync")["pulled_visits"] >= 1
    local = agent_cli(world.home, "visit", "show", visit["id"])
    assert (local["status"], local["review_comment"]) == ("returned", "请写明洽谈结果")

    agent_cli(world.home, "visit", "edit", visit["id"], "--outcome", "客户同意下月签约")
    agent_cli(world.home, "sync")
    archived = world.archive.get_visit(visit["id"])
    assert (archived["status"], archived["outcome"]) == ("submitted", "客户同意下月签约")
    assert [h["snapshot"]["status"] for h in world.archive.visit_history(visit["id"])] == [
        "submitted", "returned", "submitted"]

    server_cli(world.data, "visit", "approve", visit["id"], "--by", "wang")
    agent_cli(world.home, "sync")
    assert agent_cli(world.home, "visit", "show", visit["id"])["status"] == "approved"
    again = server_cli(world.data, "visit", "return", visit["id"], "--by", "wang",
                       "--comment", "x", check=False)
    assert again.returncode == 1 and again.stderr.count("\n") == 1
    assert again.stderr.startswith("error: ") and "only a submitted visit" in again.stderr


def test_the_staff_api_reviews_calls_back_and_disputes(world: World) -> None:
    cust = world.customer("Harbor Point Logistics", phone="+852 2528 3301",
                          decision_maker="Mark Ellison")
    agent_cli(world.home, "sync")
    visit = agent_cli(world.home, "visit", "log", "--customer", cust["card_no"], "--purpose",
                      "order", "--summary", "Ordered 12 scanners")
    agent_cli(world.home, "sync")
    with world.api("wang") as wang, world.api("vera") as vera, world.api("root") as root, \
            world.api("zhang-lead") as other:
        assert visit["id"] in {v["id"] for v in wang.get("/v1/staff/approvals").json()["visits"]}
        assert other.get("/v1/staff/approvals").json() == {"visits": []}
        assert_json_error(other.post(f"/v1/staff/visits/{visit['id']}/approve", json={}),
                          403, "outside_team")
        assert_json_error(vera.post(f"/v1/staff/visits/{visit['id']}/approve", json={}),
                          403, "forbidden")
        assert_json_error(wang.post(f"/v1/staff/visits/{visit['id']}/return", json={}),
                          422, "invalid_request")
        approved = wang.post(f"/v1/staff/visits/{visit['id']}/approve",
                             json={"comment": "好"})
        assert approved.status_code == 200 and approved.json()["status"] == "approved"
        assert_json_error(wang.post(f"/v1/staff/visits/{visit['id']}/return",
                                    json={"comment": "late"}), 409, "not_submitted")
        shown = wang.get(f"/v1/staff/visits/{visit['id']}").json()
        assert [h["status"] for h in shown["history"]] == ["submitted", "approved"]

        queue = vera.get("/v1/staff/callbacks").json()["visits"]
        (call,) = [c for c in queue if c["id"] == visit["id"]]
        assert (call["phone"], call["decision_maker"], call["callback_reason"]) == (
            "+852 2528 3301", "Mark Ellison", "purpose")
        assert_json_error(vera.post(f"/v1/staff/callbacks/{visit['id']}",
                                    json={"result": "disputed"}), 400, "note_required")
        disputed = vera.post(f"/v1/staff/callbacks/{visit['id']}",
                             json={"result": "disputed", "note": "only 6 scanners ordered"})
        assert disputed.status_code == 200 and disputed.json()["callback"] == "disputed"
        assert_json_error(vera.post(f"/v1/staff/callbacks/{visit['id']}",
                                    json={"result": "verified"}), 409, "already_called")
        assert [d["id"] for d in wang.get("/v1/staff/disputes").json()["visits"]] == [visit["id"]]
        assert other.get("/v1/staff/disputes").json() == {"visits": []}
        (figures,) = wang.get("/v1/staff/callbacks/figures").json()["reps"]
        assert (figures["rep_name"], figures["disputed"], figures["share_disputed"]) == (
            "李伟", 1, 1.0)
        assert vera.get("/v1/staff/callbacks/figures").json()["throughput"][0]["calls"] == 1

        assert vera.get("/v1/staff/callbacks/policy").json()["sample_pct"] == 20
        assert_json_error(vera.put("/v1/staff/callbacks/policy", json={"sample_pct": 50}),
                          403, "forbidden")
        assert root.put("/v1/staff/callbacks/policy",
                        json={"sample_pct": 50}).json()["sample_pct"] == 50
        assert_json_error(httpx.get(world.server.url + "/v1/staff/callbacks"), 401)
    agent_cli(world.home, "sync")
    local = agent_cli(world.home, "visit", "show", visit["id"])
    assert (local["status"], local["callback"], local["callback_note"]) == (
        "approved", "disputed", "only 6 scanners ordered")
    assert server_cli(world.data, "disputes", "--manager", "wang")[0]["id"] == visit["id"]
    assert server_cli(world.data, "verify", "policy", "show")["sample_pct"] == 50


def test_held_operations_and_conflicts_are_decided_from_the_cli(world: World) -> None:
    mine = world.customer("Ocelot Freight")
    agent_cli(world.home, "sync")
    # Reassigned while the laptop was offline: the visit typed after it is held.
    world.archive.assign(mine["id"], "张敏", "rotation", "admin")
    held_visit = agent_cli(world.home, "visit", "log", "--customer", mine["id"], "--purpose",
                           "service", "--summary", "Visited after the rotation")
    assert agent_cli(world.home, "sync")["results"] == {"quarantined": 1}
    (held,) = [h for h in server_cli(world.data, "quarantine")
               if h["entity_id"] == held_visit["id"]]
    with world.api("root") as root, world.api("wang") as wang:
        assert held["id"] in {h["id"] for h in root.get(
            "/v1/staff/quarantine", params={"open": "true"}).json()["held"]}
        assert_json_error(wang.get("/v1/staff/quarantine"), 403, "forbidden")
        accepted = server_cli(world.data, "quarantine", "accept", str(held["id"]), "--by", "root")
        assert accepted["decision"] == "accepted"
        assert world.archive.get_visit(held_visit["id"])["rep_id"] == world.rep
        twice = server_cli(world.data, "quarantine", "reject", str(held["id"]), "--by", "root",
                           "--reason", "dup", check=False)
        assert twice.returncode == 1 and "was accepted by staff:root" in twice.stderr
        assert_json_error(root.post(f"/v1/staff/quarantine/{held['id']}/reject",
                                    json={"reason": "dup"}), 409, "already_decided")

    card = world.customer("Evergreen Office Supplies")
    agent_cli(world.home, "sync")
    world.archive.edit_customer(card["id"], CustomerPatch(phone="021-6431 7700"), "office")
    agent_cli(world.home, "customer", "edit", card["card_no"], "--phone", "021-6431 9999")
    agent_cli(world.home, "sync")
    (conflict,) = [c for c in server_cli(world.data, "conflicts") if c["customer_id"] == card["id"]]
    with world.api("wang") as wang, world.api("zhang-lead") as other:
        assert conflict["id"] in {c["id"] for c in wang.get("/v1/staff/conflicts").json()["conflicts"]}
        assert other.get("/v1/staff/conflicts").json() == {"conflicts": []}
        assert_json_error(other.post(f"/v1/staff/conflicts/{conflict['id']}/resolve",
                                     json={"keep": "rep"}), 403, "outside_team")
    resolved = server_cli(world.data, "conflicts", "resolve", str(conflict["id"]), "--keep", "rep",
                          "--by", "wang")
    assert (resolved["resolution"], resolved["value"]) == ("rep", "021-6431 9999")
    assert world.archive.get_customer(card["id"])["phone"] == "021-6431 9999"
    agent_cli(world.home, "sync")
    assert agent_cli(world.home, "customer", "show", card["card_no"])["phone"] == "021-6431 9999"
