"""`fieldvault enroll` ends with a first sync (issue 8, finding 17): the laptop holds
the rep's customers as soon as it is enrolled; `--no-sync` skips it; a first sync that
fails leaves the enrollment standing, says so in one line and exits 2."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .harness import AGENT, ServerProcess, add_customers, add_rep, agent_cli, archive, run, server_cli


def test_enroll_brings_the_customers_down(data_dir: Path, server: ServerProcess,
                                          tmp_path: Path) -> None:
    rep = add_rep(data_dir, "First Sync")
    mine = {c["id"] for c in add_customers(data_dir, rep, ["上海华联", "杭州青禾", "Sunrise"])}
    add_customers(data_dir, None, ["Pool customer"])
    home = tmp_path / "agent"
    code = server_cli(data_dir, "enroll-code", rep)["code"]
    proc = run([AGENT, "enroll", "--server", server.url, "--code", code, "--home", str(home)])
    assert "first sync: pulled 3 customers, 0 visits" in proc.stdout and proc.stderr == ""
    assert {c["id"] for c in agent_cli(home, "customer", "list")} == mine


def test_no_sync_skips_it(data_dir: Path, server: ServerProcess, tmp_path: Path) -> None:
    rep = add_rep(data_dir, "Later")
    add_customers(data_dir, rep, ["上海华联"])
    home = tmp_path / "agent"
    code = server_cli(data_dir, "enroll-code", rep)["code"]
    out = agent_cli(home, "enroll", "--server", server.url, "--code", code, "--no-sync")
    assert "first_sync" not in out and out["rep_id"] == rep
    assert agent_cli(home, "customer", "list") == []
    assert agent_cli(home, "sync")["pulled_customers"] == 1


@contextmanager
def forwarding(port: int, target: int, connections: int | None) -> Iterator[None]:
    """A loopback TCP forwarder on `port` to `target` that serves `connections`
    connections (None: any number) and then stops listening, as a server that went
    away would: later connections are refused."""
    listener = socket.create_server(("127.0.0.1", port))
    listener.settimeout(0.2)
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def serve() -> None:
        served = 0
        while not stop.is_set() and (connections is None or served < connections):
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            served += 1
            if connections is not None and served >= connections:
                listener.close()  # gone: the next connection is refused
            upstream = socket.create_connection(("127.0.0.1", target), timeout=10)
            for a, b in ((client, upstream), (upstream, client)):
                t = threading.Thread(target=pipe, args=(a, b), daemon=True)
                t.start()
                threads.append(t)

    acceptor = threading.Thread(target=serve, daemon=True)
    acceptor.start()
    try:
        yield
    finally:
        stop.set()
        acceptor.join(timeout=5)
        listener.close()
        for t in threads:
            t.join(timeout=5)


def test_failed_first_sync_keeps_the_enrollment(data_dir: Path, server: ServerProcess,
                                                tmp_path: Path) -> None:
    rep = add_rep(data_dir, "Unlucky")
    add_customers(data_dir, rep, ["上海华联", "杭州青禾"])
    home = tmp_path / "agent"
    code = server_cli(data_dir, "enroll-code", rep)["code"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    # The server answers the enrollment, then is gone before the first sync.
    with forwarding(port, server.port, connections=1):
        proc = run([AGENT, "enroll", "--server", url, "--code", code, "--home", str(home)],
                   check=False)
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: enrolled, but the first sync failed")
    assert "run `fieldvault sync`" in lines[0]
    assert "rep_name: Unlucky" in proc.stdout  # what was enrolled is still shown
    device = archive(data_dir).list_devices(rep)
    assert [d["state"] for d in device] == ["active"]
    # The enrollment stands: once the server is back, a plain sync brings the data down.
    assert agent_cli(home, "customer", "list") == []
    with forwarding(port, server.port, connections=None):
        report = agent_cli(home, "sync")
    assert report["pulled_customers"] == 2
    assert len(json.loads(run([AGENT, "customer", "list", "--json", "--home", str(home)]).stdout)) == 2
