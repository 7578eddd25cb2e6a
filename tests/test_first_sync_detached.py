"""Issue 10: a first sync reports as soon as the vault is filled; the search index is
built afterwards by a detached `agent.search_index` process, and the first fill runs
with synchronous=OFF and the secondary indexes dropped. Searches stay complete at every
moment, one builder runs at a time, and a first sync SIGKILLed in its unsynced window
is repaired by syncing again (complete, indexed, searchable). Real server, real
`fieldvault` processes, real SQLCipher; waits poll with bounded deadlines."""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from agent import search_index
from agent.store import INDEXES_PENDING
from scripts.bench import ArchiveBuilder, Gen, scope

from .harness import AGENT, ServerProcess, agent_cli, open_store

N_CUSTOMERS, N_VISITS = 5200, 800  # more than one first-sync page (5000 records)
SECONDARY = {"customers_card_no", "customers_served", "visits_customer_started",
             "visits_returned"}


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[Path, ServerProcess, ArchiveBuilder, str, list[dict]]]:
    """An archive bulk-loaded the way scripts/bench builds it (seconds, not minutes)."""
    data = tmp_path_factory.mktemp("detached") / "server"
    b = ArchiveBuilder(data)
    rep = b.add_rep("Detached Rep")
    customers, visits = scope(Gen(seed=7), rep, N_CUSTOMERS, N_VISITS)
    b.load(customers, visits)
    b.close()
    server = ServerProcess(data, replica="none").start()
    try:
        yield data, server, b, rep, customers
    finally:
        server.stop()


def code_for(b: ArchiveBuilder, rep: str) -> str:
    return b.archive.create_enroll_code(rep, timedelta(hours=1))[0]


def index_names(home: Path) -> set[str]:
    with open_store(home) as store:
        return {r[0] for r in store.conn.execute(
            "SELECT name FROM sqlite_master WHERE type='index'")}


def assert_complete_and_indexed(home: Path, customers: list[dict]) -> None:
    assert search_index.wait_ready(home, 120)
    with open_store(home) as store:
        assert store.counts() == {"customers": N_CUSTOMERS, "visits": N_VISITS}
        assert store.search_index_ready() and store.get_state(INDEXES_PENDING) is None
        for card in (customers[123], customers[-1]):  # an early page's, the last page's
            assert card["id"] in {c["id"] for c in store.iter_customers(card["name"])}
    assert SECONDARY <= index_names(home)
    with open_store(home) as store:  # and the index is kept row by row again
        assert {"visits_ai", "visits_ad", "visits_au", "customers_ai", "customers_ad",
                "customers_au"} <= {r[0] for r in store.conn.execute(
                    "SELECT name FROM sqlite_master WHERE type='trigger'")}


def test_enroll_reports_before_the_index_and_a_detached_process_builds_it(
        company: tuple[Path, ServerProcess, ArchiveBuilder, str, list[dict]],
        tmp_path: Path) -> None:
    _, server, b, rep, customers = company
    home = tmp_path / "agent"
    out = agent_cli(home, "enroll", "--server", server.url, "--code", code_for(b, rep))
    first = out["first_sync"]
    assert (first["pulled_customers"], first["pulled_visits"]) == (N_CUSTOMERS, N_VISITS)
    assert first["search_index"] == "building"
    # Reported, and searches complete whether or not the builder has finished.
    found = {c["id"] for c in agent_cli(home, "customer", "list", "--search",
                                        customers[42]["name"])}
    assert customers[42]["id"] in found
    assert_complete_and_indexed(home, customers)
    assert (home / search_index.LOCK_FILE).stat().st_mode & 0o777 == 0o600
    # A sync that finds the index ready starts no builder (nothing holds the lock).
    assert agent_cli(home, "sync")["pulled_customers"] == 0
    assert search_index.wait_ready(home, 0)


