"""`fieldvault sync` shows a progress bar on a terminal (pushed / pulled of total, rate)
and stays quiet when stderr is not a terminal or with --json (issue 10)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import (
    AGENT,
    ServerProcess,
    add_customers,
    add_rep,
    agent_cli,
    init_server,
    run,
    server_cli,
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, str]]:
    root = tmp_path_factory.mktemp("progress")
    data = root / "server"
    init_server(data)
    rep = add_rep(data, "Progress Rep")
    server = ServerProcess(data).start()
    home = root / "agent"
    code = server_cli(data, "enroll-code", rep)["code"]
    agent_cli(home, "enroll", "--server", server.url, "--code", code, "--no-sync")
    try:
        yield data, home, rep
    finally:
        server.stop()


def on_a_terminal(args: list[str]) -> tuple[int, str, str]:
    """Run `fieldvault ARGS` with stderr on a pseudo-terminal: (exit code, stdout, what
    the terminal showed)."""
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([AGENT, *args], stdout=subprocess.PIPE, stderr=slave,
                            stdin=subprocess.DEVNULL, env=env)
    os.close(slave)
    shown = b""
    for _ in range(100_000):  # until the child closes its end (EIO on Linux)
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    out = proc.stdout.read().decode() if proc.stdout else ""
    return proc.wait(timeout=120), out, shown.decode(errors="replace")


def test_progress_on_a_terminal_only(setup: tuple[Path, Path, str]) -> None:
    data, home, rep = setup
    add_customers(data, rep, [f"进度客户 {i}" for i in range(7)])
    card = agent_cli(home, "customer", "add", "--name", "Offline Co")["id"]
    agent_cli(home, "visit", "log", "--customer", card, "--purpose", "service",
              "--summary", "logged offline")
    code, out, shown = on_a_terminal(["sync", "--home", str(home)])
    assert code == 0, shown
    assert out.startswith("pushed 2 (2 accepted); pulled 8 customers")
    assert "pushed" in shown and "2/2" in shown  # the card and the visit
    # 7 cards from the office and the rep's own card as the archive holds it; the visit
    # came back in its push result, so the pull leaves it out
    assert "pulled" in shown and "8/8" in shown and "/s" in shown

    add_customers(data, rep, ["进度客户 late"])
    code, out, shown = on_a_terminal(["sync", "--home", str(home), "--json"])
    assert code == 0 and json.loads(out)["pulled_customers"] == 1
    assert "pulled" not in shown and "━" not in shown  # --json: no bar, even on a terminal

    add_customers(data, rep, ["进度客户 piped"])
    proc = run([AGENT, "sync", "--home", str(home)])  # stderr a pipe: nothing drawn
    assert proc.stderr == "" and "pulled 1 customers" in proc.stdout
