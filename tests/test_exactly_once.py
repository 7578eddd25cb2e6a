"""Exactly once: lost responses and SIGKILLs lose nothing and duplicate nothing.

(a) A TCP proxy on 127.0.0.1 forwards a push to the server and cuts the
    connection before the answer gets back; the retry must not duplicate.
(b) The agent is SIGKILLed at random points of repeated syncs.
(c) The server is SIGKILLed at random points of repeated syncs and restarted
    on the same port and data.
After each, every record on the device is compared with the archive (through its
public methods): same ids, same fields, each revision applied exactly once. Each
runs on SQLite and on PostgreSQL behind two API workers.
Random choices use fixed seeds so a failure can be replayed.
"""

from __future__ import annotations

import random
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent.home import AgentConfig
from agent.store import CUSTOMER_COLUMNS, VISIT_COLUMNS
from schema.enums import Grade
from schema.models import CustomerPatch, VisitPatch, VisitVoid
from server.rules.feed import card_for_rep, visit_for_rep

from . import harness
from .harness import AGENT, Backend, ServerProcess, agent_cli, free_port, run

pytestmark = pytest.mark.slow


# --- a loopback proxy that can lose one answer ------------------------------------------


class CuttingProxy:
    """Forwards 127.0.0.1 TCP to the server; when armed, lets the next POST /v1/push
    reach the server, then closes the client's connection as soon as the server's
    answer starts to arrive, so the client never sees it."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.cut_next_push = False
        self.withheld: list[bytes] = []  # first bytes of each answer the client never got
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def close(self) -> None:
        self._stop.set()
        self._accepting.join(timeout=5)
        self.listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(30)
        upstream = socket.create_connection(self.upstream, timeout=30)
        cut = threading.Event()

        def forward_requests() -> None:
            try:
                while data := client.recv(65536):
                    if b"POST /v1/push" in data:
                        with self._lock:
                            if self.cut_next_push:
                                self.cut_next_push = False
                                cut.set()  # before the server can possibly answer
                    upstream.sendall(data)
            except OSError:
                pass
            finally:
                try:
                    upstream.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

        threading.Thread(target=forward_requests, daemon=True).start()
        try:
            while data := upstream.recv(65536):
                if cut.is_set():
                    self.withheld.append(data)
                    break
                client.sendall(data)
        except OSError:
            pass
        finally:
            # shutdown (not only close) wakes the other thread blocked in recv and
            # sends the FIN now: the client sees the connection die without an answer.
            for sock in (client, upstream):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()


# --- what the test expects the archive to hold -------------------------------------------


@dataclass
class Ledger:
    """Every local change the test made, to check the archive applied each exactly once."""

    home: Path
    customers: list[str]
    visits: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> expected
    ops: int = 0
    seq: int = 0

    def log(self, count: int) -> None:
        for row in harness.log_visits(self.home, self.customers, count, "chaos", start=self.seq):
            self.visits[row["id"]] = {"summary": row["summary"], "status": "submitted", "rev": 1}
        self.seq += count
        self.ops += count

    def edit_and_void(self, rng: random.Random, edits: int, voids: int) -> None:
        live = sorted(v for v, e in self.visits.items() if e["status"] != "void")
        with harness.open_store(self.home) as store:
            for vid in rng.sample(live, min(edits, len(live))):
                expected = self.visits[vid]
                expected["summary"] = f"{expected['summary']} / edit r{expected['rev'] + 1}"
                store.edit_visit(vid, VisitPatch(summary=expected["summary"]))
                expected["rev"] += 1
                self.ops += 1
            live = sorted(v for v, e in self.visits.items() if e["status"] != "void")
            for vid in rng.sample(live, min(voids, len(live))):
                store.void_visit(vid, VisitVoid(reason="logged twice by mistake"))
                self.visits[vid]["status"] = "void"
                self.visits[vid]["rev"] += 1
                self.ops += 1


def device_id(home: Path) -> str:
    config = AgentConfig.load(home)
    assert config is not None
    return config.device_id


def applied_ops(data: Path, device: str) -> int:
    return len(harness.archive(data).applied_ops(device))


def assert_device_matches_archive(data: Path, ledger: Ledger, rep_id: str) -> None:
    """Compare every record on both sides after a final clean sync."""
    device = device_id(ledger.home)
    dev_customers, dev_visits = harness.device_rows(ledger.home)
    arch = harness.archive(data)
    arch_visits = {r["id"]: r for r in arch.iter_visits(rep=rep_id)}
    assert harness.outbox_counts(ledger.home) == harness.EMPTY_OUTBOX

    # Same visit ids everywhere: the device's, the archive's, and the ones the test logged.
    assert set(dev_visits) == set(ledger.visits), "device lost or invented visits"
    missing = set(ledger.visits) - set(arch_visits)
    extra = set(arch_visits) - set(ledger.visits)
    assert not missing and not extra, f"archive missing {len(missing)}, extra {len(extra)}"
    summaries = [v["summary"] for v in arch_visits.values()]
    assert len(summaries) == len(set(summaries)), "a visit was archived twice under two ids"

    # Each change applied exactly once: revision numbers and revision rows match the ledger.
    revisions = {vid: len(arch.visit_history(vid)) for vid in arch_visits}
    for vid, expected in ledger.visits.items():
        got = arch_visits[vid]
        assert (got["summary"], got["status"], got["rev"]) == (
            expected["summary"], expected["status"], expected["rev"]), vid
        assert revisions[vid] == expected["rev"], vid
        mine, seen = dev_visits[vid], visit_for_rep(dict(got))  # as the laptop is told
        diff = {k: (mine[k], seen[k]) for k in VISIT_COLUMNS if mine[k] != seen[k]}
        assert not diff, f"visit {vid} differs between device and archive: {diff}"
    assert applied_ops(data, device) == ledger.ops
    assert [q for q in arch.quarantine() if q["device_id"] == device] == []

    arch_customers = {r["id"]: r for r in arch.iter_customers(rep_id)}
    assert set(dev_customers) == set(arch_customers) == set(ledger.customers)
    for cid, got in arch_customers.items():
        mine, seen = dev_customers[cid], card_for_rep(dict(got))
        diff = {k: (mine[k], seen[k]) for k in CUSTOMER_COLUMNS if mine[k] != seen[k]}
        assert not diff, f"customer {cid} differs between device and archive: {diff}"


def answered_but_unheard(data: Path, home: Path) -> int:
    """Ops the archive applied that the device still holds as pending: a lost answer."""
    with harness.open_store(home) as store:
        pending = [op["op_id"] for op in store.pending_ops(100_000)]
    applied = {r["op_id"] for r in harness.archive(data).applied_ops(device_id(home))}
    return len(applied.intersection(pending))


def sync_cli(home: Path) -> dict[str, Any]:
    report = agent_cli(home, "sync")
    assert isinstance(report, dict)
    return report


def start_sync(home: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([AGENT, "sync", "--home", str(home), "--json"], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_commit(data: Path, device: str, before: int, proc: subprocess.Popen[str],
                    timeout: float = 30) -> bool:
    """Poll the archive until it has applied more of this device's ops (the server
    committed a push) or the sync ended; True if a commit was seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if applied_ops(data, device) > before:
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.005)
    raise AssertionError("the sync neither committed anything nor finished")


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_server(module_backend: Backend) -> Iterator[ServerProcess]:
    """On each backend in turn: SQLite, and PostgreSQL behind two API workers."""
    proc = module_backend.server().start()
    yield proc
    proc.stop()


