"""`serve --workers N`: several API processes behind one port, sharing nothing in memory
that a request or an operator depends on."""

from __future__ import annotations

from pathlib import Path

import httpx

from .harness import ServerProcess


def metric(text: str, name: str, label: str = "") -> float:
    for line in text.splitlines():
        if line.startswith(name + label + " ") or line.startswith(name + "{" + label):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_every_worker(data_dir: Path) -> None:
    server = ServerProcess(data_dir, args=("--workers", "2")).start(timeout=60)
    try:
        # A new connection per request: the kernel hands them to both workers.
        for _ in range(40):
            with httpx.Client(base_url=server.url) as client:
                assert client.get("/v1/pull").status_code == 401
        # Any one scrape, whichever worker answers it, counts all 40.
        for _ in range(5):
            text = httpx.get(server.url + "/metrics").text
            total = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                        if line.startswith("fieldvault_auth_failures_total{"))
            assert total == 40, text
    finally:
        server.stop()
    assert server.proc is not None and server.proc.returncode is not None
