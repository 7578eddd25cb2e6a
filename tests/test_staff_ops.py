"""The oversight routes of the staff API (the console's HR, admin and fleet pages are
views over the same calls), on the real app in process: a departure previewed (nothing
written) then recorded and reported; HR tokens that work on /v1/hr; an enrollment code
with its command and QR code; the offline policy and a policy preview; the audit log and
its chain; the overview; the fleet. Refusals are 4xx JSON with a code and a message."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from schema.models import CustomerCreate

from .harness import archive_of, assert_json_error, enroll_device, make_client


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with make_client(tmp_path_factory.mktemp("staff-ops") / "server") as c:
        yield c


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_hr_and_admin_oversight_over_the_staff_api(client: TestClient) -> None:
    arch = archive_of(client)
    arch.add_rep("Lead")
    for name in ("李伟", "张敏", "赵离"):
        arch.add_rep(name, "Lead")
    for i in range(5):
        arch.add_customer(CustomerCreate(name=f"客户 {i}"), "赵离", "admin")
    device = enroll_device(client, arch, "赵离")
    arch.add_staff("root", "admin")
    arch.add_staff("hana", "hr")
    admin, hr = auth(arch.create_staff_token("root")), auth(arch.create_staff_token("hana"))

    people = client.get("/v1/staff/people", headers=hr).json()
    (leaver,) = [p for p in people if p["name"] == "赵离"]
    assert leaver["customers"] == 5 and [d["id"] for d in leaver["devices"]] == [device.device_id]

    ask = {"rep": "赵离", "reassign_to": "team"}
    before = arch.audit_count()
    preview = client.post("/v1/staff/departures/preview", json=ask, headers=hr).json()
    assert (preview["customers"], sorted(t["count"] for t in preview["to"])) == (5, [2, 3])
    assert arch.audit_count() == before
    assert_json_error(client.post("/v1/staff/departures/preview", headers=hr,
                                  json={"rep": "赵离", "reassign_to": "nobody"}),
                      404, "unknown_successor")
    done = client.post("/v1/staff/departures", json={**ask, "reason": "resigned"}, headers=hr)
    assert done.status_code == 201 and done.json()["requested_by"] == "staff:hana"
    assert {v for v in done.json()["reassigned"].values()} == {2, 3}
    report = client.get("/v1/staff/departures/赵离", headers=hr).json()
    assert len(report["customers"]) == 5 and report["devices"][0]["state"] == "revoked"
    assert client.get("/v1/staff/departures", headers=hr).json()[0]["rep_name"] == "赵离"
    assert_json_error(client.get("/v1/staff/departures/李伟", headers=hr), 404, "not_revoked")

    token = client.post("/v1/staff/hr-tokens", json={"name": "erp"}, headers=hr).json()["token"]
    assert client.get("/v1/hr/departures/赵离", headers=auth(token)).status_code == 200
    assert client.delete("/v1/staff/hr-tokens/erp", headers=hr).json()["revoked"] == 1
    assert client.get("/v1/hr/departures/赵离", headers=auth(token)).status_code == 401

    code = client.post("/v1/staff/enroll-codes", json={"rep": "李伟", "ttl_hours": 2},
                       headers=admin).json()
    assert code["command"].endswith(f"--code {code['code']}") and "<path" in code["qr_svg"]
    assert_json_error(client.post("/v1/staff/enroll-codes", json={"rep": "赵离"}, headers=admin),
                      400, "rep_inactive")

    assert client.put("/v1/staff/offline-policy", json={"block_hours": 48},
                      headers=admin).json()["offline_block_hours"] == 48
    assert client.get("/v1/staff/offline-policy", headers=hr).json()["offline_block_hours"] == 48
    seen = client.post("/v1/staff/policy/preview", json={"pool": {"warn_days": 90}},
                       headers=admin).json()
    assert seen["pool"]["now"]["warned"] == 0 and seen["pool"]["new"]["warned"] == 5
    assert_json_error(client.post("/v1/staff/policy/preview", json={"pool": {"nope": 1}},
                                  headers=admin), 400, "invalid_policy")

    page = client.get("/v1/staff/audit?action=rep.revoke&limit=5", headers=admin).json()
    assert {e["action"] for e in page["entries"]} == {"rep.revoke", "rep.revoke_requested"}
    assert page["total"] == 2
    assert client.get("/v1/staff/audit/verify", headers=admin).json()["ok"] is True
    glance = client.get("/v1/staff/overview", headers=admin).json()
    assert glance["devices_by_risk"]["wipe_pending"] == 1 and "healthy" in glance["replication"]
    fleet = client.get("/v1/staff/fleet", headers=admin).json()
    assert [(d["id"], d["risk"]) for d in fleet] == [(device.device_id, "wipe_pending")]
    assert_json_error(client.get("/v1/staff/fleet", headers=hr), 403, "forbidden")
    assert_json_error(client.get("/v1/staff/audit", headers=hr), 403, "forbidden")


def test_bad_input_is_a_4xx_with_a_code(client: TestClient, tmp_path: Path) -> None:
    arch = archive_of(client)
    admin = auth(arch.create_staff_token("root", "probe"))
    assert client.get("/v1/staff/audit?limit=0", headers=admin).status_code == 422
    assert client.post("/v1/staff/departures", json={"rep": "李伟"}, headers=admin).status_code == 422
    assert_json_error(client.post("/v1/staff/departures/preview", headers=admin,
                                  json={"rep": "李伟", "effective_at": "next tuesday"}),
                      400, "invalid_time")
    assert_json_error(client.post("/v1/staff/enroll-codes", json={"rep": "nobody"},
                                  headers=admin), 404, "unknown_rep")