def enrolled_rep(data: Path, url: str, home: Path, name: str, customers: int) -> tuple[str, Ledger]:
    rep = harness.archive(data).add_rep(name)["id"]
    rows = harness.add_customers(data, rep, [f"{name} customer {i}" for i in range(customers)])
    harness.lib_enroll(data, home, url, rep)
    harness.lib_sync(home)
    return rep, Ledger(home=home, customers=[r["id"] for r in rows])


# --- (a) lost response ---------------------------------------------------------------------


def test_lost_push_response_is_retried_without_duplicates(
    shared_server: ServerProcess, tmp_path: Path
) -> None:
    data = shared_server.data
    proxy = CuttingProxy(shared_server.port)
    try:
        rep, ledger = enrolled_rep(data, proxy.url, tmp_path / "agent", "Lost Response", 3)
        device = device_id(ledger.home)
        card = ledger.customers[0]
        ledger.log(40)
        with harness.open_store(ledger.home) as store:
            store.edit_customer(card, CustomerPatch(notes="prefers calls after 3 pm"))
        ledger.ops += 1

        rounds = (
            (1, {"accepted": 41}),
            # Round 2: the office changed the grade meanwhile, so the rep's card edit
            # is a conflict on grade (recorded once) and a merge of the phone number.
            (2, {"accepted": 7, "conflict": 1}),
        )
        for round_no, expected in rounds:
            expected_ops = sum(expected.values())
            if round_no == 2:
                ledger.edit_and_void(random.Random(7), edits=5, voids=2)
                with harness.open_store(ledger.home) as store:
                    store.edit_customer(card, CustomerPatch(grade=Grade.A, phone="021-5555-0199"))
                ledger.ops += 1
                harness.archive(data).edit_customer(card, CustomerPatch(grade=Grade.B), "office")
            before = applied_ops(data, device)
            proxy.cut_next_push = True
            cut = run([AGENT, "sync", "--home", str(ledger.home)], check=False)
            assert cut.returncode == 2, cut
            assert len(cut.stderr.strip().splitlines()) == 1, cut.stderr
            assert len(proxy.withheld) == round_no
            assert proxy.withheld[-1].startswith(b"HTTP/1.1 200"), proxy.withheld[-1][:80]
            # The server committed the batch; the device never heard of it.
            assert applied_ops(data, device) == before + expected_ops
            assert harness.outbox_counts(ledger.home)["pending"] == expected_ops

            report = sync_cli(ledger.home)  # the same proxy, now passing answers through
            assert report["pushed"] == expected_ops
            assert report["results"] == expected  # the stored answers, not re-applications
            assert applied_ops(data, device) == before + expected_ops

        assert_device_matches_archive(data, ledger, rep)
        arch = harness.archive(data)
        customer = arch.get_customer(card)
        # rev 2: the rep's notes; 3: the office's grade; 4: the rep's phone (merged once).
        assert (customer["rev"], customer["notes"], customer["grade"], customer["phone"]) == (
            4, "prefers calls after 3 pm", "B", "021-5555-0199")
        assert len(arch.customer_history(card)) == 4
        conflicts = [(k["field"], k["server_value"], k["rep_value"])
                     for k in arch.conflicts() if k["customer_id"] == card]
        assert conflicts == [("grade", "B", "A")]
    finally:
        proxy.close()


