"""The fleet view's unsynced work, end to end: a real `fieldvault-server serve`, a real
laptop (the agent CLI, its SQLCipher vault). The rep works offline; the laptop's
`fieldvault sync` checks in, and its push is lost on the way (a proxy lets the
check-in through and drops the rest): the fleet API shows how many changes wait on
the laptop and when the oldest was made, and the console's fleet page says so. A
full sync then brings it to 0. A malformed report is refused with the check-in."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import httpx

from agent.home import AgentConfig
from schema.clock import parse_iso

from .faultproxy import FaultProxy
from .harness import (
    ServerProcess,
    agent_cli,
    archive,
    assert_json_error,
    enroll_device,
    init_server,
    open_store,
)
from .test_fault_proxy import point_at

PASSWORD = "correct horse battery"


class CheckInOnly(FaultProxy):
    """Lets the first exchange (the sync's check-in) through and drops every later one."""

    def _pick(self) -> tuple[str | None, float]:
        with self._lock:
            self.exchanges += 1
            return (None if self.exchanges == 1 else "drop"), 0.0


def fleet_row(url: str, token: str, device_id: str) -> dict:
    answer = httpx.get(url + "/v1/staff/fleet", timeout=30,
                       headers={"authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    return next(d for d in answer.json() if d["id"] == device_id)


def fleet_page(url: str) -> str:
    """The console's fleet page as the admin sees it (signed in with the form's token)."""
    with httpx.Client(base_url=url, timeout=30) as http:
        form = http.get("/console/sign-in").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert token is not None
        signed = http.post("/console/sign-in", data={
            "csrf_token": token.group(1), "name": "root", "password": PASSWORD})
        assert signed.status_code in (200, 303), signed.text
        page = http.get("/console/fleet")
        assert page.status_code == 200, page.text
        return page.text


def test_a_laptop_reports_its_unsynced_work_at_check_in(tmp_path: Path) -> None:
    data, home = tmp_path / "server", tmp_path / "laptop"
    init_server(data)
    arch = archive(data)
    arch.add_rep("李伟")
    arch.add_staff("root", "admin", password=PASSWORD)
    token = arch.create_staff_token("root")
    code, _ = arch.create_enroll_code("李伟", timedelta(hours=1))
    server = ServerProcess(data).start()
    try:
        agent_cli(home, "enroll", "--server", server.url, "--code", code)
        config = AgentConfig.load(home)
        assert config is not None
        device_id = config.device_id
        assert fleet_row(server.url, token, device_id)["unsynced_ops"] is None  # never reported

        # Offline work: a new customer and a visit to it, two operations in the outbox.
        customer = agent_cli(home, "customer", "add", "--name", "Riverside Dental Clinic")
        agent_cli(home, "visit", "log", "--customer", customer["id"], "--purpose", "service",
                  "--summary", "demo of the new chairs")
        with open_store(home) as store:
            pending, oldest = store.backlog()
        assert pending == 2 and oldest is not None

        with CheckInOnly(("127.0.0.1", server.port)) as proxy:
            point_at(home, proxy.url)
            lost = agent_cli(home, "sync", check=False)
            assert lost.returncode != 0 and proxy.exchanges >= 2
        row = fleet_row(server.url, token, device_id)
        assert (row["unsynced_ops"], row["oldest_unsynced_at"]) == (2, oldest)
        assert row["unsynced_age_s"] is not None and row["unsynced_age_s"] >= 0
        assert parse_iso(row["oldest_unsynced_at"]) <= parse_iso(row["lease_issued_at"])
        assert "2 changes, oldest from" in fleet_page(server.url)

        point_at(home, server.url)
        agent_cli(home, "sync")
        row = fleet_row(server.url, token, device_id)
        assert (row["unsynced_ops"], row["oldest_unsynced_at"], row["unsynced_age_s"]) == (
            0, None, None)

        # A check-in with a malformed report is refused whole: no lease, nothing recorded.
        with httpx.Client(base_url=server.url, timeout=30) as http:
            other = enroll_device(http, arch, "李伟")
            for body in (b'{"unsynced_ops": -1}', b'{"unsynced_ops": 10000001}',
                         b'{"unsynced_ops": "3"}',
                         b'{"oldest_unsynced_at": "2026-12-01T00:00:00Z"}',
                         b'{"unsynced_ops": 0, "oldest_unsynced_at": "2026-12-01T00:00:00Z"}',
                         b'{"unsynced_ops": 1, "oldest_unsynced_at": "yesterday"}',
                         b'{"unsynced_ops": 1, "oldest_unsynced_at": "2026-12-01T00:00:00"}'):
                assert_json_error(other.send("POST", "/v1/lease", body), 422, "invalid_request")
            assert fleet_row(server.url, token, other.device_id)["unsynced_ops"] is None
            assert other.send("POST", "/v1/lease", b'{"unsynced_ops": 3, '
                              b'"oldest_unsynced_at": "2026-12-01T08:00:00+08:00"}').status_code == 200
            row = fleet_row(server.url, token, other.device_id)
            assert (row["unsynced_ops"], row["oldest_unsynced_at"]) == (3, "2026-12-01T00:00:00.000000Z")
    finally:
        server.stop()
