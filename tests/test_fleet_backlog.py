"""The fleet view's unsynced work, end to end: a real `fieldvault-server serve`, a real
laptop (the agent CLI, its SQLCipher vault). The rep works offline; the laptop's
`fieldvault sync` checks in, and its push is lost on the way (a proxy lets the
check-in through and drops the rest): the fleet API shows how many changes wait on
the laptop and when the oldest was made. A full sync then brings it to 0."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx

from agent.home import AgentConfig
from schema.clock import parse_iso

from .faultproxy import FaultProxy
from .harness import ServerProcess, agent_cli, archive, init_server, open_store
from .test_fault_proxy import point_at


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


def test_a_laptop_reports_its_unsynced_work_at_check_in(tmp_path: Path) -> None:
    data, home = tmp_path / "server", tmp_path / "laptop"
    init_server(data)
    arch = archive(data)
    arch.add_rep("李伟")
    arch.add_staff("root", "admin")
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

        point_at(home, server.url)
        agent_cli(home, "sync")
        row = fleet_row(server.url, token, device_id)
        assert (row["unsynced_ops"], row["oldest_unsynced_at"], row["unsynced_age_s"]) == (
            0, None, None)
    finally:
        server.stop()