def test_one_builder_at_a_time_and_the_pin_on_a_pipe(
        company: tuple[Path, ServerProcess, ArchiveBuilder, str, list[dict]],
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, server, b, rep, customers = company
    home = tmp_path / "agent"
    b.archive.set_policy(None, None, True)  # this vault's key is wrapped under a PIN too
    try:
        monkeypatch.setenv("FIELDVAULT_PIN", "2468")
        agent_cli(home, "enroll", "--server", server.url, "--code", code_for(b, rep))
        assert search_index.wait_ready(home, 120)
        with open_store(home) as store:
            store.defer_search_index()  # as a builder killed mid-build would leave it
    finally:
        b.archive.set_policy(None, None, False)
    fd = os.open(home / search_index.LOCK_FILE, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a builder is running
        assert not search_index.build_detached(home, "2468")
    finally:
        os.close(fd)
    with open_store(home) as store:
        assert not store.search_index_ready()  # nothing was started meanwhile
        assert customers[7]["id"] in {c["id"] for c in store.iter_customers(
            customers[7]["name"])}  # the exact scan
    # No PIN in the environment from here: the child has only what the pipe gives it.
    monkeypatch.delenv("FIELDVAULT_PIN")
    assert search_index.build_detached(home, "0000")  # a wrong PIN: the vault stays shut
    assert search_index.wait_ready(home, 120)
    monkeypatch.setenv("FIELDVAULT_PIN", "2468")
    with open_store(home) as store:
        assert not store.search_index_ready()
    monkeypatch.delenv("FIELDVAULT_PIN")
    assert search_index.build_detached(home, "2468")
    monkeypatch.setenv("FIELDVAULT_PIN", "2468")
    assert_complete_and_indexed(home, customers)


class HoldingProxy:
    """A loopback TCP forwarder to the server that, while `hold` is set, stops passing
    on a connection's bytes from its second `GET /v1/pull` on: the agent applies the
    first page, then waits for the next for ever."""

    def __init__(self, target: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.target = target
        self.hold = threading.Event()
        self.held = threading.Event()
        self.stop = threading.Event()
        self.pulls = 0
        self.lock = threading.Lock()

    def _pipe(self, src: socket.socket, dst: socket.socket, upward: bool) -> None:
        try:
            while data := src.recv(65536):
                if upward and b"GET /v1/pull" in data:
                    with self.lock:
                        self.pulls += 1
                        n = self.pulls
                    if self.hold.is_set() and n >= 2:
                        self.held.set()
                        while not self.stop.is_set():  # bounded: stop is set at the end
                            self.stop.wait(0.2)
                        return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target), timeout=30)
            for a, b, up in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pipe, args=(a, b, up), daemon=True).start()

    @contextmanager
    def running(self) -> Iterator[HoldingProxy]:
        acceptor = threading.Thread(target=self._serve, daemon=True)
        acceptor.start()
        try:
            yield self
        finally:
            self.stop.set()
            acceptor.join(timeout=5)
            self.listener.close()


@pytest.mark.parametrize("builder_first", [False, True])
def test_a_first_sync_killed_in_its_unsynced_window_is_repaired_by_syncing_again(
        company: tuple[Path, ServerProcess, ArchiveBuilder, str, list[dict]],
        tmp_path: Path, builder_first: bool) -> None:
    """`builder_first`: a builder (from `run`/`ui`) runs before the next sync: it puts
    the FTS triggers back before the index, which they then keep complete."""
    _, server, b, rep, customers = company
    home = tmp_path / "agent"
    proxy = HoldingProxy(server.port)
    with proxy.running():
        agent_cli(home, "enroll", "--server", proxy.url, "--code", code_for(b, rep), "--no-sync")
        proxy.hold.set()
        proc = subprocess.Popen([AGENT, "sync", "--home", str(home), "--json"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert proxy.held.wait(60), "the agent never asked for its second page"
            deadline = time.monotonic() + 60
            while True:  # until the first page is committed (bounded by the deadline)
                with open_store(home) as store:
                    if store.get_state("cursor"):
                        break
                assert time.monotonic() < deadline, "the first page was never applied"
                time.sleep(0.02)
            os.kill(proc.pid, signal.SIGKILL)  # mid first fill: synchronous=OFF, no indexes
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        with open_store(home) as store:
            assert 0 < sum(store.counts().values()) < N_CUSTOMERS + N_VISITS
            assert not store.search_index_ready()
            assert store.get_state(INDEXES_PENDING) is not None
            assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert not SECONDARY & index_names(home)
        with open_store(home) as store:  # the FTS triggers wait with them
            assert not store.conn.execute(
                "SELECT name FROM sqlite_master WHERE type='trigger' AND tbl_name='visits'"
            ).fetchall()
        # Searches are complete over what arrived (the exact scan).
        held_name = customers[0]["name"]
        assert customers[0]["id"] in {c["id"] for c in agent_cli(
            home, "customer", "list", "--search", held_name)}
        if builder_first:
            assert search_index.build_detached(home, None)
            assert search_index.wait_ready(home, 120)
            with open_store(home) as store:
                assert store.search_index_ready() and store.get_state(INDEXES_PENDING) is None
            assert SECONDARY <= index_names(home)
        proxy.hold.clear()
        report = agent_cli(home, "sync")
        assert report["pulled_customers"] + report["pulled_visits"] > 0
    assert_complete_and_indexed(home, customers)
    with open_store(home) as store:
        assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_run_builds_a_missing_index(
        company: tuple[Path, ServerProcess, ArchiveBuilder, str, list[dict]],
        tmp_path: Path) -> None:
    _, server, b, rep, customers = company
    home = tmp_path / "agent"
    agent_cli(home, "enroll", "--server", server.url, "--code", code_for(b, rep))
    assert search_index.wait_ready(home, 120)
    with open_store(home) as store:
        store.defer_search_index()
    proc = subprocess.Popen([AGENT, "ui", "--home", str(home), "--no-browser"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()  # printed after the builder was started
        assert "running at" in line
        assert_complete_and_indexed(home, customers)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_builder_never_creates_a_vault(
        company: tuple[Path, ServerProcess, ArchiveBuilder, str, list[dict]],
        tmp_path: Path) -> None:
    """A builder that starts after a wipe removed the vault (a race) leaves no new one."""
    _, server, b, rep, _ = company
    home = tmp_path / "agent"
    agent_cli(home, "enroll", "--server", server.url, "--code", code_for(b, rep), "--no-sync")
    for name in ("vault.db", "vault.db-wal", "vault.db-shm"):
        (home / name).unlink(missing_ok=True)
    assert search_index.build_detached(home, None)
    assert search_index.wait_ready(home, 120)
    assert not (home / "vault.db").exists()

