"""The staff API for customers, the pool and the jobs (`/v1/staff/...`, bearer tokens),
on the real app in process; then the same rules through the server CLI."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from schema.clock import ManualClock
from schema.models import CustomerCreate
from server.rules import init_archive

from .harness import SERVER, archive_of, make_client, run, server_cli

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    clock = ManualClock(T0)
    client = make_client(tmp_path / "srv", clock)
    arch = archive_of(client)
    arch.add_rep("Lead", None, "senior")
    mine = arch.add_rep("Mine", "Lead", "mid")["id"]
    theirs = arch.add_rep("Theirs", None, "mid")["id"]
    arch.add_staff("admin", "admin")
    arch.add_staff("mgr", "manager", "Lead")
    arch.add_staff("office", "verifier")
    cards = {name: arch.add_customer(CustomerCreate(name=f"{name} Co", grade=grade), owner)
             for name, grade, owner in (("mine", "A", mine), ("theirs", "B", theirs),
                                        ("pooled", "C", None))}
    tokens = {who: {"Authorization": "Bearer " + arch.create_staff_token(who)}
              for who in ("admin", "mgr", "office")}
    yield {"client": client, "clock": clock, "cards": cards, "as": tokens, "mine": mine}
    arch.close()


def call(world: dict[str, Any], who: str, method: str, path: str, **kw: Any) -> Any:
    return world["client"].request(method, path, headers=world["as"].get(who, {}), **kw)


def test_a_manager_sees_and_acts_on_their_team_and_the_pool_only(world: dict[str, Any]) -> None:
    cards = world["cards"]
    listing = call(world, "mgr", "GET", "/v1/staff/customers").json()
    assert (sorted(c["name"] for c in listing["customers"]), listing["total"]) \
        == (["mine Co", "pooled Co"], 2)
    assert call(world, "admin", "GET", "/v1/staff/customers").json()["total"] == 3
    only_pool = call(world, "mgr", "GET", "/v1/staff/customers", params={"pool": "true"}).json()
    assert [c["name"] for c in only_pool["customers"]] == ["pooled Co"]
    graded = call(world, "admin", "GET", "/v1/staff/customers",
                  params={"grade": "B", "not_visited_for_days": 30}).json()
    assert [c["owner_name"] for c in graded["customers"]] == ["Theirs"]
    for path in ("/v1/staff/customers?owner=Theirs", f"/v1/staff/customers/{cards['theirs']['id']}"):
        resp = call(world, "mgr", "GET", path)
        assert (resp.status_code, resp.json()["error"]) == (403, "outside_team")
    file = call(world, "mgr", "GET", f"/v1/staff/customers/{cards['mine']['card_no']}").json()
    assert file["card"]["name"] == "mine Co" and file["ownership"][0]["reason"] == "card created"

    lock = call(world, "mgr", "POST", f"/v1/staff/customers/{cards['mine']['id']}/lock",
                json={"reason": "top account"})
    assert (lock.status_code, lock.json()["locked"]) == (200, 1)
    locked = call(world, "mgr", "GET", "/v1/staff/customers", params={"locked": "true"}).json()
    assert [c["name"] for c in locked["customers"]] == ["mine Co"]
    # The role is checked before the body: a verifier learns nothing about it.
    resp = call(world, "office", "POST", f"/v1/staff/customers/{cards['mine']['id']}/unlock",
                content=b"{not json")
    assert (resp.status_code, resp.json()["error"]) == (403, "forbidden")
    assert call(world, "nobody", "GET", "/v1/staff/customers").status_code == 401
    resp = call(world, "mgr", "POST", f"/v1/staff/customers/{cards['theirs']['id']}/assign",
                json={"rep": "Mine", "reason": "taking over"})
    assert (resp.status_code, resp.json()["error"]) == (403, "outside_team")
    resp = call(world, "mgr", "POST", f"/v1/staff/customers/{cards['pooled']['id']}/assign",
                json={"rep": "Mine", "reason": "local lead"})
    assert (resp.status_code, resp.json()["owner_rep_id"]) == (200, world["mine"])
    resp = call(world, "mgr", "POST", "/v1/staff/customers/FV999999/lock", json={})
    assert resp.status_code == 404

    world["client"].app.state.archive.add_customer(CustomerCreate(name="Inbound Lead"))
    plan = call(world, "mgr", "POST", "/v1/staff/distribute",
                json={"to_team": "mgr", "dry_run": True})
    assert plan.status_code == 200, plan.text
    assert (plan.json()["assigned"], plan.json()["plan"][0]["customer"]) == ({"Mine": 1}, "FV000004")
    outside = call(world, "mgr", "POST", "/v1/staff/distribute", json={"to_reps": ["Theirs"]})
    assert (outside.status_code, outside.json()["error"]) == (403, "outside_team")
    done = call(world, "admin", "POST", "/v1/staff/distribute", json={"to_reps": ["Theirs"]})
    assert done.json()["assigned"] == {"Theirs": 1}


def test_pool_policy_warnings_and_jobs(world: dict[str, Any]) -> None:
    assert call(world, "office", "GET", "/v1/staff/pool/policy").json()["return_days_a"] == 90
    resp = call(world, "mgr", "PUT", "/v1/staff/pool/policy", json={"warn_days": 10})
    assert resp.status_code == 403
    resp = call(world, "admin", "PUT", "/v1/staff/pool/policy", json={"warn_days": 9999})
    assert (resp.status_code, resp.json()["error"]) == (400, "invalid_policy")
    resp = call(world, "admin", "PUT", "/v1/staff/pool/policy", json={"warn_days": 10})
    assert resp.json()["warn_days"] == 10
    assert call(world, "mgr", "POST", "/v1/staff/jobs/run").status_code == 403
    world["clock"].set(T0 + timedelta(days=81))  # due on day 90, warned 10 days before
    run_ = call(world, "admin", "POST", "/v1/staff/jobs/run").json()
    assert (run_["warned"], run_["returned"]) == (2, 0)
    warnings = call(world, "mgr", "GET", "/v1/staff/pool/warnings").json()["warnings"]
    assert [w["rep_name"] for w in warnings] == ["Mine"]  # the team's only
    assert warnings[0]["returns_at"] == "2026-06-03T09:00:00.000000Z"
    assert len(call(world, "admin", "GET", "/v1/staff/pool/warnings").json()["warnings"]) == 2


def test_the_server_cli_for_the_pool_locks_distribution_and_jobs(tmp_path: Path) -> None:
    data = tmp_path / "srv"
    arch = init_archive(data)
    arch.add_rep("Boss", None, "senior")
    for name, tier in (("Zhao", "senior"), ("Qian", "mid"), ("Sun", "junior")):
        arch.add_rep(name, "Boss", tier)
    arch.add_staff("admin", "admin")
    arch.add_staff("mgr", "manager", "Boss")
    key = arch.add_customer(CustomerCreate(name="Key Account Co"), "Zhao")
    arch.add_customer(CustomerCreate(name="Old Pool Co", industry="Retail"))
    bad = server_cli(data, "pool", "policy", "set", "--warn-days", "x", "--by", "admin",
                     check=False)
    assert bad.returncode == 1 and bad.stderr.startswith("error: --warn-days must be a whole")
    assert server_cli(data, "pool", "policy", "set", "--claims-per-day", "3",
                      "--by", "admin")["claims_per_day"] == 3
    assert server_cli(data, "customer", "lock", key["card_no"], "--reason", "top account",
                      "--by", "mgr")["locked"] == 1
    leads = tmp_path / "leads.csv"
    leads.write_text("name,grade\nAlpha Lead,A\nBeta Lead,C\nGamma Lead,B\n", encoding="utf-8")
    plan = server_cli(data, "customer", "distribute", str(leads), "--to-team", "mgr",
                      "--dry-run", "--by", "mgr")
    assert [(r["customer"], r["to"]) for r in plan["plan"]] == [
        ("leads.csv line 2", "Zhao"), ("leads.csv line 3", "Sun"), ("leads.csv line 4", "Qian")]
    # Without --by: the archive's administrator at the server's shell, as in the issue.
    table = run([SERVER, "customer", "distribute", str(leads), "--to-reps", "Qian,Sun",
                 "--data", str(data)])
    assert "grade A, no senior rep with room" in table.stdout and "Qian 2" in table.stdout
    assert [c["name"] for c in arch.list_customers("Qian")] == ["Alpha Lead", "Gamma Lead"]
    assert [r["name"] for r in server_cli(data, "pool", "list", "--search", "retail")] \
        == ["Old Pool Co"]
    later = (datetime.now(UTC) + timedelta(days=94)).isoformat()
    out = server_cli(data, "jobs", "run", "--at", later)
    assert out["returned"] == 3 and key["card_no"] not in out["returned_cards"]
    assert arch.pool_policy()["claims_per_day"] == 3
