"""scripts/fleet end to end: a tiny fleet against a real server, then the archive's own
CLI says whether what the simulator counted is what the archive holds."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from .harness import SERVER, run

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "fleet_sim.py"


def fleet_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fleet_sim", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(params=["sqlite", "postgresql-2-workers"])
def backend(request: pytest.FixtureRequest) -> list[str]:
    """Options for both the fleet and the CLI: none for SQLite in --data; a fresh
    PostgreSQL database and two API workers for the other."""
    if request.param == "sqlite":
        return []
    return ["--archive", request.getfixturevalue("pg_url")]


@pytest.mark.slow
def test_tiny_fleet_counts_what_the_archive_holds(tmp_path: Path, backend: list[str]) -> None:
    data = tmp_path / "server"
    agents, per_rep = 5, 20
    workers = ["--workers", "2"] if backend else []
    proc = run([sys.executable, str(SCRIPT), "--agents", str(agents), "--minutes", "0.3",
                "--sync-every", "3", "--customers-per-rep", str(per_rep), "--reassignments", "2",
                "--data", str(data), "--seed", "7", "--json", "--quiet", *backend, *workers],
               timeout=240)
    report = json.loads(proc.stdout.strip().splitlines()[-1])

    def server_cli(*args: str) -> Any:
        return json.loads(run([SERVER, *args, "--data", str(data), *backend, "--json"]).stdout)

    assert report["errors"] == 0, report["error_samples"]
    assert report["agents"] == agents
    assert report["archive"] == ("postgresql" if backend else "sqlite")
    assert report["workers"] == (2 if backend else 1)
    assert report["syncs"] > 0
    assert report["sync_latency_ms"]["n"] == report["syncs"]
    assert 0 < report["sync_latency_ms"]["p50"] <= report["sync_latency_ms"]["p99"]
    assert report["ops_pushed"] == sum(report["ops"].values()) > 0

    # Every visit the agents pushed is either in the archive or held in quarantine
    # (the departed rep's final flush, or a visit dated after its customer moved away).
    visits = server_cli("visit", "list")
    assert len(visits) == report["visits_accepted"] > 0
    quarantined = report["ops"].get("visit.create:quarantined", 0)
    assert report["visits_pushed"] == report["visits_accepted"] + quarantined
    held = server_cli("quarantine")
    assert len(held) == sum(n for k, n in report["ops"].items() if k.endswith(":quarantined"))

    # The departure: the agent saw its revocation, handed over, wiped and stopped; its
    # customers went to the pool. Expected, so not an error.
    departed = report["departed"]
    assert departed["stopped_by_revocation"] is True
    assert report["revoked_agents"] == 1 and report["wipe_receipts"] == 1
    devices = server_cli("device", "list", "--rep", departed["rep"])
    assert [d["state"] for d in devices] == ["wiped"]
    assert len(server_cli("customer", "list", "--owner", "pool")) == per_rep

    # Reassignments were made through the CLI and the archive shows the new owners.
    assert report["reassignments"] == 2
    for move in report["reassigned"]:
        assert server_cli("customer", "show", move["customer"])["owner_rep_id"] == move["to"]
    assert report["reassignments_seen_by_both"] >= 1

    # The archive grew and the server's resources were sampled.
    assert report["archive_bytes"]["growth"] > 0
    assert report["server"]["cpu_s"] > 0 and report["server"]["rss_peak_mb"] > 0
    # an RSS per whole minute (none in a run of 18 s): what shows a leak in a long run
    assert (report["server"]["rss_mb_by_minute"],
            report["server"]["rss_growth_after_minute_1_mb"]) == ([], None)

    text = fleet_module().summary(report)
    for figure in ("p50", "p95", "p99", "errors 0", "server CPU", "RSS peak", "archive growth"):
        assert figure in text
