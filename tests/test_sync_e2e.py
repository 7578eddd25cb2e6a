"""End to end: a real `fieldvault-server serve` process and two agent homes.

Covers the rep's day as the issue tells it: visits logged with the server down
reach the archive later; each rep pulls only their own scope; reassigning a
customer moves it, with its whole visit history, from one laptop to the other;
a visit logged offline for a customer reassigned meanwhile is accepted when
the rep owned the customer at the visit's start, and quarantined otherwise.

Every test runs on SQLite and on PostgreSQL behind two API workers.

The behaviour under test goes through the CLIs (`fieldvault sync`, `visit log`,
`customer add`, `fieldvault-server customer assign`, `quarantine`); set-up and
inspection use the libraries (tests/harness.py) to keep the run short.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.store import StoreError
from schema.models import VisitPatch

from . import harness
from .harness import AGENT, Backend, ServerProcess, agent_cli, run, server_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(module_backend: Backend) -> Iterator[ServerProcess]:
    """One server for the module, on each backend in turn (SQLite; PostgreSQL with two
    API workers); each test uses its own reps, customers and homes."""
    proc = module_backend.server().start()
    yield proc
    proc.stop()


def sync(home: Path) -> dict[str, Any]:
    report = agent_cli(home, "sync")
    assert isinstance(report, dict)
    return report


def log_visit(home: Path, customer: str, summary: str, *extra: str) -> dict[str, Any]:
    visit = agent_cli(home, "visit", "log", "--customer", customer, "--purpose", "service",
                      "--summary", summary, *extra)
    assert visit["summary"] == summary
    return visit  # type: ignore[no-any-return]


def on_device(home: Path) -> tuple[set[str], set[str]]:
    customers, visits = harness.device_rows(home)
    return set(customers), set(visits)


def archived_visits(data: Path, customer_id: str) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in harness.archive(data).list_visits(customer=customer_id)}


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def test_visits_logged_while_server_down_reach_archive(
    server: ServerProcess, tmp_path: Path
) -> None:
    data = server.data
    rep = harness.archive(data).add_rep("王芳")["id"]
    (customer,) = harness.add_customers(data, rep, ["杭州西湖茶叶有限公司"])
    home = tmp_path / "agent"
    harness.lib_enroll(data, home, server.url, rep)
    assert sync(home)["pulled_customers"] == 1

    server.stop()
    try:
        first = log_visit(home, customer["card_no"], "Tasted the spring Longjing, wants 50 kg",
                          "--outcome", "quote sent")
        second = log_visit(home, customer["id"], "Collected the March invoice")
        offline = run([AGENT, "sync", "--home", str(home)], check=False)
        assert offline.returncode == 2, offline
        assert offline.stdout == ""
        lines = offline.stderr.strip().splitlines()
        assert len(lines) == 1, offline.stderr
        assert "cannot reach" in lines[0] and "kept" in lines[0]
        assert harness.outbox_counts(home)["pending"] == 2
        assert on_device(home)[1] == {first["id"], second["id"]}
        assert archived_visits(data, customer["id"]) == {}
    finally:
        server.start()

    report = sync(home)
    assert report["pushed"] == 2
    assert report["results"] == {"accepted": 2}
    archived = archived_visits(data, customer["id"])
    assert set(archived) == {first["id"], second["id"]}
    assert archived[first["id"]]["summary"] == "Tasted the spring Longjing, wants 50 kg"
    assert archived[first["id"]]["outcome"] == "quote sent"
    assert archived[second["id"]]["summary"] == "Collected the March invoice"
    assert {v["rep_id"] for v in archived.values()} == {rep}
    assert harness.outbox_counts(home) == harness.EMPTY_OUTBOX
    # Another sync sends nothing again and duplicates nothing.
    assert harness.lib_sync(home).pushed == 0
    assert set(archived_visits(data, customer["id"])) == set(archived)


def test_scope_reassignment_to_rep_and_pool(server: ServerProcess, tmp_path: Path) -> None:
    data = server.data
    arch = harness.archive(data)
    rep_a, rep_b = arch.add_rep("Zhang Min")["id"], arch.add_rep("Olivia Brown")["id"]
    moved, kept = harness.add_customers(data, rep_a, ["深圳前海物流", "Harbor Lights Trading"])
    (b_own,) = harness.add_customers(data, rep_b, ["北京燕山石化"])
    (pooled,) = harness.add_customers(data, None, ["Unclaimed Pool Ltd"])
    home_a, home_b = tmp_path / "a", tmp_path / "b"
    harness.lib_enroll(data, home_a, server.url, rep_a)
    harness.lib_enroll(data, home_b, server.url, rep_b)
    harness.lib_sync(home_a)
    harness.lib_sync(home_b)
    a1, a2 = harness.log_visits(home_a, [moved["id"]], 2, "Qianhai")
    (a3,) = harness.log_visits(home_a, [kept["id"]], 1, "Harbor")
    (b1,) = harness.log_visits(home_b, [b_own["id"]], 1, "燕山石化")

    # Each rep pulls only their own scope.
    assert sync(home_a)["results"] == {"accepted": 3}
    assert sync(home_b)["results"] == {"accepted": 1}
    assert on_device(home_a) == ({moved["id"], kept["id"]}, {a1["id"], a2["id"], a3["id"]})
    assert on_device(home_b) == ({b_own["id"]}, {b1["id"]})
    with harness.open_store(home_a) as store:
        assert list(store.iter_customers("燕山石化")) == []
        with pytest.raises(StoreError):
            store.get_customer(b_own["card_no"])
    assert pooled["id"] not in on_device(home_a)[0] | on_device(home_b)[0]

    # Reassign to B: the customer and ALL its visits leave A and reach B with history.
    assigned = server_cli(data, "customer", "assign", moved["card_no"], rep_b,
                          "--reason", "rotation")
    assert assigned["owner_rep_id"] == rep_b
    assert sync(home_a)["evicted"] == 1
    assert on_device(home_a) == ({kept["id"]}, {a3["id"]})
    report_b = sync(home_b)
    assert report_b["pulled_customers"] >= 1 and report_b["pulled_visits"] >= 2
    assert on_device(home_b) == ({b_own["id"], moved["id"]}, {b1["id"], a1["id"], a2["id"]})
    customers_b, visits_b = harness.device_rows(home_b)
    assert customers_b[moved["id"]]["owner_rep_id"] == rep_b
    assert customers_b[moved["id"]]["name"] == "深圳前海物流"
    for visit in (a1, a2):
        got = visits_b[visit["id"]]
        assert got["rep_id"] == rep_a  # authorship intact
        assert (got["summary"], got["outcome"]) == (visit["summary"], visit["outcome"])
    with harness.open_store(home_b) as store:
        with pytest.raises(StoreError, match="only the author"):
            store.edit_visit(a1["id"], VisitPatch(summary="rewritten by the successor"))
        shown = [v["id"] for v in store.list_visits(moved["card_no"])]
    assert sorted(shown) == sorted([a1["id"], a2["id"]])
    b2 = log_visit(home_b, moved["card_no"], "Introduced myself as the new account manager")
    assert sync(home_b)["results"] == {"accepted": 1}

    # Back to the pool: gone from B too, and still whole in the archive.
    server_cli(data, "customer", "assign", moved["id"], "pool", "--reason", "no follow-up")
    assert sync(home_b)["evicted"] == 1
    assert on_device(home_b) == ({b_own["id"]}, {b1["id"]})
    harness.lib_sync(home_a)
    assert on_device(home_a) == ({kept["id"]}, {a3["id"]})
    archived = archived_visits(data, moved["id"])
    assert set(archived) == {a1["id"], a2["id"], b2["id"]}
    assert [archived[v["id"]]["rep_id"] for v in (a1, a2, b2)] == [rep_a, rep_a, rep_b]
    arch = harness.archive(data)
    assert arch.get_customer(moved["id"])["owner_rep_id"] is None
    moves = arch.ownership_history(moved["id"])
    assert [(m["from_rep_id"], m["to_rep_id"]) for m in moves] == [
        (None, rep_a), (rep_a, rep_b), (rep_b, None)]


def test_card_created_on_the_laptop_gets_a_card_number(
    server: ServerProcess, tmp_path: Path
) -> None:
    data = server.data
    rep = harness.archive(data).add_rep("Sun Li")["id"]
    home = tmp_path / "agent"
    harness.lib_enroll(data, home, server.url, rep)
    created = agent_cli(home, "customer", "add", "--name", "Riverside Dental Clinic",
                        "--phone", "+86 21 5555 0101", "--grade", "B")
    assert created["card_no"] == ""
    (visit,) = harness.log_visits(home, [created["id"]], 1, "Riverside")
    assert sync(home)["results"] == {"accepted": 2}
    local = harness.device_rows(home)[0][created["id"]]
    assert re.fullmatch(r"FV\d{6}", local["card_no"]), local["card_no"]
    remote = harness.archive(data).get_customer(local["card_no"])
    assert remote["id"] == created["id"]
    assert (remote["name"], remote["phone"], remote["grade"]) == (
        "Riverside Dental Clinic", "+86 21 5555 0101", "B")
    assert remote["owner_rep_id"] == rep
    assert remote["ownership_source"] == "developed"
    assert set(archived_visits(data, created["id"])) == {visit["id"]}
    cards = [r["card_no"] for r in harness.archive(data).list_customers()]
    assert len(cards) == len(set(cards))


def test_offline_visit_for_customer_reassigned_meanwhile(
    server: ServerProcess, tmp_path: Path
) -> None:
    data = server.data
    arch = harness.archive(data)
    rep_a, rep_b = arch.add_rep("Chen Jie")["id"], arch.add_rep("Liu Yang")["id"]
    (customer,) = harness.add_customers(data, rep_a, ["成都天府软件园"])
    home_a, home_b = tmp_path / "a", tmp_path / "b"
    harness.lib_enroll(data, home_a, server.url, rep_a)
    harness.lib_enroll(data, home_b, server.url, rep_b)
    harness.lib_sync(home_a)

    # A is out of reach for the day; meanwhile the office reassigns the customer.
    (before,) = harness.log_visits(home_a, [customer["id"]], 1, "Morning demo")
    server_cli(data, "customer", "assign", customer["card_no"], rep_b,
               "--reason", "territory change")
    # Typed in the evening, but the visit itself happened before the reassignment.
    started = parse(before["started_at"]) + timedelta(microseconds=1)
    backdated = log_visit(home_a, customer["card_no"], "Lunch with the purchasing manager",
                          "--started-at", started.isoformat())
    # This one happened after the customer had left A.
    (after,) = harness.log_visits(home_a, [customer["id"]], 1, "No longer mine")
    assert parse(after["started_at"]) > started
    assert harness.outbox_counts(home_a)["pending"] == 3

    report = sync(home_a)
    assert report["results"] == {"accepted": 2, "quarantined": 1}
    assert report["evicted"] == 1
    assert report["needs_attention"] == 1
    archived = archived_visits(data, customer["id"])
    assert set(archived) == {before["id"], backdated["id"]}
    assert {v["rep_id"] for v in archived.values()} == {rep_a}

    held = [q for q in server_cli(data, "quarantine") if q["rep_id"] == rep_a]
    assert [q["entity_id"] for q in held] == [after["id"]]
    assert (held[0]["rep_id"], held[0]["kind"]) == (rep_a, "visit.create")
    assert held[0]["payload"]["data"]["summary"] == after["summary"]
    assert held[0]["payload"]["data"]["customer_id"] == customer["id"]
    assert "not assigned to you" in held[0]["reason"]

    # The laptop keeps the held record visible; syncing again neither re-sends nor loses it.
    with harness.open_store(home_a) as store:
        attention = store.needs_attention()
    assert [(a["entity_id"], a["state"]) for a in attention] == [(after["id"], "quarantined")]
    assert attention[0]["data"]["summary"] == after["summary"]
    assert harness.lib_sync(home_a).pushed == 0
    assert [q["entity_id"] for q in server_cli(data, "quarantine")
            if q["rep_id"] == rep_a] == [after["id"]]
    assert on_device(home_a) == (set(), set())

    harness.lib_sync(home_b)
    assert on_device(home_b) == ({customer["id"]}, {before["id"], backdated["id"]})
