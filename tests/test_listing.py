"""No listing is cut silently (issue 8, finding 15): a scope of more than 1,000
customers is listed whole with --json by both CLIs, a table view that is cut says
so on stderr, and --limit N / --limit 0 do what they say."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from schema.models import CustomerCreate

from .harness import (
    AGENT,
    SERVER,
    ServerProcess,
    add_rep,
    archive,
    init_server,
    lib_enroll,
    lib_sync,
    log_visits,
    run,
)

CUSTOMERS = 1_234
VISITS = 1_050


@dataclass
class World:
    data: Path
    home: Path
    rep: str
    customer_ids: set[str]
    visit_ids: set[str]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("listing")
    data, home = root / "server", root / "agent"
    init_server(data)
    rep = add_rep(data, "Big Scope")
    archive(data).import_customers(
        [(CustomerCreate(name=f"客户 {i:05d}"), rep) for i in range(CUSTOMERS)], "test")
    server = ServerProcess(data).start()
    try:
        lib_enroll(data, home, server.url, rep)
        lib_sync(home)
        customer_ids = {c["id"] for c in archive(data).list_customers(rep)}
        visits = log_visits(home, sorted(customer_ids)[:7], VISITS, "bulk")
        lib_sync(home)
        yield World(data, home, rep, customer_ids, {v["id"] for v in visits})
    finally:
        server.stop()


def agent(world: World, *args: str) -> tuple[str, str]:
    proc = run([AGENT, *args, "--home", str(world.home)])
    return proc.stdout, proc.stderr


def admin(world: World, *args: str) -> tuple[str, str]:
    proc = run([SERVER, *args, "--data", str(world.data)])
    return proc.stdout, proc.stderr


def table_rows(out: str, marker: str) -> int:
    return sum(1 for line in out.splitlines() if marker in line)


def test_agent_json_lists_every_customer_and_visit(world: World) -> None:
    out, err = agent(world, "customer", "list", "--json")
    rows = json.loads(out)
    assert len(rows) == CUSTOMERS and {r["id"] for r in rows} == world.customer_ids
    assert err == ""
    out, err = agent(world, "visit", "list", "--json")
    assert {r["id"] for r in json.loads(out)} == world.visit_ids and err == ""


def test_agent_table_that_is_cut_says_so(world: World) -> None:
    out, err = agent(world, "customer", "list")
    assert table_rows(out, "客户 ") == 100
    assert err.strip() == (f"note: showing 100 of {CUSTOMERS:,} customers; "
                           "--limit 0 or --json shows all")
    out, err = agent(world, "customer", "list", "--limit", "0")
    assert table_rows(out, "客户 ") == CUSTOMERS and err == ""
    out, err = agent(world, "visit", "list", "--limit", "5")
    assert table_rows(out, "bulk visit #") == 5
    assert f"showing 5 of {VISITS:,} visits" in err


def test_agent_limit_and_search(world: World) -> None:
    out, err = agent(world, "customer", "list", "--json", "--limit", "1001")
    assert len(json.loads(out)) == 1001
    assert err.strip() == f"note: showing 1,001 of {CUSTOMERS:,} customers; --limit 0 shows all"
    # a search whose matches all fit prints no note; one that is cut counts its matches
    out, err = agent(world, "customer", "list", "--search", "客户 0000")
    assert table_rows(out, "客户 0000") == 10 and err == ""
    out, err = agent(world, "customer", "list", "--search", "客户 00", "--limit", "3")
    assert "showing 3 of 1,000 customers" in err


def test_server_listings_are_whole_with_json(world: World) -> None:
    out, err = admin(world, "customer", "list", "--json")
    assert {r["id"] for r in json.loads(out)} == world.customer_ids and err == ""
    out, _ = admin(world, "visit", "list", "--rep", world.rep, "--json")
    assert {r["id"] for r in json.loads(out)} == world.visit_ids
    for listing in (["conflicts"], ["quarantine"], ["device", "list"], ["rep", "list"]):
        out, err = admin(world, *listing, "--json")
        assert isinstance(json.loads(out), list) and err == ""
    out, _ = admin(world, "audit", "list", "--json")
    entries = json.loads(out)
    assert [e["seq"] for e in entries] == sorted(e["seq"] for e in entries)
    # the export of the listings above is itself audited, with the real row count
    exports = [e["details"]["count"] for e in entries if e["action"] == "export.customers"]
    assert exports[-1] == CUSTOMERS


def test_server_table_that_is_cut_says_so(world: World) -> None:
    out, err = admin(world, "customer", "list")
    assert table_rows(out, "客户 ") == 100
    assert err.strip() == (f"note: showing 100 of {CUSTOMERS:,} customers; "
                           "--limit 0 or --json shows all")
    out, err = admin(world, "visit", "list", "--limit", "7")
    assert table_rows(out, "bulk visit #") == 7 and f"showing 7 of {VISITS:,} visits" in err
    out, err = admin(world, "audit", "list", "--limit", "2")
    assert "showing 2 of" in err and "audit entries" in err
