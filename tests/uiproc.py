"""`fieldvault ui` / `fieldvault run` as a real process for the UI tests: started on a
free loopback port, its one printed line parsed for the launch URL."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from .harness import AGENT


class UIProcess:
    def __init__(self, home: Path, command: str = "run", args: tuple[str, ...] = (),
                 env: dict[str, str] | None = None) -> None:
        self.home = home
        self.command = command
        self.args = args
        self.env = env or {}
        self.proc: subprocess.Popen[str] | None = None
        self.launch_url = ""
        self.base = ""
        self.line = ""

    def start(self, timeout: float = 60) -> UIProcess:
        self.log = self.home.parent / f"{self.command}.log"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [AGENT, self.command, "--home", str(self.home), "--no-browser", *self.args],
                stdout=subprocess.PIPE, stderr=log, text=True,
                env={**os.environ, **self.env}, start_new_session=True)
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            self.stop()
            raise AssertionError("`fieldvault ui` printed nothing")
        self.line = self.proc.stdout.readline().strip()
        self.launch_url = self.line.split()[-1]
        parts = urlsplit(self.launch_url)
        self.base = f"{parts.scheme}://{parts.netloc}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # bounded: until uvicorn answers
            if self.proc.poll() is not None:
                raise AssertionError(f"ui exited: {self.log.read_text()}")
            try:
                httpx.get(self.base + "/static/ui.css", timeout=1)
                return self
            except httpx.TransportError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError("`fieldvault ui` did not answer")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