# --- (b) SIGKILL of the agent ---------------------------------------------------------------


def test_agent_sigkill_during_repeated_syncs(shared_server: ServerProcess, tmp_path: Path) -> None:
    data = shared_server.data
    rng = random.Random(20260317)
    rep, ledger = enrolled_rep(data, shared_server.url, tmp_path / "agent", "Agent Killed", 6)
    device = device_id(ledger.home)
    ledger.log(400)
    killed = unheard = 0
    # Eight rounds, and up to eight more while no kill has yet landed in the narrow window
    # between the server's commit and the agent's record (a loaded machine shifts it).
    for round_no in range(16):
        if round_no >= 8 and killed >= 3 and unheard >= 1:
            break
        if round_no:
            ledger.log(rng.randint(20, 60))
            ledger.edit_and_void(rng, edits=rng.randint(2, 8), voids=rng.randint(0, 2))
        before = applied_ops(data, device)
        proc = start_sync(ledger.home)
        try:
            if rng.random() < 0.4:
                time.sleep(rng.uniform(0.2, 1.5))  # anywhere: start-up, push, pull
            elif wait_for_commit(data, device, before, proc):
                # at once (likely before the agent recorded the answer) or a bit later
                time.sleep(rng.choice([0.0, rng.uniform(0, 0.15)]))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                killed += 1
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        assert proc.returncode in (0, -signal.SIGKILL), (proc.returncode, err)
        unheard += answered_but_unheard(data, ledger.home) > 0
    assert killed >= 3, f"only {killed} of {round_no + 1} syncs were killed mid-way"
    assert unheard >= 1, "no kill landed between the server's commit and the agent's record"

    final = sync_cli(ledger.home)
    assert final["results"].keys() <= {"accepted"}
    assert sync_cli(ledger.home)["pushed"] == 0
    assert_device_matches_archive(data, ledger, rep)
    assert len(ledger.visits) >= 400


