"""End to end with a real `fieldvault-server serve`: a rep's laptop pushes its daily
plan (a signed plan.submit, as the agent will send it), the manager approves it
through the staff API with a bearer token, and the laptop's next pull carries the
plan's new state and the pool's rules. The admin then lists plans and exports the
daily report from the real CLI; the manager exports it as CSV over the API.

The rules themselves (refusals, plan against actual, figures) are tested on both
backends in tests/contract/test_plans.py and test_reports.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from schema.models import PullResponse, PushResponse

from . import harness
from .harness import ServerProcess, enroll_device, init_server, op, server_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("plans") / "server"
    init_server(data)
    proc = ServerProcess(data).start()
    yield proc
    proc.stop()


def test_plan_submitted_approved_and_pulled_with_the_pool_rules(served: ServerProcess,
                                                                tmp_path: Path) -> None:
    data = served.data
    assert server_cli(data, "policy", "set", "--timezone", "Asia/Shanghai")["timezone"] == (
        "Asia/Shanghai")
    arch = harness.archive(data)  # set-up through the library: CLI runs cost seconds
    arch.add_rep("王经理")
    rep_id = arch.add_rep("李伟", "王经理")["id"]
    arch.add_staff("wang", "manager", "王经理")
    token = arch.create_staff_token("wang", "erp")
    (one, two) = harness.add_customers(data, rep_id, ["杭州西湖茶叶有限公司", "宁波港务"])
    day = (datetime.now(ZoneInfo("Asia/Shanghai")) + timedelta(days=1)).date().isoformat()
    plan_id = f"{rep_id}:{day}"

    with httpx.Client(base_url=served.url, timeout=30) as client:
        laptop = enroll_device(client, arch, rep_id)
        staff = {"Authorization": f"Bearer {token}"}
        pushed = laptop.push([op("plan.submit", day, {"day": day, "items": [
            {"customer_id": one["id"], "purpose": "order", "time": "09:30"},
            {"customer_id": two["id"], "purpose": "collection", "time": None}]})])
        assert pushed.status_code == 200, pushed.text
        (result,) = PushResponse.model_validate(pushed.json()).results
        assert (result.status, result.rev) == ("accepted", 1)

        first = PullResponse.model_validate(laptop.pull().json())
        plans = [c.record for c in first.changes if c.kind == "plan"]
        assert [(p.id, p.status, p.rev) for p in plans] == [(plan_id, "submitted", 1)]  # type: ignore[union-attr]
        assert first.pool_rules is not None
        assert first.pool_rules.model_dump(mode="json") == {
            "return_days": {"A": 90, "B": 90, "C": 90}, "warn_days": 7, "grace_days": 3}

        listed = client.get("/v1/staff/plans", params={"status": "submitted"}, headers=staff)
        assert [p["id"] for p in listed.json()["plans"]] == [plan_id]
        approved = client.post(f"/v1/staff/plans/{plan_id}/approve", json={"comment": "好"},
                               headers=staff)
        assert approved.status_code == 200, approved.text
        assert (approved.json()["status"], approved.json()["reviewed_by"]) == ("approved", "wang")

        later = PullResponse.model_validate(laptop.pull(first.cursor).json())
        assert [(c.kind, c.record.status, c.record.comment) for c in later.changes] == [  # type: ignore[union-attr]
            ("plan", "approved", "好")]
        assert later.pool_rules == first.pool_rules
        nothing = PullResponse.model_validate(laptop.pull(later.cursor).json())
        assert nothing.changes == [] and nothing.pool_rules == first.pool_rules

        shown = client.get(f"/v1/staff/plans/{plan_id}", headers=staff).json()
        assert [i["result"] for i in shown["items"]] == ["open", "open"]
        daily = client.get("/v1/staff/reports/daily", params={"rep": "李伟", "date": day},
                           headers=staff)
        assert daily.status_code == 200 and daily.json()["plan"]["status"] == "approved"
        exported = client.get("/v1/staff/reports/daily",
                              params={"rep": "李伟", "date": day, "format": "csv"}, headers=staff)
        assert exported.status_code == 200 and "杭州西湖茶叶有限公司" in exported.text
        unsigned = client.get("/v1/staff/plans")
        harness.assert_json_error(unsigned, 401)
        no_comment = client.post(f"/v1/staff/plans/{plan_id}/return", json={}, headers=staff)
        harness.assert_json_error(no_comment, 422)
        week = datetime.fromisoformat(day).strftime("%G-W%V")
        weekly = client.get("/v1/staff/reports/weekly", params={"team": "wang", "week": week},
                            headers=staff)
        assert weekly.status_code == 200, weekly.text
        assert [r["rep_name"] for r in weekly.json()["reps"]] == ["李伟"]

    listing: list[dict[str, Any]] = server_cli(data, "plan", "list", "--rep", "李伟")
    assert [(p["id"], p["status"], p["planned"]) for p in listing] == [(plan_id, "approved", 2)]
    out = tmp_path / "daily.csv"
    written = server_cli(data, "report", "daily", "--rep", "李伟", "--date", day, "--csv", str(out))
    assert written["rows"] == 2  # two planned customers, neither visited yet
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and "杭州西湖茶叶有限公司".encode() in raw
    assert out.stat().st_mode & 0o777 == 0o600
    exports = [(e["actor"], e["details"]["count"]) for e in arch.audit_entries()
               if e["action"] == "export.report"]
    assert exports == [("staff:wang", 2), ("admin", 2)]
