"""The laptop refuses a visit dated in the future, at once and with one line.

The server would only hold such a visit for review (issue 8 finding 7: a visit
dated ahead would keep its customer out of the pool); the rep is better served
by being told while typing. Real CLI runs against a real enrolled vault.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from . import harness
from .harness import ServerProcess, add_rep, agent_cli, server_cli

pytestmark = pytest.mark.slow


def test_a_visit_dated_ahead_is_refused_on_the_laptop(
    data_dir: Path, server: ServerProcess, tmp_path: Path
) -> None:
    rep = add_rep(data_dir, "Zhou Hang")
    server_cli(data_dir, "customer", "add", "--name", "Future Proof Ltd", "--owner", rep)
    home = tmp_path / "agent"
    harness.lib_enroll(data_dir, home, server.url, rep)
    agent_cli(home, "sync")
    card = agent_cli(home, "customer", "list")[0]["id"]
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    proc = agent_cli(home, "visit", "log", "--customer", card, "--purpose", "service",
                     "--summary", "typed the wrong day", "--started-at", tomorrow, check=False)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "the visit starts in the future" in proc.stderr
    assert agent_cli(home, "visit", "list") == []  # nothing saved, nothing queued
    assert agent_cli(home, "status")["outbox"]["pending"] == 0

    # A visit just now is fine, and moving it ahead later is refused the same way.
    visit = agent_cli(home, "visit", "log", "--customer", card, "--purpose", "service",
                      "--summary", "on time")
    proc = agent_cli(home, "visit", "edit", visit["id"], "--started-at", tomorrow, check=False)
    assert proc.returncode == 1 and "the visit starts in the future" in proc.stderr
    assert agent_cli(home, "visit", "show", visit["id"])["started_at"] == visit["started_at"]
