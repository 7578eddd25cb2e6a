"""Several API workers on one archive (issue 9, stateless workers).

On SQLite: one `serve --workers 2` (a SQLite archive lives on one host). On
PostgreSQL: two `serve` processes on two ports, one of them with two workers, as
API hosts behind a load balancer would be. Real processes, real HTTP on loopback.

(a) The same push (same op_ids) sent at the same moment over many connections to
    every worker: each op is applied once and every copy gets the same answer.
(b) Property: many devices push through every worker while every rep's device pulls
    incrementally at the same time; afterwards each device's copy, built only from
    the pages it pulled, equals the archive's scope for its rep (no change skipped
    by a pull racing with commits in other workers).
(c) A scheduled departure with several workers is applied exactly once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schema.clock import iso
from schema.models import CustomerPatch
from server.rules import Archive

from . import harness
from .harness import Backend, ServerProcess, SignedDevice, customer_create, enroll_device, visit_create

pytestmark = pytest.mark.slow

COPIES = 8  # parallel copies of one push


def start_servers(backend: Backend, **env: str) -> list[ServerProcess]:
    """Every API process this backend can run on one archive (see the module doc)."""
    extra = {f"FIELDVAULT_{k.upper()}": v for k, v in env.items()}
    if backend.sqlite:
        specs = [ServerProcess(backend.data, replica="none", workers=2, env=extra)]
    else:
        specs = [ServerProcess(backend.data, workers=2, env=extra),
                 ServerProcess(backend.data, workers=1, env=extra)]
    started: list[ServerProcess] = []
    try:
        for proc in specs:
            started.append(proc.start())
    except BaseException:
        for proc in started:
            proc.stop()
        raise
    return started


@pytest.fixture
def servers(backend: Backend) -> Iterator[list[ServerProcess]]:
    procs = start_servers(backend)
    yield procs
    for proc in procs:
        proc.stop()


def clone(device: SignedDevice, url: str) -> SignedDevice:
    """The same device on a connection of its own to `url` (one per thread)."""
    return SignedDevice(httpx.Client(base_url=url, timeout=60), device.device_id, device.rep_id,
                        device.key)


def enrolled(arch: Archive, url: str, rep: str) -> SignedDevice:
    with httpx.Client(base_url=url, timeout=60) as client:
        device = enroll_device(client, arch, rep)
    return SignedDevice(httpx.Client(base_url=url, timeout=60), device.device_id, device.rep_id,
                        device.key)


# --- (a) the same push at once on every worker ------------------------------------------


def test_the_same_push_sent_at_once_to_every_worker_is_applied_once(
        backend: Backend, servers: list[ServerProcess]) -> None:
    data = backend.data
    arch = harness.archive(data)
    rep = arch.add_rep("Duplicate Pusher")["id"]
    card = harness.add_customers(data, rep, ["Teal Marmot Packaging"])[0]["id"]
    device = enrolled(arch, servers[0].url, rep)
    urls = [s.url for s in servers]
    copies = [clone(device, urls[i % len(urls)]) for i in range(COPIES)]
    sent: list[str] = []
    created: list[str] = []
    try:
        for round_no in range(4):
            new_card = customer_create(f"Round {round_no} Heron 公司")
            ops = [visit_create(card, summary=f"round {round_no} visit {i}") for i in range(5)]
            ops += [new_card, visit_create(new_card["entity_id"], summary=f"round {round_no} new card")]
            body = orjson.dumps({"ops": ops})
            barrier = threading.Barrier(COPIES, timeout=60)

            def send(copy: SignedDevice, body: bytes = body,
                     barrier: threading.Barrier = barrier) -> httpx.Response:
                copy.send("GET", "/v1/whoami")  # connected before the barrier
                barrier.wait()
                return copy.push(body)

            with ThreadPoolExecutor(COPIES) as pool:
                answers = list(pool.map(send, copies))
            assert [a.status_code for a in answers] == [200] * COPIES, [a.text for a in answers]
            results = [a.json()["results"] for a in answers]
            assert all(r == results[0] for r in results), results  # the one stored answer
            assert [r["status"] for r in results[0]] == ["accepted"] * len(ops)
            sent += [o["op_id"] for o in ops]
            created.append(new_card["entity_id"])
    finally:
        for copy in copies + [device]:
            copy.client.close()

    applied = [r["op_id"] for r in arch.applied_ops(device.device_id)]
    assert sorted(applied) == sorted(sent)  # each op once, none lost
    visits = arch.list_visits(rep=rep)
    assert len(visits) == 4 * 6 and len({v["summary"] for v in visits}) == 4 * 6
    cards = {c["id"]: c for c in arch.list_customers() if c["owner_rep_id"] == rep}
    assert set(cards) == {card, *created}
    assert len({c["card_no"] for c in cards.values()}) == len(cards)  # one number each
    assert all(len(arch.customer_history(cid)) == 1 for cid in created)


# --- (b) pulls racing with writes in other workers ---------------------------------------


@dataclass
class Copy:
    """A device's copy of its scope, built only from the pages it pulled."""

    device: SignedDevice
    cursor: str = ""
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    visits: dict[str, dict[str, Any]] = field(default_factory=dict)

    def pull(self) -> None:
        """Pull from the kept cursor until the feed says there is no more (bounded)."""
        for _ in range(1000):
            resp = self.device.pull(self.cursor, limit=50)
            assert resp.status_code == 200, resp.text
            page = resp.json()
            for change in page["changes"]:
                if change["kind"] == "evict":
                    self.customers.pop(change["id"], None)
                    self.visits = {k: v for k, v in self.visits.items()
                                   if v["customer_id"] != change["id"]}
                elif change["kind"] == "customer":
                    self.customers[change["id"]] = change["record"]
                else:
                    self.visits[change["id"]] = change["record"]
            self.cursor = page["cursor"]
            if not page["more"]:
                return
        raise AssertionError("pull did not finish")


