from __future__ import annotations

from pathlib import Path

from .harness import ServerProcess, add_rep, agent_cli, enroll, server_cli


def test_enroll_sync_and_log_a_visit(data_dir: Path, server: ServerProcess, tmp_path: Path) -> None:
    rep = add_rep(data_dir, "Li Wei")
    customer = server_cli(data_dir, "customer", "add", "--name", "上海华联", "--owner", rep)
    home = tmp_path / "agent"
    enroll(data_dir, home, server.url, rep)
    agent_cli(home, "sync")
    assert [c["id"] for c in agent_cli(home, "customer", "list")] == [customer["id"]]
    visit = agent_cli(home, "visit", "log", "--customer", customer["card_no"], "--purpose",
                      "order", "--summary", "Ordered 200 units")
    report = agent_cli(home, "sync")
    assert report["results"] == {"accepted": 1}
    archived = server_cli(data_dir, "visit", "list", "--rep", rep)
    assert [v["id"] for v in archived] == [visit["id"]]
    assert archived[0]["summary"] == "Ordered 200 units"
