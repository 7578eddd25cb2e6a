"""The company's rules end to end from the rep's laptop (issue 11): a real `serve`
process, real enrolled vaults, the `fieldvault` and `fieldvault-server` CLIs.

The manager returns a visit and the rep corrects it; an approved visit is read-only;
a daily plan goes to the manager and back; the pool's rules arrive with every pull; a
duplicate card is held back and the rep sees why; a rep browses the pool, claims a
customer and gets its whole history, and a previous owner is refused with the reason.
(The same laptop logic without the server's parts: tests/test_agent_rules.py.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from schema.models import CustomerCreate, PoolEntry

from . import harness
from .harness import ServerProcess, agent_cli, init_server, server_cli

pytestmark = pytest.mark.slow


@dataclass
class Company:
    data: Path
    rep_a: str
    rep_b: str
    home_a: Path
    home_b: Path
    manager: str  # the staff user who reviews A's and B's work


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Company]:
    root = tmp_path_factory.mktemp("agent-rules-e2e")
    data = root / "server"
    init_server(data)
    server = ServerProcess(data).start()
    try:
        arch = harness.archive(data)
        boss = arch.add_rep("王建国", tier="senior")["id"]
        rep_a = arch.add_rep("李伟", manager=boss)["id"]
        rep_b = arch.add_rep("张敏", manager=boss)["id"]
        arch.add_staff("wang", "manager", boss)
        homes = root / "a", root / "b"
        for home, rep in zip(homes, (rep_a, rep_b), strict=True):
            harness.lib_enroll(data, home, server.url, rep)
        yield Company(data, rep_a, rep_b, homes[0], homes[1], "wang")
    finally:
        server.stop()


def card(company: Company, name: str, owner: str | None, **fields: Any) -> dict[str, Any]:
    return harness.archive(company.data).add_customer(CustomerCreate(name=name, **fields), owner)


def one_error_line(proc: Any) -> str:
    assert proc.returncode != 0
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: "), proc.stderr
    return str(proc.stderr[len("error: "):].strip())


def test_pull_brings_the_pool_rules(company: Company) -> None:
    agent_cli(company.home_a, "sync")
    with harness.open_store(company.home_a) as store:
        assert store.pool_rules() == {"return_days": {"A": 90, "B": 90, "C": 90},
                                      "warn_days": 7, "grace_days": 3}


def test_a_returned_visit_is_corrected_and_an_approved_one_is_read_only(
        company: Company) -> None:
    home = company.home_a
    cust = card(company, "上海华联超市", company.rep_a)
    agent_cli(home, "sync")
    visit = agent_cli(home, "visit", "log", "--customer", cust["card_no"], "--purpose", "order",
                      "--summary", "订货 200 件")
    assert agent_cli(home, "sync")["results"] == {"accepted": 1}

    server_cli(company.data, "visit", "return", visit["id"], "--by", company.manager,
               "--comment", "缺少订单金额")
    assert agent_cli(home, "sync")["returned"] == 1
    (item,) = agent_cli(home, "visit", "list", "--attention")
    assert (item["state"], item["id"], item["reason"]) == ("returned", visit["id"], "缺少订单金额")

    agent_cli(home, "visit", "edit", visit["id"], "--outcome", "订单金额 ¥48,000")
    assert agent_cli(home, "sync")["results"] == {"accepted": 1}
    (archived,) = harness.archive(company.data).list_visits(customer=cust["id"])
    assert (archived["status"], archived["outcome"]) == ("submitted", "订单金额 ¥48,000")
    assert agent_cli(home, "visit", "list", "--attention") == []

    server_cli(company.data, "visit", "approve", visit["id"], "--by", company.manager)
    agent_cli(home, "sync")
    assert agent_cli(home, "visit", "show", visit["id"])["status"] == "approved"
    assert one_error_line(agent_cli(home, "visit", "edit", visit["id"], "--summary", "x",
                                    check=False)) == (
        f"visit {visit['id']} is approved: read-only. Ask your manager to correct it.")
    assert agent_cli(home, "status")["outbox"]["pending"] == 0


def test_a_daily_plan_goes_to_the_manager_and_back(company: Company) -> None:
    home = company.home_b
    first, second = card(company, "杭州青禾食品", company.rep_b), card(company, "Sunrise Bakery",
                                                                    company.rep_b)
    agent_cli(home, "sync")
    today = datetime.now().astimezone().date().isoformat()
    for cust, purpose in ((first, "collection"), (second, "service")):
        agent_cli(home, "plan", "add", "--date", today, "--customer", cust["card_no"],
                  "--purpose", purpose)
    agent_cli(home, "plan", "submit", "--date", today)
    assert agent_cli(home, "sync")["results"] == {"accepted": 1}

    plan_id = f"{company.rep_b}:{today}"
    server_cli(company.data, "plan", "return", plan_id, "--by", company.manager,
               "--comment", "先去收款")
    assert agent_cli(home, "sync")["pulled_plans"] == 1
    shown = agent_cli(home, "plan", "show", "--date", today)
    assert (shown["status"], shown["comment"]) == ("returned", "先去收款")
    assert agent_cli(home, "status")["attention"]["counts"]["returned_plans"] == 1

    agent_cli(home, "plan", "add", "--date", today, "--customer", first["card_no"],
              "--purpose", "collection", "--time", "09:00")
    agent_cli(home, "plan", "submit", "--date", today)
    assert agent_cli(home, "sync")["results"] == {"accepted": 1}
    server_cli(company.data, "plan", "approve", plan_id, "--by", company.manager)
    agent_cli(home, "sync")
    assert agent_cli(home, "plan", "show", "--date", today)["status"] == "approved"
    assert one_error_line(agent_cli(home, "plan", "remove", "--date", today, "--customer",
                                    second["card_no"], check=False)) == (
        f"the plan for {today} is approved: read-only. Ask your manager to change it.")


def test_a_duplicate_card_is_held_back_and_the_rep_sees_why(company: Company) -> None:
    first = card(company, "Harbor Point Logistics", company.rep_b, phone="+852 2528 3301")
    agent_cli(company.home_a, "customer", "add", "--name", "Harbour Point Logistics",
              "--phone", "+852 2528 3301")
    assert agent_cli(company.home_a, "sync")["results"] == {"quarantined": 1}
    (held,) = [r for r in agent_cli(company.home_a, "visit", "list", "--attention")
               if r["state"] == "quarantined"]
    assert held["kind"] == "customer.create" and first["card_no"] in held["reason"]


def test_a_rep_claims_from_the_pool_and_gets_the_whole_history(company: Company) -> None:
    arch = harness.archive(company.data)
    drifted = card(company, "Evergreen Office Supplies", company.rep_a, phone="021-6431 7700",
                   industry="Office supplies", area="浦东")
    mine = card(company, "ACME Tools", company.rep_a)
    agent_cli(company.home_a, "sync")
    visit = agent_cli(company.home_a, "visit", "log", "--customer", drifted["card_no"],
                      "--purpose", "service", "--summary", "toner contract renewed")
    agent_cli(company.home_a, "sync")
    for cust in (drifted, mine):
        arch.assign(cust["id"], None, "not served", "admin")
    agent_cli(company.home_a, "sync")

    page = agent_cli(company.home_b, "pool", "list", "--search", "Evergreen")
    (entry,) = page["customers"]
    assert set(entry) == set(PoolEntry.model_fields)  # no phone, notes or history
    assert (entry["id"], entry["area"]) == (drifted["id"], "浦东")

    claimed = agent_cli(company.home_b, "pool", "claim", entry["id"])
    assert claimed["card_no"] == drifted["card_no"] and claimed["pulled_customers"] >= 1
    shown = agent_cli(company.home_b, "customer", "show", drifted["card_no"])
    assert shown["phone"] == "021-6431 7700"
    assert [v["id"] for v in shown["visits"]] == [visit["id"]]  # A's visit came with it

    # the previous owner waits before claiming back: the server's reason, on one line
    message = one_error_line(agent_cli(company.home_a, "pool", "claim", mine["card_no"],
                                       check=False))
    assert "30 days" in message and not message.startswith("server refused")
    assert agent_cli(company.home_a, "customer", "list", "--search", "ACME") == []