def archive_scope(arch: Archive, rep: str) -> tuple[dict[str, int], dict[str, int]]:
    """(customer id -> rev, visit id -> rev) in `rep`'s scope, as the archive holds it."""
    customers = {c["id"]: c["rev"] for c in arch.iter_customers(rep)}
    visits = {v["id"]: v["rev"] for cid in customers for v in arch.iter_visits(customer=cid)}
    return customers, visits


def run_all(tasks: list[Callable[[], None]]) -> None:
    with ThreadPoolExecutor(len(tasks)) as pool:
        for future in [pool.submit(t) for t in tasks]:
            future.result(timeout=240)


plans = st.fixed_dictionaries({
    # per rep: the sizes of the bursts of visits its laptop pushes
    "bursts": st.lists(st.lists(st.integers(1, 12), min_size=1, max_size=4), min_size=2, max_size=4),
    "moves": st.integers(0, 4),  # the office reassigns cards between the reps meanwhile
    "edits": st.integers(0, 4),  # and edits cards
})


@pytest.mark.proof
def test_pulls_racing_with_writes_in_other_workers_never_skip_a_change(
        backend: Backend, servers: list[ServerProcess]) -> None:
    data = backend.data
    arch = harness.archive(data)
    urls = [s.url for s in servers]
    examples = iter(range(1000))

    @settings(max_examples=5, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(plan=plans)
    def check(plan: dict[str, Any]) -> None:
        n = next(examples)
        reps = [arch.add_rep(f"Racer {n}.{i}")["id"] for i in range(len(plan["bursts"]))]
        cards = {rep: [c["id"] for c in harness.add_customers(
            data, rep, [f"Racer {n}.{i} card {j}" for j in range(3)])] for i, rep in enumerate(reps)}
        devices = [enrolled(arch, urls[i % len(urls)], rep) for i, rep in enumerate(reps)]
        # Each rep's visits are pushed by a second laptop of theirs through one worker
        # and pulled by the first through another. Not one device for both: a device's
        # own pushes come back in their answers, and its pulls leave them out.
        writers = [enrolled(arch, urls[i % len(urls)], rep) for i, rep in enumerate(reps)]
        copies = [Copy(clone(d, urls[(i + 1) % len(urls)])) for i, d in enumerate(devices)]
        done = threading.Event()

        def writer(i: int) -> Callable[[], None]:
            def push_bursts() -> None:
                for burst, size in enumerate(plan["bursts"][i]):
                    ops = [visit_create(cards[reps[i]][k % 3], summary=f"burst {burst} #{k}")
                           for k in range(size)]
                    resp = writers[i].push(ops)
                    assert resp.status_code == 200, resp.text
            return push_bursts

        def office() -> None:
            everything = [c for rep in reps for c in cards[rep]]
            for k in range(plan["moves"]):
                arch.assign(everything[k * 5 % len(everything)], reps[k % len(reps)],
                            "rebalancing", "office")
            for k in range(plan["edits"]):
                arch.edit_customer(everything[k * 7 % len(everything)],
                                   CustomerPatch(notes=f"office note {k}"), "office")

        def puller(copy: Copy) -> Callable[[], None]:
            def pull_meanwhile() -> None:
                for _ in range(10_000):  # bounded: the writers end long before
                    copy.pull()
                    if done.is_set():
                        return
                raise AssertionError("the writers never finished")
            return pull_meanwhile

        def writes() -> None:
            try:
                run_all([writer(i) for i in range(len(reps))] + [office])
            finally:
                done.set()

        try:
            run_all([writes, *(puller(c) for c in copies)])
            for i, copy in enumerate(copies):
                copy.pull()  # one more from the kept cursor, after the last commit
                customers, visits = archive_scope(arch, reps[i])
                assert {k: v["rev"] for k, v in copy.customers.items()} == customers
                assert {k: v["rev"] for k, v in copy.visits.items()} == visits
            pushed = sum(sum(b) for b in plan["bursts"])
            applied = sum(len(arch.applied_ops(d.device_id)) for d in writers)
            assert applied == pushed
        finally:
            for dev in devices + writers + [c.device for c in copies]:
                dev.client.close()

    check()


# --- (c) background jobs run once ------------------------------------------------------


def test_a_scheduled_departure_is_applied_once_by_several_workers(backend: Backend) -> None:
    data = backend.data
    arch = harness.archive(data)
    leaver = arch.add_rep("Scheduled Leaver")["id"]
    harness.add_customers(data, leaver, ["Saffron Ibis Ltd", "琥珀鹭贸易"])
    # Every worker looks for due departures every 0.1 s: all of them race for it.
    procs = start_servers(backend, revocation_check_s="0.1")
    try:
        # Scheduled through the library (a CLI run can take longer than the second
        # ahead on a busy machine, and then the departure would be applied at once).
        effective = iso(datetime.now(UTC) + timedelta(seconds=1))
        scheduled = arch.revoke(leaver, "contract ends", "pool", effective)
        assert scheduled["status"] == "scheduled", scheduled

        def revoke_entries() -> list[dict[str, Any]]:
            return [e for e in arch.audit_entries()
                    if e["action"] == "rep.revoke" and e["subject"] == leaver]

        deadline = time.monotonic() + 60
        while not revoke_entries():
            assert time.monotonic() < deadline, "the scheduled departure was never applied"
            time.sleep(0.05)
        # Several more rounds of every worker's job loop: still applied once.
        watch_until = time.monotonic() + 1.0
        while time.monotonic() < watch_until:
            assert len(revoke_entries()) == 1
            time.sleep(0.1)
        assert [r["active"] for r in arch.list_reps() if r["id"] == leaver] == [0]
        assert [c for c in arch.list_customers() if c["owner_rep_id"] == leaver] == []
        assert arch.audit_verify().ok
    finally:
        for proc in procs:
            proc.stop()
