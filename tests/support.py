"""Real-process helpers for tests: a `fieldvault-server serve` on 127.0.0.1 and CLI runs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

BIN = Path(sys.executable).parent
SERVER = str(BIN / "fieldvault-server")
AGENT = str(BIN / "fieldvault")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(cmd: list[str], check: bool = True, timeout: float = 120,
        **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run a CLI command; `check` fails the test with its stderr when it exits non-zero."""
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def server_cli(data: Path, *args: str, check: bool = True) -> Any:
    """Run `fieldvault-server ARGS --data DATA --json` and return its JSON."""
    proc = run([SERVER, *args, "--data", str(data), "--json"], check=check)
    return json.loads(proc.stdout) if proc.returncode == 0 else proc


def agent_cli(home: Path, *args: str, check: bool = True) -> Any:
    """Run `fieldvault ARGS --home HOME --json` and return its JSON."""
    proc = run([AGENT, *args, "--home", str(home), "--json"], check=check)
    return json.loads(proc.stdout) if proc.returncode == 0 else proc


class ServerProcess:
    """`fieldvault-server serve` as a real process on a loopback port."""

    def __init__(self, data: Path, port: int | None = None, replica: str | None = None,
                 args: tuple[str, ...] = ()) -> None:
        self.data = data
        self.args = args  # more `serve` options, e.g. ("--hr-inbox", DIR)
        self.replica = replica  # --replica URL for serve; None keeps the default file replica
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data / "serve.log"

    def start(self, timeout: float = 20) -> ServerProcess:
        self.data.mkdir(parents=True, exist_ok=True)
        cmd = [SERVER, "serve", "--data", str(self.data), "--port", str(self.port)]
        if self.replica is not None:
            cmd += ["--replica", self.replica]
        cmd += list(self.args)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited early:\n{self.log.read_text()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"server did not come up:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)

    def kill(self) -> None:
        """SIGKILL: no chance to clean up, like a power cut of the process."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def init_server(data: Path) -> dict[str, Any]:
    return server_cli(data, "init")  # type: ignore[no-any-return]


def add_rep(data: Path, name: str, **opts: str) -> str:
    args = ["rep", "add", "--name", name]
    for key, value in opts.items():
        args += [f"--{key}", value]
    return server_cli(data, *args)["id"]  # type: ignore[no-any-return]


def enroll(data: Path, home: Path, url: str, rep: str) -> dict[str, Any]:
    code = server_cli(data, "enroll-code", rep)["code"]
    return agent_cli(home, "enroll", "--server", url, "--code", code)  # type: ignore[no-any-return]
