"""`fieldvault sync` exits as its help says: 2 when the server is unreachable, 3 only
when this device was revoked and its local copy wiped. A 403 that wipes nothing (here a
filtering proxy in front of the server refusing the push of a device the server called
revoked) is one `error:` line and exit 1, and the laptop keeps everything.

The agent is enrolled against a real server process; the refusals then come from a small
HTTP server on 127.0.0.1 standing in for the proxy (error answers are not signed, so the
agent treats them exactly as the server's own).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson

from agent.home import AgentConfig
from schema.enums import VisitPurpose
from schema.models import CustomerCreate, VisitCreate
from server.rules import init_archive

from . import harness
from .harness import AGENT, ServerProcess, run

MAX_BODY = 8 * 1024 * 1024


@contextmanager
def refusing_server(answers: dict[str, tuple[int, str, str]]) -> Iterator[str]:
    """A loopback server answering each path with its (status, code, message), and any
    other path 403 `forbidden`; yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            size = min(int(self.headers.get("content-length") or 0), MAX_BODY)
            self.rfile.read(size)
            status, code, message = answers.get(self.path.split("?")[0],
                                                (403, "forbidden", "blocked by the proxy"))
            body = orjson.dumps({"error": code, "message": message})
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def enrolled_with_a_visit(tmp_path: Path) -> Path:
    data = tmp_path / "server"
    arch = init_archive(data)
    rep = arch.add_rep("Ada Proxy")["id"]
    customer = arch.add_customer(CustomerCreate(name="Quartz Dock"), rep)["id"]
    home = tmp_path / "laptop"
    server = ServerProcess(data, replica="none").start()
    try:
        harness.lib_enroll(data, home, server.url, rep)
        harness.lib_sync(home)
    finally:
        server.stop()
    with harness.open_store(home) as store:
        store.log_visit(VisitCreate(customer_id=customer, purpose=VisitPurpose.service,
                                    summary="unsynced work", started_at=datetime.now(UTC)))
    return home


def point_at(home: Path, url: str) -> None:
    config = AgentConfig.load(home)
    assert config is not None
    config.server_url = url
    config.save(home)


def test_a_403_that_wipes_nothing_exits_1_and_keeps_the_laptop(tmp_path: Path) -> None:
    home = enrolled_with_a_visit(tmp_path)
    revoked = (403, "device_revoked", "this device is no longer allowed: contact your admin")
    cases = [
        ({"/v1/lease": revoked}, "server refused the sync: blocked by the proxy"),  # the push
        ({}, "server refused the check-in: blocked by the proxy"),
    ]
    for answers, line in cases:
        with refusing_server(answers) as url:
            point_at(home, url)
            proc = run([AGENT, "sync", "--home", str(home)], check=False)
        assert proc.returncode == 1, (proc.stdout, proc.stderr)
        assert proc.stderr.strip().splitlines() == [f"error: {line}"], proc.stderr
        with harness.open_store(home) as store:  # nothing wiped, the work still queued
            assert len(store.pending_ops(10)) == 1