# --- (c) SIGKILL of the server --------------------------------------------------------------


def test_server_sigkill_during_repeated_syncs(backend: Backend, tmp_path: Path) -> None:
    """Every process of the server dies at once (with two workers: the supervisor and
    both workers), then it starts again on the same port and archive."""
    rng = random.Random(20260318)
    data_dir = backend.data
    server = backend.server(port=free_port()).start()
    try:
        rep, ledger = enrolled_rep(data_dir, server.url, tmp_path / "agent", "Server Killed", 5)
        device = device_id(ledger.home)
        # Each round's backlog takes two push batches (1,000 ops each), so a kill right
        # after the first commit lands inside the sync: a sync of one batch is over in
        # a fraction of a second, before most kills.
        ledger.log(1300)
        outcomes: list[int] = []
        unheard = 0
        for round_no in range(5):
            if round_no:
                ledger.log(rng.randint(1100, 1500))
                ledger.edit_and_void(rng, edits=rng.randint(2, 8), voids=rng.randint(0, 2))
            before = applied_ops(data_dir, device)
            proc = start_sync(ledger.home)
            try:
                if rng.random() < 0.5:
                    time.sleep(rng.uniform(0.05, 0.8))
                elif wait_for_commit(data_dir, device, before, proc):
                    time.sleep(rng.choice([0.0, rng.uniform(0, 0.05)]))
                server.kill()
                _, err = proc.communicate(timeout=60)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(timeout=10)
            outcomes.append(proc.returncode)
            assert proc.returncode in (0, 2), (proc.returncode, err)
            if proc.returncode == 2:
                lines = err.strip().splitlines()
                assert len(lines) == 1 and "kept" in lines[0], err
            unheard += answered_but_unheard(data_dir, ledger.home) > 0
            server.start()
        assert outcomes.count(2) >= 2, f"kills rarely hit a sync: {outcomes}, {unheard} unheard"

        final = sync_cli(ledger.home)
        assert final["results"].keys() <= {"accepted"}
        assert sync_cli(ledger.home)["pushed"] == 0
        assert_device_matches_archive(data_dir, ledger, rep)
        if backend.sqlite:  # the file itself survived the kills (PostgreSQL has its WAL)
            assert harness.integrity_check(data_dir) == "ok"
    finally:
        server.stop()


def test_push_batches_are_bounded_by_bytes_not_only_by_count() -> None:
    import orjson

    from agent.sync import _within_bytes

    ops = [{"op_id": str(i), "data": "长" * 40_000} for i in range(500)]  # ~120 KB each
    first = _within_bytes(ops, 4 * 1024 * 1024)
    assert 0 < len(first) < len(ops)
    assert sum(len(orjson.dumps(o)) + 1 for o in first) <= 4 * 1024 * 1024
    assert _within_bytes(ops[:1], 10) == ops[:1]  # a lone op always goes
