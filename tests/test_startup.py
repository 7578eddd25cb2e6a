"""Start-up stays light (issue 8, finding 16): each CLI command imports only what it
uses. Guarded by what a real run of the command has imported, not by timing (the
timing is a figure of scripts/bench: startup_status and friends)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from agent.enroll import enroll
from agent.store import SCHEMA_VERSION
from schema.migrations.agent import migrations

from .harness import ServerProcess, archive, open_store

# What start-up must not pay for: the web stack, the HTTP client, the archive, the
# pydantic models (typer>=0.29 would pull pydantic in for option parsing too),
# sqlite-utils and rich (only a table needs it).
HEAVY = ("fastapi", "uvicorn", "starlette", "httpx", "pydantic", "pydantic_settings",
         "sqlite_utils", "rich", "litestream", "prometheus_client", "watchdog", "jinja2",
         "server.archive", "server.app", "schema.models", "agent.sync", "agent.transport")

PROBE = """
import io, json, runpy, sys
from contextlib import redirect_stdout
sys.argv = [sys.argv[1], *sys.argv[2:]]
out = io.StringIO()
try:
    with redirect_stdout(out):
        runpy.run_module(sys.argv[0], run_name="__main__")
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "out": out.getvalue(), "modules": sorted(sys.modules)}))
"""


def imported_by(module: str, *args: str) -> tuple[set[str], str]:
    """Run `python -m MODULE ARGS` in a fresh interpreter: the modules it imported."""
    proc = subprocess.run([sys.executable, "-c", PROBE, module, *args], capture_output=True,
                          text=True, timeout=60, check=True)
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["code"] in (0, None), proc.stderr
    return set(result["modules"]), result["out"]


def heavy(modules: set[str], allowed: tuple[str, ...] = ()) -> list[str]:
    return sorted(m for m in modules for h in HEAVY
                  if (m == h or m.startswith(h + ".")) and h not in allowed)


def enrolled(data_dir: Path, server: ServerProcess, tmp_path: Path, rep_name: str) -> Path:
    """The home of a laptop enrolled for a new rep, its vault created and migrated."""
    arch = archive(data_dir)
    rep = arch.add_rep(rep_name)["id"]
    code, _ = arch.create_enroll_code(rep, timedelta(hours=1))
    home = tmp_path / "agent"
    enroll(home, server.url, code)
    with open_store(home):  # a vault that exists and is migrated, as after enrollment
        pass
    return home


def test_status_on_an_enrolled_device_loads_no_heavy_module(data_dir: Path,
                                                             server: ServerProcess,
                                                             tmp_path: Path) -> None:
    home = enrolled(data_dir, server, tmp_path, "Startup Rep")
    modules, out = imported_by("agent.cli", "status", "--home", str(home))
    assert "state: active" in out  # it really opened the vault and read the lease
    assert "agent.store" in modules and "sqlcipher3" in modules
    assert heavy(modules) == []
    modules, out = imported_by("agent.cli", "customer", "list", "--home", str(home), "--json")
    assert json.loads(out) == [] and heavy(modules) == []
    modules, out = imported_by("agent.cli", "plan", "show", "--home", str(home), "--json")
    assert json.loads(out)["status"] == "draft" and heavy(modules) == []
    # A sync with nothing to send (what a timer runs) needs the sync engine, not the
    # pydantic models, nor rich (not on a terminal), nor httpx; and, run as `fieldvault`
    # runs it (agent.cli_main), not typer either (test_noop_sync_...).
    modules, out = imported_by("agent.cli", "sync", "--home", str(home), "--json")
    assert json.loads(out)["pushed"] == 0
    assert heavy(modules, allowed=("agent.sync", "agent.transport")) == []
    # A vault written before SCHEMA_VERSION existed (user_version 0) is checked by the
    # migrations once, then opens light again.
    with open_store(home) as store:
        store.conn.execute("PRAGMA user_version = 0")
    modules, out = imported_by("agent.cli", "status", "--home", str(home))
    assert "state: active" in out and "sqlite_utils" in modules
    with open_store(home) as store:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    modules, _ = imported_by("agent.cli", "status", "--home", str(home))
    assert heavy(modules) == []


def test_enroll_loads_neither_httpx_nor_the_migrations(data_dir: Path, server: ServerProcess,
                                                       tmp_path: Path) -> None:
    """A brand-new vault is created from one script (schema/migrations/agent_fresh.py) and
    the enrollment request goes through http.client (issue 10: both were ~0.2 s of
    every enrollment)."""
    arch = archive(data_dir)
    code, _ = arch.create_enroll_code(arch.add_rep("Fresh Rep")["id"], timedelta(hours=1))
    home = tmp_path / "fresh"
    modules, out = imported_by("agent.cli", "enroll", "--server", server.url, "--code", code,
                               "--home", str(home), "--json")
    assert json.loads(out)["first_sync"]["pages"] == 1
    assert "sqlite_utils" not in modules and "httpx" not in modules
    assert "schema.migrations.agent" not in modules
    with open_store(home) as store:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert len(migrations.applied(store.db)) == SCHEMA_VERSION
    # As `fieldvault` runs it (agent.cli_main), an enrollment with --json builds no
    # typer app either; its answer is the typer command's.
    code, _ = arch.create_enroll_code(arch.add_rep("Fast Rep")["id"], timedelta(hours=1))
    modules, fast = imported_by("agent.cli_main", "enroll", f"--server={server.url}",
                                "--code", code, "--home", str(tmp_path / "fast"), "--json")
    assert "typer" not in modules and "click" not in modules and "httpx" not in modules
    assert set(json.loads(fast)) == set(json.loads(out))
    assert json.loads(fast)["first_sync"]["search_index"] == "ready"
    # Its failures are the typer command's: one line, the same exit code.
    for cmd in (["enroll", "--server", server.url, "--code", code, "--home",
                 str(tmp_path / "again"), "--json"],  # the code was used
                ["enroll", "--server", "http://127.0.0.1:9", "--code", "X",
                 "--home", str(tmp_path / "offline"), "--json"]):
        procs = [subprocess.run([sys.executable, "-m", entry, *cmd], capture_output=True,
                                text=True, timeout=60) for entry in ("agent.cli_main", "agent.cli")]
        assert procs[0].returncode == procs[1].returncode != 0
        assert procs[0].stderr.startswith("error: ") and procs[0].stderr.count("\n") == 1


def test_help_loads_no_heavy_module() -> None:
    modules, out = imported_by("agent.cli", "--help")
    assert "enroll" in out and heavy(modules) == []
    modules, out = imported_by("server.cli", "--help")
    assert "serve" in out and heavy(modules) == []
    assert "agent.store" not in modules and "sqlcipher3" not in modules


def test_server_admin_listing_loads_no_web_stack(data_dir: Path) -> None:
    modules, out = imported_by("server.cli", "rep", "list", "--data", str(data_dir), "--json")
    assert json.loads(out) == []
    # the archive (sqlite-utils, the models) is what this command uses; the web app is not
    assert heavy(modules, allowed=("server.archive", "sqlite_utils", "pydantic",
                                   "schema.models")) == []


def test_schema_version_counts_the_agent_migrations(tmp_path: Path) -> None:
    """A vault at SCHEMA_VERSION opens without loading the migrations: the constant must
    follow schema/migrations/agent.py."""
    assert len(migrations._migrations) == SCHEMA_VERSION


# What the no-op sync run by `fieldvault` (agent.cli_main, without typer) must not load:
# the command-line framework, the models, tables, the archive helpers, cryptography's
# PEM/SSH serialization (the device keys are read without it), and what httpx's own
# command-line client would bring (click, rich, pygments).
NOOP_HEAVY = (*HEAVY, "typer", "click", "rich", "pygments",
              "cryptography.hazmat.primitives.serialization")


def test_noop_sync_as_fieldvault_runs_it_loads_no_heavy_module(data_dir: Path,
                                                                server: ServerProcess,
                                                                tmp_path: Path) -> None:
    home = enrolled(data_dir, server, tmp_path, "Timer Rep")
    keyring = (home / "keyring.json").read_bytes()
    modules, out = imported_by("agent.cli_main", "sync", "--home", str(home), "--json")
    report = json.loads(out)
    assert report["pushed"] == 0 and report["pages"] == 1
    # Still the whole sync: the lease was renewed (a new keyring), the pull was made.
    assert (home / "keyring.json").read_bytes() != keyring
    allowed = ("agent.sync", "agent.transport")  # httpx too: the agent's requests use http.client
    assert [m for m in modules for h in NOOP_HEAVY
            if (m == h or m.startswith(h + ".")) and h not in allowed] == []
    # The same typer-less path prints the text line, and `--home=DIR` is read too.
    modules, out = imported_by("agent.cli_main", "sync", f"--home={home}")
    assert out.startswith("pushed 0 (nothing to send); pulled 0 customers") and "typer" not in modules
    # Anything else goes to the typer app, which parses, helps and refuses as before.
    modules, out = imported_by("agent.cli_main", "sync", "--help")
    assert "--home" in out and "typer" in modules
    proc = subprocess.run([sys.executable, "-m", "agent.cli_main", "sync", "--home", str(home),
                           "--no-such-option"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stderr.startswith("error: No such option")


def test_noop_sync_failures_are_one_line_without_typer(tmp_path: Path) -> None:
    """The typer-less sync fails as the typer command does: one line, its exit code."""
    cmd = [sys.executable, "-m", "agent.cli_main", "sync", "--home", str(tmp_path / "nobody"),
           "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"error: {tmp_path / 'nobody'} is not enrolled: run `fieldvault enroll --server URL "
        "--code CODE`"]


def test_plain_enroll_args_only_takes_what_it_knows() -> None:
    from agent.cli_main import plain_enroll_args

    base = ["--server", "http://s", "--code", "C", "--json"]
    assert plain_enroll_args(base) == {
        "home": None, "server": "http://s", "code": "C", "insecure": False, "name": None,
        "no_sync": False, "as_json": True}
    got = plain_enroll_args(["--home=h", *base, "--name", "lap", "--insecure", "--no-sync",
                             "--code=D"])  # click: the last value wins
    assert got is not None and (got["home"], got["code"], got["name"]) == (Path("h"), "D", "lap")
    assert got["insecure"] and got["no_sync"]
    for args in (base[:-1], base[2:], base[:2] + base[4:], [*base, "--help"], [*base, "x"],
                 [*base, "--home"], [*base, "--name", "--json"], [*base, "--name="], ["-h"]):
        assert plain_enroll_args(args) is None, args  # typer parses, helps and refuses


def test_plain_sync_args_only_takes_what_it_knows() -> None:
    from agent.cli_main import plain_sync_args

    assert plain_sync_args([]) == (None, False)
    assert plain_sync_args(["--json", "--home", "h"]) == (Path("h"), True)
    assert plain_sync_args(["--home=h", "--home", "g"]) == (Path("g"), False)  # click: the last
    for args in (["--help"], ["--home"], ["--home", "--json"], ["--home="], ["-h"], ["x"],
                 ["--jsonx"], ["--home", "h", "--insecure"]):
        assert plain_sync_args(args) is None, args
